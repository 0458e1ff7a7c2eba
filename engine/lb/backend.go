package lb

import (
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Backend is one upstream server. Its identity and configuration are
// immutable; its health and counters live in a state that a reload hands to
// the backend of the same name and address in the new Set (Set.Inherit).
type Backend struct {
	ID     int // index in Set.Backends; indexes per-loop state
	Name   string
	Addr   netip.AddrPort
	Config BackendConfig // with defaults applied

	st *backendState
}

// backendState is what a backend keeps across reloads while its name and
// address stay the same: its health as published, the progress of its
// checks (so a reload neither restarts rise/fall counting nor probes early)
// and its counters (so its metric series go on and its outstanding gauge
// stays whole while queries sent before a reload are answered after it).
//
// Concurrency: up and status are atomics read by the loops; check is
// written by the one Checker goroutine probing the backend (a reload stops
// the old Checker before starting the new one) and read under its lock;
// the stats shards are atomics.
type backendState struct {
	up     atomic.Bool
	status atomic.Pointer[Status]

	mu    sync.Mutex
	check checkProgress

	shards []loopBackendStats // one per loop slot (Set.NewLoop)
}

// checkProgress is where a backend's health checks stand.
type checkProgress struct {
	checked   bool // a check result was applied since the backend appeared
	fails     int  // consecutive failed checks
	successes int  // consecutive successful checks
	last      time.Time
}

// Status is a backend's health as last published. Immutable once stored.
type Status struct {
	Up     bool
	Since  time.Time // when the state last changed
	Reason string    // why: the check result that caused the change
}

func newBackend(id int, cfg BackendConfig, addr netip.AddrPort, now time.Time) *Backend {
	b := &Backend{ID: id, Name: cfg.Name, Addr: addr, Config: cfg, st: newBackendState()}
	// Optimistic start: a backend in auto mode takes queries until its first
	// check says otherwise, so a restart does not answer SERVFAIL for one
	// interval. The first check's result is applied directly.
	up := cfg.HealthCheck.Mode != ModeDown
	b.setStatus(Status{Up: up, Since: now, Reason: "initial state (" + cfg.HealthCheck.Mode + ")"})
	return b
}

func newBackendState() *backendState {
	// One shard per P: the server runs at most that many loops, so the loops
	// of one Set never share a shard.
	return &backendState{shards: make([]loopBackendStats, runtime.GOMAXPROCS(0))}
}

// Up reports whether the backend may receive queries. Lock-free.
func (b *Backend) Up() bool { return b.st.up.Load() }

// Status returns the last published health state.
func (b *Backend) Status() Status { return *b.st.status.Load() }

func (b *Backend) setStatus(s Status) {
	b.st.status.Store(&s)
	b.st.up.Store(s.Up)
}

// SetUp forces the backend's state, as the Checker does for modes up and
// down; an admin action may use it too.
func (b *Backend) SetUp(up bool, reason string, now time.Time) {
	b.setStatus(Status{Up: up, Since: now, Reason: reason})
}

func (b *Backend) progress() checkProgress {
	b.st.mu.Lock()
	defer b.st.mu.Unlock()
	return b.st.check
}

func (b *Backend) setProgress(p checkProgress) {
	b.st.mu.Lock()
	b.st.check = p
	b.st.mu.Unlock()
}
