package lb

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsfront/dnsfront/internal/testutil"
)

// behaviour of a test backend for its next answer.
type behaviour int32

const (
	healthy behaviour = iota
	servfail
	nxdomain
	slow
	wrongID
	alternate // healthy and SERVFAIL in turn, starting healthy
)

// testBackend is a real miekg/dns server on loopback, UDP and TCP on one port.
type testBackend struct {
	addr    string
	mode    atomic.Int32
	queries atomic.Int64
	seen    chan struct{} // receives (without blocking the server) when a query arrives
	release chan struct{} // closed when the test ends: a slow backend answers then
}

func startBackend(t *testing.T, mode behaviour) *testBackend {
	t.Helper()
	tb := &testBackend{seen: make(chan struct{}, 1), release: make(chan struct{})}
	tb.mode.Store(int32(mode))
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		n := tb.queries.Add(1)
		select {
		case tb.seen <- struct{}{}:
		default:
		}
		m := new(dns.Msg)
		m.SetReply(r)
		switch behaviour(tb.mode.Load()) {
		case servfail:
			m.Rcode = dns.RcodeServerFailure
		case nxdomain:
			m.Rcode = dns.RcodeNameError
		case slow:
			// A server that answers only when the test ends: the probe's
			// timeout is what is tested, however late the prober runs.
			<-tb.release
		case wrongID:
			m.Id = r.Id + 1
		case alternate:
			if n%2 == 0 {
				m.Rcode = dns.RcodeServerFailure
			}
		}
		if m.Rcode == dns.RcodeSuccess {
			a, _ := dns.NewRR(r.Question[0].Name + " 60 IN A 198.41.0.4")
			m.Answer = append(m.Answer, a)
		}
		_ = w.WriteMsg(m)
	})
	var pc net.PacketConn
	var ln net.Listener
	for range 10 { // UDP and TCP on the same port: retry if TCP's is taken
		p, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", p.LocalAddr().String())
		if err != nil {
			p.Close()
			continue
		}
		pc, ln = p, l
		break
	}
	if pc == nil {
		t.Fatal("no port free for UDP and TCP")
	}
	tb.addr = pc.LocalAddr().String()
	us := &dns.Server{PacketConn: pc, Handler: h}
	ts := &dns.Server{Listener: ln, Handler: h}
	go us.ActivateAndServe()
	go ts.ActivateAndServe()
	t.Cleanup(func() { us.Shutdown(); ts.Shutdown() })
	t.Cleanup(func() { close(tb.release) }) // runs first: no handler holds up Shutdown
	return tb
}

// closedPort returns a loopback address nobody listens on: its UDP probes
// get ICMP port unreachable, its TCP ones a reset. The port is reserved, so
// no other test binds it meanwhile.
func closedPort(t *testing.T) string {
	t.Helper()
	return testutil.FreeAddr(t, "127.0.0.1").String()
}

// fastCheck is a check whose rounds the tests drive with a fake clock. Its
// timeout is real time and generous: a loaded machine must not turn a good
// answer into a timeout. Tests of timeouts set a short one on a backend
// that answers much later (slowCheck).
func fastCheck(maxFailures, rise int) HealthCheckConfig {
	return HealthCheckConfig{Interval: 20 * time.Millisecond, Timeout: 5 * time.Second, MaxFailures: maxFailures, Rise: rise, QName: "A.Root-Servers.NET"}
}

// slowCheck is a check with a short timeout, for the slow test backend,
// which answers only when the test ends: the probe fails however loaded the
// machine is.
func slowCheck(maxFailures, rise int) HealthCheckConfig {
	hc := fastCheck(maxFailures, rise)
	hc.Timeout = 100 * time.Millisecond
	return hc
}

