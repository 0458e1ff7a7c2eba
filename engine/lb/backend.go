package lb

import (
	"net/netip"
	"sync/atomic"
	"time"
)

// Backend is one upstream server. Its identity and configuration are
// immutable; its health is published by the Checker through atomics.
type Backend struct {
	ID     int // index in Set.Backends; indexes per-loop state
	Name   string
	Addr   netip.AddrPort
	Config BackendConfig // with defaults applied

	up     atomic.Bool
	status atomic.Pointer[Status]
}

// Status is a backend's health as last published. Immutable once stored.
type Status struct {
	Up     bool
	Since  time.Time // when the state last changed
	Reason string    // why: the check result that caused the change
}

func newBackend(id int, cfg BackendConfig, addr netip.AddrPort, now time.Time) *Backend {
	b := &Backend{ID: id, Name: cfg.Name, Addr: addr, Config: cfg}
	// Optimistic start: a backend in auto mode takes queries until its first
	// check says otherwise, so a restart does not answer SERVFAIL for one
	// interval. The first check's result is applied directly.
	up := cfg.HealthCheck.Mode != ModeDown
	b.setStatus(Status{Up: up, Since: now, Reason: "initial state (" + cfg.HealthCheck.Mode + ")"})
	return b
}

// Up reports whether the backend may receive queries. Lock-free.
func (b *Backend) Up() bool { return b.up.Load() }

// Status returns the last published health state.
func (b *Backend) Status() Status { return *b.status.Load() }

func (b *Backend) setStatus(s Status) {
	b.status.Store(&s)
	b.up.Store(s.Up)
}

// SetUp forces the backend's state, as the Checker does for modes up and
// down; an admin action may use it too.
func (b *Backend) SetUp(up bool, reason string, now time.Time) {
	b.setStatus(Status{Up: up, Since: now, Reason: reason})
}
