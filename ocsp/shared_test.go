package ocsp_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/dnsfront/dnsfront/ocsp"
)

// A fleet member that does not lead: its fetches wait on FetchGate, a staple the leader
// fetched is validated and served with its refresh planned from it, a forged or foreign
// one is refused, and once the gate opens it fetches on that schedule.
func TestManagerSharedStaple(t *testing.T) {
	e := newEnv(t)
	var mayFetch atomic.Bool
	e.opts.FetchGate = mayFetch.Load
	m := e.start()
	if err := m.Set([]ocsp.CertSource{e.source()}); err != nil {
		t.Fatal(err)
	}
	if ev := e.pubs.next(t); ev.s != nil {
		t.Fatalf("first publication %+v, want nil", ev)
	}
	now := e.clk.Now()
	e.clk.waitTimer(t, now.Add(time.Second)) // the gate is asked again in a second
	if n := len(e.resp.methods()); n != 0 {
		t.Fatalf("%d responder requests with the gate closed", n)
	}

	if _, err := m.Offer("other", []byte{1}); err == nil || !strings.Contains(err.Error(), "no source watches") {
		t.Errorf("offer for an unknown certificate: %v", err)
	}
	other := devpki.NewTestPKI(t, t.TempDir(), devpki.WithNow(now))
	foreign, err := ocsp.Generate(other.Leaf.Cert, other.Issuer.Cert, other.Issuer.Key, now, now.Add(4*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Offer("leaf", foreign); err == nil {
		t.Error("a response for another certificate, by another CA, was accepted")
	}
	der, err := ocsp.Generate(e.pki.Leaf.Cert, e.pki.Issuer.Cert, e.pki.Issuer.Key, now, now.Add(4*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.Offer("leaf", der)
	if err != nil {
		t.Fatal(err)
	}
	if ev := e.pubs.next(t); ev.s != s {
		t.Fatalf("published %+v, want the shared staple", ev.s)
	}
	st := e.status()
	// The window ends at the staple's expiry (nextUpdate less Skew).
	window := s.Expiry().Sub(s.ThisUpdate)
	lo, hi := s.ThisUpdate.Add(window/2), s.ThisUpdate.Add(window/2+window/10)
	if st.Source != ocsp.SourceShared || st.NextRefresh == nil || st.NextRefresh.Before(lo) || st.NextRefresh.After(hi) {
		t.Fatalf("status %+v; want source %q and the refresh in the middle of the window", st, ocsp.SourceShared)
	}

	// The worker looks at the gate once more, then sleeps until the planned refresh.
	e.clk.Set(now.Add(time.Second))
	// The gate opens (the leader is gone): the fetch comes at the planned refresh.
	mayFetch.Store(true)
	e.clk.waitTimer(t, *st.NextRefresh)
	e.clk.Set(*st.NextRefresh)
	if ev := e.pubs.next(t); ev.s == nil || !ev.s.ThisUpdate.After(s.ThisUpdate) {
		t.Fatalf("after the gate opened: published %+v", ev.s)
	}
	if n := len(e.resp.methods()); n != 1 {
		t.Errorf("%d responder requests, want 1", n)
	}
}
