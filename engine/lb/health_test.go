package lb

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
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
	delay   time.Duration
}

func startBackend(t *testing.T, mode behaviour, delay time.Duration) *testBackend {
	t.Helper()
	tb := &testBackend{delay: delay}
	tb.mode.Store(int32(mode))
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		n := tb.queries.Add(1)
		m := new(dns.Msg)
		m.SetReply(r)
		switch behaviour(tb.mode.Load()) {
		case servfail:
			m.Rcode = dns.RcodeServerFailure
		case nxdomain:
			m.Rcode = dns.RcodeNameError
		case slow:
			time.Sleep(tb.delay)
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
	return tb
}

// closedPort returns a loopback address nobody listens on: its UDP probes
// get ICMP port unreachable, its TCP ones a reset.
func closedPort(t *testing.T) string {
	t.Helper()
	p, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := p.LocalAddr().String()
	p.Close()
	return a
}

func fastCheck(maxFailures, rise int) HealthCheckConfig {
	return HealthCheckConfig{Interval: 20 * time.Millisecond, Timeout: 50 * time.Millisecond, MaxFailures: maxFailures, Rise: rise, QName: "A.Root-Servers.NET"}
}

func TestProbeReasons(t *testing.T) {
	ok := startBackend(t, healthy, 0)
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
		{"slow", startBackend(t, slow, 200*time.Millisecond).addr, nil, "timeout after 50ms"},
		{"servfail", startBackend(t, servfail, 0).addr, nil, "rcode SERVFAIL"},
		{"nxdomain accepted", startBackend(t, nxdomain, 0).addr, nil, ""},
		{"nxdomain with must_resolve", startBackend(t, nxdomain, 0).addr, func(h *HealthCheckConfig) { h.MustResolve = true }, "rcode NXDOMAIN with must_resolve"},
		// Over UDP an answer with another ID is ignored (it may be a late
		// answer to an earlier probe, or spoofed): the probe times out.
		{"id mismatch udp", startBackend(t, wrongID, 0).addr, nil, "timeout"},
		{"id mismatch tcp", startBackend(t, wrongID, 0).addr, func(h *HealthCheckConfig) { h.UseTCP = true }, "ID does not match"},
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

func startChecker(t *testing.T, s *Set) (*Checker, chan change) {
	t.Helper()
	ch := make(chan change, 64)
	c := NewChecker(s, nil)
	c.OnChange = func(b *Backend, st Status) { ch <- change{b.Name, st.Up, time.Now(), st.Reason} }
	c.Start(context.Background())
	t.Cleanup(c.Stop)
	return c, ch
}

func waitChange(t *testing.T, ch chan change, name string, up bool, within time.Duration) change {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case c := <-ch:
			if c.name == name && c.up == up {
				return c
			}
		case <-deadline:
			t.Fatalf("%s did not go up=%v within %v", name, up, within)
		}
	}
}

