package server

import (
	"log/slog"
	"sync"

	"github.com/dnsfront/dnsfront/ocsp"
	"github.com/dnsfront/dnsfront/tlsframe"
)

// staples routes the OCSP manager's staples into the snapshots that serve each
// certificate, and owns each staple's life in those snapshots.
//
//   - A staple is kept per certificate (the leaf's SHA-256), whatever bind serves it,
//     so the disk cache and the state survive a change of source settings.
//   - A certificate is routed to a bind's store only when that bind names a source for
//     it; a bind that names none serves it bare, even when another bind staples it.
//   - The staple held for a certificate is the one the snapshots get, at publication and
//     when a reload installs new snapshots, so a staple published while a reload is being
//     prepared reaches whichever snapshots end up serving, and one whose certificate no
//     source watches any more is let go at the reload.
//   - Each held staple has its own timer, started when it is published: at its expiry
//     (nextUpdate less ocsp.Skew) it leaves every snapshot, whatever happened to its
//     source meanwhile. The Manager drops it too, but the promise must not depend on a
//     worker that a reload may have stopped.
//
// Concurrency: mu serialises every read-modify-publish of a store's snapshot (manager
// publications, expiry timers and reload installs). publish is called by the Manager,
// which may hold its own locks: nothing here calls back into the Manager.
type staples struct {
	mu     sync.Mutex
	clock  ocsp.Clock
	log    *slog.Logger
	routes map[string][]stapleRoute // by certificate ID: only certificates with a source
	held   map[string]*heldStaple   // by certificate ID
	mgr    *ocsp.Manager
}

type stapleRoute struct {
	store  *tlsframe.Store
	certID string
}

// heldStaple is a staple and the end of its expiry timer; stop ends the timer early
// when the staple is replaced or let go.
type heldStaple struct {
	s    *ocsp.Staple
	stop chan struct{}
}

func newStaples(clock ocsp.Clock, log *slog.Logger) *staples {
	return &staples{clock: clock, log: log, routes: map[string][]stapleRoute{}, held: map[string]*heldStaple{}}
}

// publish is the Manager's callback: st is the staple to serve for certificate id from
// now on, nil for none.
func (r *staples) publish(id string, st *ocsp.Staple) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.releaseLocked(id)
	if len(r.routes[id]) == 0 {
		return // no source watches the certificate on any bind: nothing to hold
	}
	if st != nil && r.clock.Now().Before(st.Expiry()) {
		h := &heldStaple{s: st, stop: make(chan struct{})}
		r.held[id] = h
		timer := r.clock.NewTimer(st.Expiry().Sub(r.clock.Now()))
		go r.expire(id, h, timer)
	}
	r.applyLocked(id)
}

// expire removes h from every snapshot when its timer fires, unless it was replaced or
// let go before.
func (r *staples) expire(id string, h *heldStaple, timer ocsp.Timer) {
	select {
	case <-h.stop:
		timer.Stop()
		return
	case <-timer.C():
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held[id] != h {
		return
	}
	delete(r.held, id)
	r.applyLocked(id)
	r.log.Warn("ocsp: staple reached its expiry and left every snapshot", "cert", id, "next_update", h.s.NextUpdate)
}

// releaseLocked forgets the staple held for id and stops its timer.
func (r *staples) releaseLocked(id string) {
	if h := r.held[id]; h != nil {
		close(h.stop)
		delete(r.held, id)
	}
}

// applyLocked publishes, into every store id is routed to, a snapshot carrying the
// staple held for id, or none.
func (r *staples) applyLocked(id string) {
	var der []byte
	if h := r.held[id]; h != nil {
		der = h.s.DER
	}
	for _, rt := range r.routes[id] {
		if cur := rt.store.Current(); cur != nil {
			if next := cur.WithStaple(rt.certID, der); next != cur {
				rt.store.Publish(next)
			}
		}
	}
}

// route is the first step of a reload's commit, before the Manager installs the new
// sources: from now on staples are held and routed for the certificates that routes
// names, and the staples of certificates no source watches any more are let go. The
// snapshots serving keep what they carry until install replaces them.
func (r *staples) route(routes map[string][]stapleRoute) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.routes = routes
	for id := range r.held {
		if len(routes[id]) == 0 {
			r.releaseLocked(id)
		}
	}
}

// install is the last step of a reload's commit: snaps are the new snapshots, built
// without staples. Each gets the staples held for its routed certificates (including
// any published while the reload was prepared or the Manager committed), and they are
// published. It cannot fail.
func (r *staples) install(snaps map[*tlsframe.Store]*tlsframe.Snapshot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.clock.Now()
	for id, rs := range r.routes {
		h := r.held[id]
		if h == nil || !now.Before(h.s.Expiry()) {
			continue // an expired one's timer is about to let it go
		}
		for _, rt := range rs {
			if snap := snaps[rt.store]; snap != nil {
				snaps[rt.store] = snap.WithStaple(rt.certID, h.s.DER)
			}
		}
	}
	for st, snap := range snaps {
		st.Publish(snap)
	}
}

// close stops the expiry timers; the snapshots keep what they carry.
func (r *staples) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id := range r.held {
		r.releaseLocked(id)
	}
}