func TestProbeReasons(t *testing.T) {
	ok := startBackend(t, healthy)
	tests := []struct {
		name string
		addr string
		hc   func(*HealthCheckConfig)
		want string // "" for success
	}{
		{"healthy over udp", ok.addr, nil, ""},
		{"healthy over tcp", ok.addr, func(h *HealthCheckConfig) { h.UseTCP = true }, ""},
		{"closed port", closedPort(t), nil, "udp"},
		{"closed port tcp", closedPort(t), func(h *HealthCheckConfig) { h.UseTCP = true }, "refused"},
		{"slow", startBackend(t, slow).addr, func(h *HealthCheckConfig) { h.Timeout = slowCheck(1, 1).Timeout }, "timeout after 100ms"},
		{"servfail", startBackend(t, servfail).addr, nil, "rcode SERVFAIL"},
		{"nxdomain accepted", startBackend(t, nxdomain).addr, nil, ""},
		{"nxdomain with must_resolve", startBackend(t, nxdomain).addr, func(h *HealthCheckConfig) { h.MustResolve = true }, "rcode NXDOMAIN with must_resolve"},
		// Over UDP an answer with another ID is ignored (it may be a late
		// answer to an earlier probe, or spoofed): the probe times out.
		{"id mismatch udp", startBackend(t, wrongID).addr, func(h *HealthCheckConfig) { h.Timeout = slowCheck(1, 1).Timeout }, "timeout"},
		{"id mismatch tcp", startBackend(t, wrongID).addr, func(h *HealthCheckConfig) { h.UseTCP = true }, "ID does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hc := fastCheck(1, 1)
			if tt.hc != nil {
				tt.hc(&hc)
			}
			s, err := NewSet([]BackendConfig{{Name: "b", Address: tt.addr, HealthCheck: hc}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = Probe(context.Background(), s.Backends[0])
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("probe failed: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("probe error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

type change struct {
	name string
	up   bool
	at   time.Time
	why  string
}

// fakeClock is a Clock that moves only when the test says so: checks run one
// round per Advance, however loaded the machine is.
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
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), armed: make(chan struct{}, 1024)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) (<-chan time.Time, func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), c: make(chan time.Time, 1)}
	c.timers = append(c.timers, t)
	c.armed <- struct{}{}
	return t.c, func() {
		c.mu.Lock()
		t.off = true
		c.mu.Unlock()
	}
}

// Advance moves the clock and fires the timers that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	live := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.off:
		case !t.at.After(c.now):
			t.off = true
			t.c <- c.now
		default:
			live = append(live, t)
		}
	}
	c.timers = live
}

// waitArmed waits until n more timers were set: n checkers are waiting for
// their next round.
func (c *fakeClock) waitArmed(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-c.armed:
		case <-time.After(10 * time.Second):
			t.Fatal("checkers did not wait for their next round within 10s")
		}
	}
}

type checkResult struct {
	name string
	err  error
}

type checkerRun struct {
	c       *Checker
	clk     *fakeClock
	changes chan change
	checks  chan checkResult
}

// startChecker runs a Checker on s with a fake clock that starts at clk's
// time (a new one when clk is nil).
func startChecker(t *testing.T, s *Set, clk *fakeClock) *checkerRun {
	t.Helper()
	if clk == nil {
		clk = newFakeClock()
	}
	r := &checkerRun{c: NewChecker(s, nil), clk: clk, changes: make(chan change, 256), checks: make(chan checkResult, 256)}
	r.c.Clock = clk
	r.c.OnChange = func(b *Backend, st Status) { r.changes <- change{b.Name, st.Up, clk.Now(), st.Reason} }
	r.c.OnCheck = func(b *Backend, err error) { r.checks <- checkResult{b.Name, err} }
	r.c.Start(context.Background())
	t.Cleanup(r.c.Stop)
	return r
}

// results waits for n check results.
func (r *checkerRun) results(t *testing.T, n int) []checkResult {
	t.Helper()
	var out []checkResult
	for range n {
		select {
		case c := <-r.checks:
			out = append(out, c)
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d checks within 10s", len(out), n)
		}
	}
	return out
}

