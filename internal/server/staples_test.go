package server

import (
	"bytes"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/dnsfront/dnsfront/ocsp"
	"github.com/dnsfront/dnsfront/tlsframe"
)

// fakeClock is an ocsp.Clock that moves when the test says so.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
	armed  chan struct{}
}

type fakeTimer struct {
	at  time.Time
	c   chan time.Time
	off bool
	clk *fakeClock
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), armed: make(chan struct{}, 64)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) ocsp.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), c: make(chan time.Time, 1), clk: c}
	c.timers = append(c.timers, t)
	c.armed <- struct{}{}
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.clk.mu.Lock()
	defer t.clk.mu.Unlock()
	was := !t.off
	t.off = true
	return was
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for _, t := range c.timers {
		if !t.off && !t.at.After(c.now) {
			t.off = true
			t.c <- c.now
		}
	}
}

type stapleEnv struct {
	clk   *fakeClock
	r     *staples
	store *tlsframe.Store
	snap  *tlsframe.Snapshot // bare
	id    string
}

func newStapleEnv(t *testing.T) *stapleEnv {
	t.Helper()
	p := devpki.NewTestPKI(t, t.TempDir())
	snap, err := tlsframe.BuildSnapshot([]tlsframe.CertSpec{{ChainFile: p.Leaf.ChainFile, KeyFile: p.Leaf.KeyFile}}, tlsframe.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	clk := newFakeClock()
	e := &stapleEnv{clk: clk, r: newStaples(clk, slog.New(slog.DiscardHandler)), store: tlsframe.NewStore(2), snap: snap, id: snap.CertIDs()[0]}
	t.Cleanup(e.r.close)
	return e
}

func (e *stapleEnv) routes() map[string][]stapleRoute {
	return map[string][]stapleRoute{e.id: {{store: e.store, certID: e.id}}}
}

func (e *stapleEnv) staple(der string, life time.Duration) *ocsp.Staple {
	now := e.clk.Now()
	return &ocsp.Staple{DER: []byte(der), ThisUpdate: now, NextUpdate: now.Add(ocsp.Skew + life)}
}

func (e *stapleEnv) served() []byte {
	ci, _ := e.store.Current().Cert(e.id)
	return ci.OCSPStaple
}

func (e *stapleEnv) snaps() map[*tlsframe.Store]*tlsframe.Snapshot {
	return map[*tlsframe.Store]*tlsframe.Snapshot{e.store: e.snap}
}

// A staple leaves the snapshots at its expiry by its own timer: no manager, no source,
// no reload is involved.
func TestStapleLeavesAtExpiryByItsOwnTimer(t *testing.T) {
	e := newStapleEnv(t)
	e.r.route(e.routes())
	e.r.install(e.snaps())
	e.r.publish(e.id, e.staple("A", time.Hour))
	if !bytes.Equal(e.served(), []byte("A")) {
		t.Fatalf("served %q, want A", e.served())
	}
	<-e.clk.armed
	e.clk.Advance(time.Hour - time.Second)
	if !bytes.Equal(e.served(), []byte("A")) {
		t.Fatal("the staple left before its expiry")
	}
	e.clk.Advance(time.Second)
	deadline := time.After(10 * time.Second)
	for e.served() != nil {
		select {
		case <-deadline:
			t.Fatal("the staple is still served after its expiry")
		case <-time.After(time.Millisecond):
		}
	}
	// A reload after the expiry does not bring it back.
	e.r.route(e.routes())
	e.r.install(e.snaps())
	if e.served() != nil {
		t.Fatal("a reload brought an expired staple back")
	}
}

// A staple published while a reload is prepared reaches the snapshots the reload
// installs; if the reload fails (no install), it is already in the ones serving.
func TestStaplePublishedDuringReload(t *testing.T) {
	e := newStapleEnv(t)
	e.r.route(e.routes())
	e.r.install(e.snaps())
	e.r.publish(e.id, e.staple("A", time.Hour))

	// Prepare builds bare snapshots; meanwhile a worker publishes B.
	next := e.snaps()
	e.r.publish(e.id, e.staple("B", 2*time.Hour))
	if !bytes.Equal(e.served(), []byte("B")) {
		t.Fatalf("during the reload the serving snapshot has %q, want B", e.served())
	}
	e.r.route(e.routes())
	e.r.install(next)
	if !bytes.Equal(e.served(), []byte("B")) {
		t.Fatalf("after the reload the snapshot has %q, want B, published while it was prepared", e.served())
	}
	// The replaced staple's timer is gone: A's expiry does not touch B.
	e.clk.Advance(time.Hour)
	if !bytes.Equal(e.served(), []byte("B")) {
		t.Fatalf("A's expiry removed B")
	}
}

// A reload that leaves a certificate without a source serves it bare at once and lets
// its staple go: nothing would refresh it or, without a route, keep it honest.
func TestStapleLeavesWithItsSourceRoute(t *testing.T) {
	e := newStapleEnv(t)
	e.r.route(e.routes())
	e.r.install(e.snaps())
	e.r.publish(e.id, e.staple("A", time.Hour))
	e.r.route(map[string][]stapleRoute{})
	e.r.install(e.snaps())
	if e.served() != nil {
		t.Fatalf("a certificate without a source still serves %q", e.served())
	}
	// A late publication from a stopped source does not reach a store it has no route to.
	e.r.publish(e.id, e.staple("late", time.Hour))
	if e.served() != nil {
		t.Fatalf("a late publication reached an unrouted certificate: %q", e.served())
	}
	// The source comes back with the next reload: only what it publishes is served.
	e.r.route(e.routes())
	e.r.install(e.snaps())
	if e.served() != nil {
		t.Fatalf("served %q before the new source published", e.served())
	}
	e.r.publish(e.id, e.staple("C", time.Hour))
	if !bytes.Equal(e.served(), []byte("C")) {
		t.Fatalf("served %q, want C", e.served())
	}
}
