package lb

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"sync"
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

	mu      sync.Mutex // guards pickers; taken when a loop starts, never on Pick
	pickers []*Picker
	seeds   atomic.Uint64
}

// Picker is one loop's handle on a pool: the pool's policy with this loop's
// state. Use it from that loop only.
type Picker struct {
	pool      *Pool
	policy    Policy
	noBackend counter
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
	p.mu.Lock()
	p.pickers = append(p.pickers, pk)
	p.mu.Unlock()
	return pk
}

// Pick returns the backend for a query, or nil when every backend of the
// pool is down (or the pool is empty). A nil pick is counted in
// NoBackend: the engine should answer SERVFAIL at once rather than wait.
// qnameHash is HashQName of the query's name; only consistent_hash uses it.
func (pk *Picker) Pick(view LoopView, qnameHash uint64) *Backend {
	b := pk.policy.Pick(pk.pool.Backends, view, qnameHash)
	if b == nil {
		pk.noBackend.inc()
	}
	return b
}

// NoBackend returns how many picks, over every loop, found no backend up.
func (p *Pool) NoBackend() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n uint64
	for _, pk := range p.pickers {
		n += pk.noBackend.load()
	}
	return n
}

// Set is every configured backend and the pools they form.
type Set struct {
	Backends []*Backend       // indexed by Backend.ID, in configuration order
	Pools    map[string]*Pool // by name; "" is the default pool

	mu    sync.Mutex // guards loops; taken when a loop starts and by collectors
	loops []*Loop
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
				p = &Pool{Name: pn}
				s.Pools[pn] = p
			}
			if !slices.Contains(p.Backends, b) {
				p.Backends = append(p.Backends, b)
			}
		}
	}
	for pn := range poolPolicies {
		if s.Pools[pn] == nil {
			s.Pools[pn] = &Pool{Name: pn}
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
// backend. Call it once per event loop when the loop starts; it takes a lock.
func (s *Set) NewLoop() *Loop {
	l := &Loop{stats: make([]loopBackendStats, len(s.Backends))}
	s.mu.Lock()
	s.loops = append(s.loops, l)
	s.mu.Unlock()
	return l
}

// Counters sums a backend's counters over every loop. Safe from any goroutine.
func (s *Set) Counters(b *Backend) Counters {
	var c Counters
	s.mu.Lock()
	for _, l := range s.loops {
		l.addTo(b.ID, &c)
	}
	s.mu.Unlock()
	for i := 1; i < len(c.LatencyBuckets); i++ {
		c.LatencyBuckets[i] += c.LatencyBuckets[i-1]
	}
	return c
}

// InheritHealth copies the health state of old's backends to this set's
// backends with the same name and address, so that a reload neither sends
// queries to a backend known to be down nor withholds them from one known to
// be up while the new Checker runs its first checks. Call it before the new
// set serves queries; modes up and down still apply when the Checker starts.
func (s *Set) InheritHealth(old *Set) {
	if old == nil {
		return
	}
	prev := make(map[string]*Backend, len(old.Backends))
	for _, b := range old.Backends {
		prev[b.Name] = b
	}
	for _, b := range s.Backends {
		// A backend forced up or down by its mode takes that state, not the old one.
		if o := prev[b.Name]; o != nil && o.Addr == b.Addr && b.Config.HealthCheck.Mode == ModeAuto {
			b.setStatus(o.Status())
		}
	}
}