// round lets n checkers finish their current check, wait for the next round,
// and starts it: one Interval later on the fake clock.
func (r *checkerRun) round(t *testing.T, n int, interval time.Duration) []checkResult {
	t.Helper()
	r.clk.waitArmed(t, n)
	r.clk.Advance(interval)
	return r.results(t, n)
}

func (r *checkerRun) noChange(t *testing.T) {
	t.Helper()
	select {
	case c := <-r.changes:
		t.Fatalf("state changed: %+v", c)
	default:
	}
}

func waitChange(t *testing.T, ch chan change, name string, up bool) change {
	t.Helper()
	for {
		select {
		case c := <-ch:
			if c.name == name && c.up == up {
				return c
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s did not go up=%v", name, up)
		}
	}
}

func TestCheckerFaultyBackends(t *testing.T) {
	good := startBackend(t, healthy)
	cfgs := []BackendConfig{
		{Name: "good", Address: good.addr, HealthCheck: fastCheck(2, 2)},
		{Name: "down", Address: closedPort(t), HealthCheck: fastCheck(2, 2)},
		{Name: "slow", Address: startBackend(t, slow).addr, HealthCheck: slowCheck(2, 2)},
		{Name: "servfail", Address: startBackend(t, servfail).addr, HealthCheck: fastCheck(2, 2)},
		{Name: "forced-down", Address: good.addr, HealthCheck: HealthCheckConfig{Mode: ModeDown}},
		{Name: "forced-up", Address: closedPort(t), HealthCheck: HealthCheckConfig{Mode: ModeUp}},
	}
	s, err := NewSet(cfgs, map[string]string{"": PolicyRoundRobin})
	if err != nil {
		t.Fatal(err)
	}
	r := startChecker(t, s, nil)
	r.results(t, 4) // the first round starts at once
	got := map[string]string{}
	for len(got) < 3 {
		select {
		case c := <-r.changes:
			if !c.up && c.name != "forced-down" {
				got[c.name] = c.why
			}
		default:
			t.Fatalf("after the first round only %v are down", got)
		}
	}
	for name, want := range map[string]string{"slow": "timeout", "servfail": "SERVFAIL", "down": "udp"} {
		if !strings.Contains(got[name], want) {
			t.Errorf("%s went down because %q, want a reason mentioning %q", name, got[name], want)
		}
	}
	for range 5 { // several more rounds: the good one stays up
		r.round(t, 4, fastCheck(2, 2).Interval)
	}
	want := map[string]bool{"good": true, "down": false, "slow": false, "servfail": false, "forced-down": false, "forced-up": true}
	for _, b := range s.Backends {
		if b.Up() != want[b.Name] {
			t.Errorf("%s: up=%v, want %v (%+v)", b.Name, b.Up(), want[b.Name], b.Status())
		}
	}
	// Failover: only the up backends receive queries.
	pk := s.Pool("").NewLoopPicker()
	for i := range 100 {
		if b := pk.Pick(noView, 0); b.Name != "good" && b.Name != "forced-up" {
			t.Fatalf("pick %d went to %s, which is down", i, b.Name)
		}
	}
}

// TestDetectionAndRecovery counts the checks a backend that starts failing
// takes to be marked down, and to come back, and the time they span on the
// Checker's clock, against the bounds the Checker documents.
func TestDetectionAndRecovery(t *testing.T) {
	const maxFailures, rise = 3, 2
	hc := fastCheck(maxFailures, rise)
	tb := startBackend(t, healthy)
	s, err := NewSet([]BackendConfig{{Name: "flappy", Address: tb.addr, HealthCheck: hc}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := startChecker(t, s, nil)
	r.results(t, 1)
	r.round(t, 1, hc.Interval)
	r.round(t, 1, hc.Interval)
	if !s.Backends[0].Up() {
		t.Fatal("healthy backend is down")
	}
	r.noChange(t)

	tb.mode.Store(int32(servfail))
	start := r.clk.Now()
	for i := 1; i <= maxFailures; i++ {
		res := r.round(t, 1, hc.Interval)[0]
		if res.err == nil {
			t.Fatalf("check %d after the fault succeeded", i)
		}
		if up := s.Backends[0].Up(); up != (i < maxFailures) {
			t.Fatalf("after %d failed checks up=%v, want down only at %d", i, up, maxFailures)
		}
	}
	c := waitChange(t, r.changes, "flappy", false)
	// The fault may come just after a check: the first failing one is then
	// up to an Interval later, the last max_failures-1 Intervals after it.
	if d := c.at.Sub(start); d > time.Duration(maxFailures)*hc.Interval {
		t.Errorf("down after %v on the checker's clock, want at most max_failures × interval = %v", d, time.Duration(maxFailures)*hc.Interval)
	}
	if !strings.Contains(c.why, "3 consecutive failed checks") {
		t.Errorf("reason %q", c.why)
	}

	tb.mode.Store(int32(healthy))
	for i := 1; i <= rise; i++ {
		r.round(t, 1, hc.Interval)
		if up := s.Backends[0].Up(); up != (i == rise) {
			t.Fatalf("after %d good checks up=%v, want up only at %d", i, up, rise)
		}
	}
	waitChange(t, r.changes, "flappy", true)
}

// A backend that alternates good and bad answers never reaches two
// consecutive failures or successes: with max_failures and rise of 2 it keeps
// its state instead of flapping.
func TestAlternatingBackendDoesNotFlap(t *testing.T) {
	tb := startBackend(t, alternate)
	s, err := NewSet([]BackendConfig{{Name: "alt", Address: tb.addr, HealthCheck: fastCheck(2, 2)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := startChecker(t, s, nil)
	r.results(t, 1)
	for range 20 {
		r.round(t, 1, fastCheck(2, 2).Interval)
	}
	r.noChange(t)
	if !s.Backends[0].Up() {
		t.Fatal("alternating backend is down")
	}
	// With max_failures 1 the same backend does flap: each failure takes it down.
	tb1 := startBackend(t, alternate) // its own: the answers alternate per server
	s1, _ := NewSet([]BackendConfig{{Name: "alt1", Address: tb1.addr, HealthCheck: fastCheck(1, 1)}}, nil)
	r1 := startChecker(t, s1, nil)
	r1.results(t, 1)
	r1.round(t, 1, fastCheck(1, 1).Interval)
	waitChange(t, r1.changes, "alt1", false)
	r1.round(t, 1, fastCheck(1, 1).Interval)
	waitChange(t, r1.changes, "alt1", true)
}

// TestReloadKeepsCheckProgress: a reload hands a backend's check progress to
// the new Set. The new Checker does not probe before an Interval has passed
// since the last check, goes on counting failures where the old one stopped,
// and does not apply its first result directly: one lost check right after a
// reload does not take a backend down.
func TestReloadKeepsCheckProgress(t *testing.T) {
	hc := fastCheck(3, 1)
	tb := startBackend(t, healthy)
	cfg := []BackendConfig{{Name: "b", Address: tb.addr, HealthCheck: hc}}
	old, err := NewSet(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := startChecker(t, old, nil)
	r.results(t, 1)
	tb.mode.Store(int32(servfail))
	r.round(t, 1, hc.Interval)
	r.round(t, 1, hc.Interval) // two failures of three
	r.clk.waitArmed(t, 1)
	r.c.Stop()
	if !old.Backends[0].Up() {
		t.Fatal("down before max_failures")
	}

	cur, err := NewSet(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	cur.Inherit(old)
	r2 := startChecker(t, cur, r.clk)
	r2.clk.waitArmed(t, 1) // waits for the interval instead of probing at once
	select {
	case c := <-r2.checks:
		t.Fatalf("the new checker probed at once: %+v", c)
	default:
	}
	if !cur.Backends[0].Up() {
		t.Fatal("the reload took the backend down")
	}
	r2.clk.Advance(hc.Interval)
	r2.results(t, 1)
	c := waitChange(t, r2.changes, "b", false)
	if !strings.Contains(c.why, "3 consecutive failed checks") {
		t.Errorf("down because %q, want the third consecutive failure", c.why)
	}

	// A backend that loses one check right after a reload stays up.
	tb.mode.Store(int32(healthy))
	hc2 := fastCheck(2, 1)
	cfg2 := []BackendConfig{{Name: "b", Address: tb.addr, HealthCheck: hc2}}
	up, _ := NewSet(cfg2, nil)
	r3 := startChecker(t, up, nil)
	r3.results(t, 1)
	r3.clk.waitArmed(t, 1)
	r3.c.Stop()
	tb.mode.Store(int32(servfail))
	next, _ := NewSet(cfg2, nil)
	next.Inherit(up)
	r4 := startChecker(t, next, r3.clk)
	r4.clk.waitArmed(t, 1)
	r4.clk.Advance(hc2.Interval)
	if res := r4.results(t, 1)[0]; res.err == nil {
		t.Fatal("the check succeeded")
	}
	if !next.Backends[0].Up() {
		t.Fatal("one failed check after a reload took the backend down (max_failures 2)")
	}
}

// TestInheritKeepsCounters: queries sent before a reload and answered after
// it keep the backend's counters whole and its outstanding gauge at zero; a
// backend whose address changed starts afresh.
func TestInheritKeepsCounters(t *testing.T) {
	cfg := []BackendConfig{{Name: "a", Address: "127.0.0.1:5300"}, {Name: "b", Address: "127.0.0.1:5301"}}
	old, err := NewSet(cfg, map[string]string{"p": ""})
	if err != nil {
		t.Fatal(err)
	}
	lo := old.NewLoop()
	lo.QuerySent(0)
	lo.QuerySent(0)
	lo.QuerySent(1)
	setDown(old.Backends...)
	old.Pool("").NewLoopPicker().Pick(lo, 0)

	moved := []BackendConfig{cfg[0], {Name: "b", Address: "127.0.0.1:5399"}}
	cur, err := NewSet(moved, map[string]string{"p": ""})
	if err != nil {
		t.Fatal(err)
	}
	cur.Inherit(old)
	ln := cur.NewLoop()
	ln.ResponseReceived(0, time.Millisecond)
	ln.TimedOut(0)
	k := cur.Counters(cur.Backends[0])
	if k.Queries != 2 || k.Responses != 1 || k.Timeouts != 1 || k.Outstanding != 0 {
		t.Errorf("a: %+v, want 2 queries, 1 response, 1 timeout, 0 outstanding", k)
	}
	if cur.Backends[0].Up() {
		t.Error("a: health not inherited")
	}
	if k := cur.Counters(cur.Backends[1]); k.Queries != 0 || !cur.Backends[1].Up() {
		t.Errorf("b moved to another address and kept %+v, up=%v", k, cur.Backends[1].Up())
	}
	if n := cur.Pool("").NoBackend(); n != 1 {
		t.Errorf("pool no-backend count %d after reload, want 1", n)
	}
	// An answer on a loop of the new Set for a query whose sending the
	// collector has not seen yet never shows a negative gauge.
	ln.ResponseReceived(1, time.Millisecond)
	if k := cur.Counters(cur.Backends[1]); k.Outstanding < 0 {
		t.Errorf("outstanding %d", k.Outstanding)
	}
}

func TestCheckerStopReturns(t *testing.T) {
	tb := startBackend(t, slow)
	s, _ := NewSet([]BackendConfig{{Name: "slow", Address: tb.addr,
		HealthCheck: HealthCheckConfig{Interval: time.Hour, Timeout: time.Hour}}}, nil)
	c := NewChecker(s, nil)
	c.Start(context.Background())
	select { // the probe is in flight
	case <-tb.seen:
	case <-time.After(10 * time.Second):
		t.Fatal("no probe within 10s")
	}
	done := make(chan struct{})
	go func() { c.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second): // not interrupted, Stop would wait out the hour-long timeout
		t.Fatal("Stop did not interrupt an in-flight probe")
	}
}