func TestCheckerFaultyBackends(t *testing.T) {
	good := startBackend(t, healthy, 0)
	cfgs := []BackendConfig{
		{Name: "good", Address: good.addr, HealthCheck: fastCheck(2, 2)},
		{Name: "down", Address: closedPort(t), HealthCheck: fastCheck(2, 2)},
		{Name: "slow", Address: startBackend(t, slow, 150*time.Millisecond).addr, HealthCheck: fastCheck(2, 2)},
		{Name: "servfail", Address: startBackend(t, servfail, 0).addr, HealthCheck: fastCheck(2, 2)},
		{Name: "forced-down", Address: good.addr, HealthCheck: HealthCheckConfig{Mode: ModeDown}},
		{Name: "forced-up", Address: closedPort(t), HealthCheck: HealthCheckConfig{Mode: ModeUp}},
	}
	s, err := NewSet(cfgs, map[string]string{"": PolicyRoundRobin})
	if err != nil {
		t.Fatal(err)
	}
	_, ch := startChecker(t, s)
	got := map[string]string{}
	deadline := time.After(2 * time.Second)
	for len(got) < 3 {
		select {
		case c := <-ch:
			if !c.up && c.name != "forced-down" {
				got[c.name] = c.why
			}
		case <-deadline:
			t.Fatalf("only %v went down within 2s", got)
		}
	}
	for name, want := range map[string]string{"slow": "timeout", "servfail": "SERVFAIL", "down": "udp"} {
		if !strings.Contains(got[name], want) {
			t.Errorf("%s went down because %q, want a reason mentioning %q", name, got[name], want)
		}
	}
	time.Sleep(100 * time.Millisecond) // several more rounds: the good one stays up
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

// TestDetectionAndRecoveryTime measures how long a backend that starts
// failing takes to be marked down, and to come back, against the bounds the
// Checker documents.
func TestDetectionAndRecoveryTime(t *testing.T) {
	const maxFailures, rise = 3, 2
	hc := fastCheck(maxFailures, rise)
	tb := startBackend(t, healthy, 0)
	s, err := NewSet([]BackendConfig{{Name: "flappy", Address: tb.addr, HealthCheck: hc}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, ch := startChecker(t, s)
	time.Sleep(3 * hc.Interval)
	if !s.Backends[0].Up() {
		t.Fatal("healthy backend is down")
	}

	slack := 5 * hc.Interval // a loaded CI machine delays tickers
	start := time.Now()
	tb.mode.Store(int32(servfail))
	c := waitChange(t, ch, "flappy", false, 2*time.Second)
	detect := c.at.Sub(start)
	// The first failing probe may come right after the fault, and probes run on a ticker:
	// when a loaded machine delays one tick, the next still comes on schedule, less than
	// an interval later. So max_failures probes can span just over max_failures-2
	// intervals; fewer than that would mean the checker probes faster than configured.
	lo, hi := time.Duration(maxFailures-2)*hc.Interval, time.Duration(maxFailures)*hc.Interval+hc.Timeout+slack
	t.Logf("down after %v (interval %v × max_failures %d = %v): %s", detect, hc.Interval, maxFailures, time.Duration(maxFailures)*hc.Interval, c.why)
	if detect < lo || detect > hi {
		t.Errorf("detection took %v, want within [%v, %v]", detect, lo, hi)
	}

	start = time.Now()
	tb.mode.Store(int32(healthy))
	c = waitChange(t, ch, "flappy", true, 2*time.Second)
	recover := c.at.Sub(start)
	lo, hi = time.Duration(rise-2)*hc.Interval, time.Duration(rise)*hc.Interval+slack // same ticker catch-up as above
	t.Logf("up after %v (interval %v × rise %d = %v)", recover, hc.Interval, rise, time.Duration(rise)*hc.Interval)
	if recover < lo || recover > hi {
		t.Errorf("recovery took %v, want within [%v, %v]", recover, lo, hi)
	}
}

// A backend that alternates good and bad answers never reaches two
// consecutive failures or successes: with max_failures and rise of 2 it keeps
// its state instead of flapping.
func TestAlternatingBackendDoesNotFlap(t *testing.T) {
	tb := startBackend(t, alternate, 0)
	s, err := NewSet([]BackendConfig{{Name: "alt", Address: tb.addr, HealthCheck: fastCheck(2, 2)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, ch := startChecker(t, s)
	deadline := time.Now().Add(time.Second)
	for tb.queries.Load() < 20 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := tb.queries.Load(); n < 10 {
		t.Fatalf("only %d checks in a second", n)
	}
	select {
	case c := <-ch:
		t.Fatalf("state changed: %+v", c)
	default:
	}
	if !s.Backends[0].Up() {
		t.Fatal("alternating backend is down")
	}
	// With max_failures 1 the same backend does flap: each failure takes it down.
	tb1 := startBackend(t, alternate, 0) // its own: the answers alternate per server
	s1, _ := NewSet([]BackendConfig{{Name: "alt1", Address: tb1.addr, HealthCheck: fastCheck(1, 1)}}, nil)
	_, ch1 := startChecker(t, s1)
	waitChange(t, ch1, "alt1", false, time.Second)
	waitChange(t, ch1, "alt1", true, time.Second)
}

func TestCheckerStopReturns(t *testing.T) {
	s, _ := NewSet([]BackendConfig{{Name: "slow", Address: startBackend(t, slow, time.Second).addr,
		HealthCheck: HealthCheckConfig{Interval: time.Hour, Timeout: 10 * time.Second}}}, nil)
	c := NewChecker(s, nil)
	c.Start(context.Background())
	time.Sleep(20 * time.Millisecond) // the probe is in flight
	done := make(chan struct{})
	go func() { c.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Stop did not interrupt an in-flight probe")
	}
}
