package lb

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"sync/atomic"
	"time"
)

// Pool is a named group of backends with one policy. Backends are sorted by
// order, then configuration order (ID).
type Pool struct {
	Name     string
	Backends []*Backend
	Policy   string // canonical name

	ring *ring // consistent_hash only; immutable, shared by every loop

	noBackend *counter // shared with the pool of the same name across reloads (Set.Inherit)
	seeds     atomic.Uint64
}

// Picker is one loop's handle on a pool: the pool's policy with this loop's
// state. Use it from that loop only.
type Picker struct {
	pool   *Pool
	policy Policy
}

// NewLoopPicker returns a Picker for one event loop. Call it once per loop
// and pool when the loop starts; it takes a lock.
func (p *Pool) NewLoopPicker() *Picker {
	pk := &Picker{pool: p}
	switch p.Policy {
	case PolicyFirstAvailable:
		pk.policy = FirstAvailable{}
	case PolicyRoundRobin:
		pk.policy = &RoundRobin{}
	case PolicyWeightedRandom:
		pk.policy = NewWeightedRandom(uint64(time.Now().UnixNano()) ^ p.seeds.Add(0x9e3779b97f4a7c15))
	case PolicyConsistentHash:
		pk.policy = &ConsistentHash{ring: p.ring}
	default:
		pk.policy = LeastOutstanding{}
	}
	return pk
}

// Pick returns the backend for a query, or nil when every backend of the
// pool is down (or the pool is empty). A nil pick is counted in
// NoBackend: the engine should answer SERVFAIL at once rather than wait.
// qnameHash is HashQName of the query's name; only consistent_hash uses it.
func (pk *Picker) Pick(view LoopView, qnameHash uint64) *Backend {
	b := pk.policy.Pick(pk.pool.Backends, view, qnameHash)
	if b == nil {
		pk.pool.noBackend.inc()
	}
	return b
}

// NoBackend returns how many picks, over every loop, found no backend up.
// The count is rare enough to be one shared atomic.
func (p *Pool) NoBackend() uint64 { return p.noBackend.load() }

// Set is every configured backend and the pools they form.
type Set struct {
	Backends []*Backend       // indexed by Backend.ID, in configuration order
	Pools    map[string]*Pool // by name; "" is the default pool

	slots atomic.Uint64 // loops started on this Set: each takes the next shard
}

// NewSet builds backends and pools from configuration. poolPolicies maps a
// pool name to its policy (ours or dnsdist's spelling); a pool missing from
// it or mapped to "" gets DefaultPolicy, so the config loader should fill it
// from pools[].policy, else load_balancing_policies.default_policy. A pool
// named in poolPolicies with no backend exists and is always all-down.
func NewSet(cfgs []BackendConfig, poolPolicies map[string]string) (*Set, error) {
	s := &Set{Pools: map[string]*Pool{}}
	now := time.Now()
	names := map[string]int{}
	for i, c := range cfgs {
		c, addr, err := c.withDefaults()
		if err != nil {
			return nil, fmt.Errorf("%w (backends[%d])", err, i)
		}
		if j, dup := names[c.Name]; dup {
			return nil, fmt.Errorf("lb: backends[%d] and backends[%d] are both named %q", j, i, c.Name)
		}
		names[c.Name] = i
		b := newBackend(i, c, addr, now)
		s.Backends = append(s.Backends, b)
		for _, pn := range c.Pools {
			p := s.Pools[pn]
			if p == nil {
				p = &Pool{Name: pn, noBackend: new(counter)}
				s.Pools[pn] = p
			}
			if !slices.Contains(p.Backends, b) {
				p.Backends = append(p.Backends, b)
			}
		}
	}
	for pn := range poolPolicies {
		if s.Pools[pn] == nil {
			s.Pools[pn] = &Pool{Name: pn, noBackend: new(counter)}
		}
	}
	for _, p := range s.Pools {
		pol, err := CanonicalPolicy(poolPolicies[p.Name])
		if err != nil {
			return nil, fmt.Errorf("%w (pool %q)", err, p.Name)
		}
		p.Policy = pol
		sort.SliceStable(p.Backends, func(i, j int) bool {
			a, b := p.Backends[i], p.Backends[j]
			return cmp.Or(cmp.Compare(a.Config.Order, b.Config.Order), cmp.Compare(a.ID, b.ID)) < 0
		})
		if pol == PolicyConsistentHash {
			p.ring = newRing(p.Backends)
		}
	}
	return s, nil
}

// Pool returns the named pool, or nil.
func (s *Set) Pool(name string) *Pool { return s.Pools[name] }

// NewLoop returns the per-loop counters and outstanding counts for every
// backend. Call it once per event loop when the loop starts using this Set.
func (s *Set) NewLoop() *Loop {
	slot := s.slots.Add(1) - 1
	l := &Loop{stats: make([]*loopBackendStats, len(s.Backends))}
	for i, b := range s.Backends {
		l.stats[i] = &b.st.shards[slot%uint64(len(b.st.shards))]
	}
	return l
}

// Counters sums a backend's counters over every loop. Safe from any
// goroutine. The outstanding count is read shard by shard while loops move
// queries in and out, so a read may catch a query's answer and not its
// sending: it is clamped at zero.
func (s *Set) Counters(b *Backend) Counters {
	var c Counters
	for i := range b.st.shards {
		b.st.shards[i].addTo(&c)
	}
	c.Outstanding = max(c.Outstanding, 0)
	for i := 1; i < len(c.LatencyBuckets); i++ {
		c.LatencyBuckets[i] += c.LatencyBuckets[i-1]
	}
	return c
}

// Inherit hands each backend of old to this Set's backend of the same name
// and address: its counters, and, unless the new configuration forces its
// state with health_checks.mode up or down, its health and the progress of
// its checks. Pools of the same name keep their no-backend count. Call it
// before the Set serves queries. Backends no longer configured are dropped
// with old; backends that are new start afresh.
func (s *Set) Inherit(old *Set) {
	if old == nil {
		return
	}
	prev := make(map[string]*Backend, len(old.Backends))
	for _, b := range old.Backends {
		prev[b.Name] = b
	}
	for _, b := range s.Backends {
		o := prev[b.Name]
		if o == nil || o.Addr != b.Addr {
			continue
		}
		if b.Config.HealthCheck.Mode == ModeAuto {
			b.st = o.st
			continue
		}
		// A forced state is the new configuration's word: keep only the
		// counters, so the old Set serving until the swap still sees its own.
		b.st.shards = o.st.shards
	}
	for name, p := range s.Pools {
		if op := old.Pools[name]; op != nil {
			p.noBackend = op.noBackend
		}
	}
}
