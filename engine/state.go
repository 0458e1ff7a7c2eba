package engine

import (
	"net/netip"
	"time"

	"github.com/dnsfront/dnsfront/engine/rules"
)

// State is what a reload may change without touching listeners: the ACL, the backends and
// their pools. It is immutable once published; the loops read it through an atomic pointer.
type State struct {
	ACL      *ACL
	Backends []*Backend
	// Pools maps a pool name to its backends and policy; "" is the default pool.
	Pools map[string]*Pool
	// NewLoopObserver, when set, gives each loop its observer of backend events.
	NewLoopObserver func() LoopObserver
	// Rules is the compiled traffic policy (policy.go); nil: none.
	Rules *rules.RuleSet
	// DDR answers Discovery of Designated Resolvers queries (ddr.go); nil: none.
	DDR *DDR
	// ECS are the edns_client_subnet settings (ecs.go).
	ECS ECSOptions
	// Proxy is the incoming proxy protocol setting (proxy.go); nil: no header expected.
	Proxy *ProxyProtocol
}

// Backend is one downstream resolver as the loops see it.
type Backend struct {
	// Key identifies the backend across reloads (name and address): a loop keeps its
	// sockets, and the queries in flight on them, for a backend whose key is unchanged.
	Key            string
	Name           string
	Addr           netip.AddrPort
	Timeout        time.Duration
	TCPOnly        bool
	MaxOutstanding int          // per loop; 0: no bound
	Proxy          BackendProxy // use_proxy_protocol (proxy_out.go)
	ECS            BackendECS   // use_client_subnet (ecs.go)
	// Health reports the backend's state; nil means always up.
	Health interface{ Up() bool }
}

// LoopObserver receives one loop's per-query backend events (metrics, latency), by index
// in State.Backends. Each loop gets its own from State.NewLoopObserver and calls it alone,
// on the loop: it must not block.
type LoopObserver interface {
	QuerySent(backend int)
	ResponseReceived(backend int, latency time.Duration)
	TimedOut(backend int)
	Abandoned(backend int)
	SendFailed(backend int)
}

// Up reports whether the backend may receive queries.
func (b *Backend) Up() bool { return b.Health == nil || b.Health.Up() }

// Pool is a group of backends behind a policy and an optional packet cache.
type Pool struct {
	Name     string
	Backends []*Backend
	// NewPicker returns the per-loop selection state of the pool's policy (engine/lb's, as
	// internal/server sets it); each loop calls it once and uses the result alone. Required.
	NewPicker func() Picker
	Cache     Cache
	ecs       poolECS // what its backends say about ECS (ecs.go)
	index     []int   // position of each backend in State.Backends
}

// NewState links pools to the backend list; every pool backend must be in backends.
func NewState(acl *ACL, backends []*Backend, pools map[string]*Pool) *State {
	pos := make(map[*Backend]int, len(backends))
	for i, b := range backends {
		pos[b] = i
	}
	for _, p := range pools {
		p.index = make([]int, len(p.Backends))
		p.ecs = newPoolECS(p.Backends)
		for i, b := range p.Backends {
			p.index[i] = pos[b]
		}
	}
	return &State{ACL: acl, Backends: backends, Pools: pools}
}

// Picker chooses a backend of its pool for one query and returns its index in
// State.Backends, or -1 when none is up. It runs on one loop and must not block or
// allocate. outstanding(i) is the loop's count of queries waiting on State.Backends[i].
type Picker interface {
	Pick(outstanding func(backend int) int, qhash uint64) int
}

// Cache is a packet cache shared by the loops.
type Cache interface {
	// Get appends the cached answer to query (with the query's ID) to dst.
	Get(query, dst []byte, now time.Time) ([]byte, bool)
	Insert(query, response []byte, now time.Time)
}
