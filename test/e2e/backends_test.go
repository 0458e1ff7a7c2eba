package e2e

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// healthName is the health-check qname of the backend tests; faultBackends count its
// queries apart from the clients'.
const healthName = "health.check.test."

// autoHealth is a health_checks block with active checks every second.
func autoHealth(timeoutMs, maxFailures, rise int, extra string) string {
	return fmt.Sprintf("{qname: %q, interval: 1, timeout: %d, max_failures: %d, rise: %d%s}",
		healthName, timeoutMs, maxFailures, rise, extra)
}

// queryNames sends an A query for every name over UDP from workers goroutines (each query
// from a new socket, so the event loops share them) and returns the failures: anything
// but NOERROR with one A record.
func queryNames(addr string, names []string, workers int) []string {
	var mu sync.Mutex
	var fails []string
	ch := make(chan string)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range ch {
				r, err := Exchange("udp", addr, NewQuery(name, dns.TypeA))
				var why string
				switch {
				case err != nil:
					why = err.Error()
				case r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1:
					why = fmt.Sprintf("rcode %s, %d answers", dns.RcodeToString[r.Rcode], len(r.Answer))
				}
				if why != "" {
					mu.Lock()
					fails = append(fails, name+": "+why)
					mu.Unlock()
				}
			}
		}()
	}
	for _, n := range names {
		ch <- n
	}
	close(ch)
	wg.Wait()
	return fails
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d.lb.test", prefix, i)
	}
	return out
}

// TestHealthChecksFaults runs real backends with faults behind one round_robin pool
// (health checks every second, timeout 1 s, max_failures 2, rise 2): one slow (answers
// after 3 s, over udp_timeout 1), one answering SERVFAIL, one flapping (every second
// check fails), one that goes down (its port closed) during the test, and a good one; and,
// in a pool no bind uses, two that answer NXDOMAIN to the check name, with and without
// must_resolve. It checks which are marked down and how fast, that clients see no error
// once a failure is detected, and that a recovered backend comes back after rise checks.
func TestHealthChecksFaults(t *testing.T) {
	t.Parallel()
	mk := func() *faultBackend {
		return startFaultBackend(t, FaultOptions{Synth: "192.0.2.1", HealthName: healthName})
	}
	good, down, slow, sf, flap := mk(), mk(), mk(), mk(), mk()
	slow.SetDelay(3 * time.Second)
	sf.SetFault(FaultServfail)
	flap.SetFault(FaultFlapHealth)
	nx := StartBackend(t, BackendOptions{Records: []string{"other.test. 60 IN A 192.0.2.9"}})
	// A check timeout of 1 s: a good backend's answer is not late on a loaded machine.
	hc := autoHealth(1000, 2, 2, "")
	d := startFE(t, feConfig{
		UDPTimeout:    1,
		DefaultPolicy: "round_robin",
		Binds:         []feBind{{Port: "dns", Protocol: "Do53"}},
		Backends: []feBackend{
			{Name: "good", Addr: good.Addr, Health: hc},
			{Name: "down", Addr: down.Addr, Health: hc},
			{Name: "slow", Addr: slow.Addr, Health: hc},
			{Name: "servfail", Addr: sf.Addr, Health: hc},
			{Name: "flap", Addr: flap.Addr, Health: hc},
			{Name: "nx-must", Addr: nx.Addr, Pools: []string{"spare"}, Health: autoHealth(1000, 2, 2, ", must_resolve: true")},
			{Name: "nx-may", Addr: nx.Addr, Pools: []string{"spare"}, Health: hc},
		},
	})
	addr := d.Addr("dns")

	// The first check's result applies at once: the slow one times out (1 s), the
	// SERVFAIL one and the NXDOMAIN one with must_resolve fail at once.
	for _, name := range []string{"slow", "servfail", "nx-must"} {
		took := waitBackendState(t, d, name, false, 15*time.Second)
		t.Logf("%s: down %v after start", name, took.Round(time.Millisecond))
	}
	for _, name := range []string{"good", "down", "flap", "nx-may"} {
		if v := backendUp(t, d, name); v != 1 {
			t.Errorf("backend %s: dnsfront_backend_up = %v, want 1", name, v)
		}
	}
	if !d.WaitLog(`backend=servfail`, 0, 10*time.Second) || !strings.Contains(d.Log(), "rcode SERVFAIL") {
		t.Errorf("the log does not give SERVFAIL as the reason:\n%s", d.Log())
	}
	if !strings.Contains(d.Log(), "must_resolve") {
		t.Errorf("the log does not give must_resolve as the reason for nx-must:\n%s", d.Log())
	}

	if fails := queryNames(addr, names("a", 60), 4); len(fails) > 0 {
		t.Fatalf("%d of 60 queries failed with three backends up, first: %s", len(fails), fails[0])
	}
	for _, b := range []struct {
		name string
		be   *faultBackend
	}{{"slow", slow}, {"servfail", sf}} {
		if n := b.be.Queries(); n != 0 {
			t.Errorf("backend %s is down but got %d client queries", b.name, n)
		}
	}
	for _, b := range []*faultBackend{good, down, flap} {
		if n := b.Queries(); n < 15 || n > 25 {
			t.Errorf("round_robin over 3 up backends: one got %d of 60 queries", n)
		}
	}

	// Close one backend's port: detection within max_failures × interval (+ slack).
	logLen := len(d.Log())
	down.Close()
	closedAt := time.Now()
	took := waitBackendState(t, d, "down", false, 15*time.Second)
	t.Logf("closed port: marked down %v after closing", took.Round(time.Millisecond))
	if took > 2*time.Second+time.Second+2*time.Second {
		t.Errorf("closed backend detected after %v, want within max_failures × interval + timeout (3 s) + slack", took)
	}
	if !d.WaitLog("backend=down", logLen, 10*time.Second) {
		t.Errorf("no log line for the state change of backend down")
	}
	// After detection: no client-visible error, nothing for the dead backend.
	if fails := queryNames(addr, names("b", 60), 4); len(fails) > 0 {
		t.Errorf("%d of 60 queries failed after detection, first: %s", len(fails), fails[0])
	}
	for _, b := range []*faultBackend{good, flap} {
		if n := b.Queries(); n < 20+25 || n > 20+35 {
			t.Errorf("after failover a backend has %d queries, want about 20 + 30", n)
		}
	}

	// Recovery: the slow backend turns fast; rise 2 → up after about 2 intervals.
	slow.SetDelay(0)
	took = waitBackendState(t, d, "slow", true, 15*time.Second)
	t.Logf("recovered backend: up %v after it was fixed (rise 2, interval 1 s)", took.Round(time.Millisecond))
	if took < 900*time.Millisecond {
		t.Errorf("backend up again after %v: rise 2 needs two successful checks one interval apart", took)
	}
	if fails := queryNames(addr, names("c", 60), 4); len(fails) > 0 {
		t.Errorf("%d of 60 queries failed after recovery, first: %s", len(fails), fails[0])
	}
	if n := slow.Queries(); n < 15 {
		t.Errorf("recovered backend got %d of 60 queries, want about 20", n)
	}

	// The flapping backend alternated good and bad checks the whole time and, with
	// max_failures 2 and rise 2, was never taken down.
	if n := flap.Checks(); n < 3 {
		t.Errorf("flapping backend saw %d checks in %v", n, time.Since(closedAt))
	}
	if strings.Contains(d.Log(), `backend=flap address=`+flap.Addr+` state=down`) || backendUp(t, d, "flap") != 1 {
		t.Errorf("the flapping backend was marked down:\n%s", d.Log())
	}
	if v := backendUp(t, d, "nx-may"); v != 1 {
		t.Errorf("NXDOMAIN to the check without must_resolve: up = %v, want 1", v)
	}
}

// TestAllBackendsDown: when every backend of the pool is down the client gets SERVFAIL at
// once (not after udp_timeout), over UDP and TCP, counted as no_backend.
func TestAllBackendsDown(t *testing.T) {
	t.Parallel()
	a := startFaultBackend(t, FaultOptions{Synth: "192.0.2.1", HealthName: healthName})
	b := startFaultBackend(t, FaultOptions{Synth: "192.0.2.1", HealthName: healthName})
	hc := autoHealth(1000, 1, 1, "")
	d := startFE(t, feConfig{
		UDPTimeout: 10,
		Binds:      []feBind{{Port: "dns", Protocol: "Do53"}},
		Backends:   []feBackend{{Name: "a", Addr: a.Addr, Health: hc}, {Name: "b", Addr: b.Addr, Health: hc}},
	})
	if fails := queryNames(d.Addr("dns"), names("up", 10), 2); len(fails) > 0 {
		t.Fatalf("with both backends up: %s", fails[0])
	}
	a.Close()
	b.Close()
	waitBackendState(t, d, "a", false, 15*time.Second)
	waitBackendState(t, d, "b", false, 15*time.Second)
	before := metricOf(t, d, "dnsfront_servfail_responses_total", `reason="no_backend"`)
	poolBefore := metricOf(t, d, "dnsfront_pool_no_backend_total")
	for _, proto := range []string{"udp", "tcp"} {
		q := NewQuery("nobody.lb.test", dns.TypeA)
		start := time.Now()
		r, err := ExchangeTimeout(proto, d.Addr("dns"), q, 15*time.Second)
		el := time.Since(start)
		if err != nil {
			t.Fatalf("%s: %v", proto, err)
		}
		if r.Rcode != dns.RcodeServerFailure || r.Id != q.Id || len(r.Question) != 1 || r.Question[0] != q.Question[0] {
			t.Errorf("%s: rcode %s id %d question %v, want a SERVFAIL echoing the query", proto, dns.RcodeToString[r.Rcode], r.Id, r.Question)
		}
		// Half of udp_timeout: far from it even on a loaded machine.
		if el > 5*time.Second {
			t.Errorf("%s: SERVFAIL after %v, want at once (udp_timeout is 10 s)", proto, el)
		}
		t.Logf("%s: SERVFAIL after %v", proto, el.Round(time.Microsecond))
	}
	after, _ := waitMetricOf(t, d, 10*time.Second, func(v float64) bool { return v >= before+2 }, "dnsfront_servfail_responses_total", `reason="no_backend"`)
	if after != before+2 {
		t.Errorf(`dnsfront_servfail_responses_total{reason="no_backend"} went %v → %v, want +2`, before, after)
	}
	if p := metricOf(t, d, "dnsfront_pool_no_backend_total"); p != poolBefore+2 {
		t.Errorf("dnsfront_pool_no_backend_total went %v → %v, want +2", poolBefore, p)
	}
}

// policyFront starts n synthesising backends behind one Do53 bind with policy.
func policyFront(t *testing.T, policy string, n int, tweak func(i int, b *feBackend)) (*Dnsfront, []*faultBackend) {
	t.Helper()
	var bes []*faultBackend
	var cfg []feBackend
	for i := range n {
		be := startFaultBackend(t, FaultOptions{Synth: "192.0.2.1", HealthName: healthName})
		bes = append(bes, be)
		fb := feBackend{Name: fmt.Sprintf("b%d", i), Addr: be.Addr}
		if tweak != nil {
			tweak(i, &fb)
		}
		cfg = append(cfg, fb)
	}
	d := startFE(t, feConfig{
		Binds:    []feBind{{Port: "dns", Protocol: "Do53"}},
		Backends: cfg,
		Pools:    []fePool{{Name: "", Policy: policy}},
	})
	return d, bes
}

func counts(bes []*faultBackend) []int {
	out := make([]int, len(bes))
	for i, b := range bes {
		out[i] = b.Queries()
	}
	return out
}

// TestPolicyRoundRobin: three backends get the same share, within one query per loop.
func TestPolicyRoundRobin(t *testing.T) {
	t.Parallel()
	d, bes := policyFront(t, "round_robin", 3, nil)
	if fails := queryNames(d.Addr("dns"), names("rr", 300), 6); len(fails) > 0 {
		t.Fatalf("%d failures, first: %s", len(fails), fails[0])
	}
	c := counts(bes)
	for _, n := range c {
		if n < 97 || n > 103 {
			t.Errorf("round_robin: counts %v of 300, want 100 each (±1 per event loop)", c)
			break
		}
	}
	t.Logf("round_robin: %v", c)
}

// TestPolicyWeightedRandom: weights 1, 2, 5 give shares 1/8, 2/8, 5/8, within 5 standard
// deviations of the binomial.
func TestPolicyWeightedRandom(t *testing.T) {
	t.Parallel()
	weights := []int{1, 2, 5}
	d, bes := policyFront(t, "weighted_random", 3, func(i int, b *feBackend) { b.Weight = weights[i] })
	const total = 800
	if fails := queryNames(d.Addr("dns"), names("wr", total), 6); len(fails) > 0 {
		t.Fatalf("%d failures, first: %s", len(fails), fails[0])
	}
	c := counts(bes)
	for i, n := range c {
		p := float64(weights[i]) / 8
		want := p * total
		sigma := math.Sqrt(total * p * (1 - p))
		if math.Abs(float64(n)-want) > 5*sigma {
			t.Errorf("weighted_random: backend of weight %d got %d of %d, want %.0f ± %.0f", weights[i], n, total, want, 5*sigma)
		}
	}
	t.Logf("weighted_random (weights %v): %v of %d", weights, c, total)
}

// TestPolicyFirstAvailable: every query goes to order 1 until it is down, then to order 2.
func TestPolicyFirstAvailable(t *testing.T) {
	t.Parallel()
	orders := []int{1, 2, 3}
	d, bes := policyFront(t, "first_available", 3, func(i int, b *feBackend) {
		// Listed out of order: the order key decides, not the place in the file.
		b.Order = orders[(i+1)%3]
		// A check timeout of 1 s: with max_failures 1, one answer late on a loaded machine
		// would take a healthy backend down.
		b.Health = autoHealth(1000, 1, 1, "")
	})
	// bes[2] has order 1, bes[0] order 2, bes[1] order 3.
	first, second := bes[2], bes[0]
	if fails := queryNames(d.Addr("dns"), names("fa", 50), 4); len(fails) > 0 {
		t.Fatalf("%d failures, first: %s", len(fails), fails[0])
	}
	if c := counts(bes); c[2] != 50 {
		t.Errorf("first_available: counts %v, want all 50 on the backend of order 1", c)
	}
	first.Close()
	waitBackendState(t, d, "b2", false, 10*time.Second)
	if fails := queryNames(d.Addr("dns"), names("fb", 50), 4); len(fails) > 0 {
		t.Fatalf("%d failures after order 1 went down, first: %s", len(fails), fails[0])
	}
	if n := second.Queries(); n != 50 {
		t.Errorf("first_available: after order 1 went down, order 2 got %d of 50 (counts %v)", n, counts(bes))
	}
}

// TestPolicyConsistentHash: a name always goes to the same backend; when one backend
// goes down only its names move, spread over the others.
func TestPolicyConsistentHash(t *testing.T) {
	t.Parallel()
	d, bes := policyFront(t, "consistent_hash", 3, func(_ int, b *feBackend) { b.Health = autoHealth(1000, 1, 1, "") })
	addr := d.Addr("dns")
	ns := names("ch", 150)
	owner := func() map[string]int {
		m := map[string]int{}
		for i, b := range bes {
			for n := range b.Names() {
				if _, dup := m[n]; dup {
					m[n] = -1 // seen by two backends
				} else {
					m[n] = i
				}
			}
		}
		return m
	}
	if fails := queryNames(addr, ns, 4); len(fails) > 0 {
		t.Fatalf("%d failures, first: %s", len(fails), fails[0])
	}
	// The same names again, in upper case: the hash is on the lower-cased name.
	upper := make([]string, len(ns))
	for i, n := range ns {
		upper[i] = strings.ToUpper(n)
	}
	if fails := queryNames(addr, upper, 4); len(fails) > 0 {
		t.Fatalf("%d failures, first: %s", len(fails), fails[0])
	}
	before := owner()
	share := make([]int, len(bes))
	for _, n := range ns {
		o := before[n+"."]
		if o < 0 {
			t.Errorf("%s went to two backends", n)
			continue
		}
		share[o]++
		if c := bes[o].NameCount(n); c != 2 {
			t.Errorf("%s: its backend saw it %d times, want 2", n, c)
		}
	}
	for i, s := range share {
		if s < 15 {
			t.Errorf("backend %d owns %d of 150 names: the ring is badly spread (%v)", i, s, share)
		}
	}
	t.Logf("consistent_hash: names per backend %v", share)

	bes[2].Close()
	waitBackendState(t, d, "b2", false, 10*time.Second)
	third := make([]string, len(ns))
	for i, n := range ns {
		third[i] = strings.Replace(n, "ch", "Ch", 1)
	}
	if fails := queryNames(addr, third, 4); len(fails) > 0 {
		t.Fatalf("%d failures after b2 went down, first: %s", len(fails), fails[0])
	}
	moved, kept, spread := 0, 0, map[int]int{}
	for _, n := range ns {
		o := before[n+"."]
		switch {
		case o < 0:
		case o == 2:
			for i := range 2 {
				if bes[i].NameCount(n) == 1 {
					spread[i]++
				}
			}
		case bes[o].NameCount(n) == 3:
			kept++
		default:
			moved++
		}
	}
	if moved > 0 {
		t.Errorf("consistent_hash: %d names of the backends still up moved when b2 went down (%d kept)", moved, kept)
	}
	if share[2] > 0 && (spread[0]+spread[1] != share[2] || spread[0] == 0 || spread[1] == 0) {
		t.Errorf("consistent_hash: b2's %d names went %d to b0 and %d to b1, want all of them, spread", share[2], spread[0], spread[1])
	}
	t.Logf("b2 down: %d names kept their backend, b2's %d names went %v", kept, share[2], spread)
}

// TestPolicyLeastOutstanding: with one backend slow (500 ms) and one fast, concurrent
// queries go mostly to the fast one. The policy evens out the queries in flight, so the
// shares follow the ratio of the latencies: 500 ms keeps it far above 5 even when a
// loaded machine makes the fast one take tens of milliseconds.
func TestPolicyLeastOutstanding(t *testing.T) {
	t.Parallel()
	d, bes := policyFront(t, "least_outstanding", 2, nil)
	bes[0].SetDelay(500 * time.Millisecond) // first in the file: it wins ties
	if fails := queryNames(d.Addr("dns"), names("lo", 300), 8); len(fails) > 0 {
		t.Fatalf("%d failures, first: %s", len(fails), fails[0])
	}
	c := counts(bes)
	if c[0]*5 > c[1] {
		t.Errorf("least_outstanding: slow backend got %d, fast %d; want the fast one to get over 5 times more", c[0], c[1])
	}
	t.Logf("least_outstanding: slow %d, fast %d", c[0], c[1])
}

// TestHealthStateKeptAcrossReload: a backend found down stays down through a SIGHUP
// reload. It drops queries, so a reset state would take a whole check timeout (0.8 s) to
// rediscover, and clients would meanwhile get SERVFAIL after udp_timeout.
func TestHealthStateKeptAcrossReload(t *testing.T) {
	t.Parallel()
	good := startFaultBackend(t, FaultOptions{Synth: "192.0.2.1", HealthName: healthName})
	bad := startFaultBackend(t, FaultOptions{Synth: "192.0.2.1", HealthName: healthName})
	hc := autoHealth(800, 1, 1, "")
	bad.SetFault(FaultDrop) // down after the first check's timeout
	cfg := feConfig{
		UDPTimeout:    1,
		DefaultPolicy: "round_robin",
		Binds:         []feBind{{Port: "dns", Protocol: "Do53"}},
		Backends:      []feBackend{{Name: "good", Addr: good.Addr, Health: hc}, {Name: "bad", Addr: bad.Addr, Health: hc}},
	}
	d := startFE(t, cfg)
	waitBackendState(t, d, "bad", false, 10*time.Second)
	reload(t, d)
	if v := backendUp(t, d, "bad"); v != 0 {
		t.Errorf("right after the reload dnsfront_backend_up{backend=\"bad\"} = %v, want 0 (state kept)", v)
	}
	q0 := bad.Queries()
	if fails := queryNames(d.Addr("dns"), names("rl", 40), 4); len(fails) > 0 {
		t.Errorf("%d of 40 queries failed right after the reload, first: %s", len(fails), fails[0])
	}
	if n := bad.Queries() - q0; n != 0 {
		t.Errorf("the backend that is down got %d queries right after the reload", n)
	}
}

// TestBackendCountersAfterTimeouts: queries to a backend that never answers end in
// SERVFAIL after udp_timeout; its timeouts are counted and nothing stays outstanding.
func TestBackendCountersAfterTimeouts(t *testing.T) {
	t.Parallel()
	be := startFaultBackend(t, FaultOptions{Synth: "192.0.2.1"})
	be.SetFault(FaultDrop)
	d := startFE(t, feConfig{
		UDPTimeout: 1,
		Binds:      []feBind{{Port: "dns", Protocol: "Do53"}},
		Backends:   []feBackend{{Name: "mute", Addr: be.Addr}},
	})
	label := `backend="mute"`
	t0 := metricOf(t, d, "dnsfront_backend_timeouts_total", label)
	fails := queryNames(d.Addr("dns"), names("mute", 10), 10)
	if len(fails) != 10 {
		t.Fatalf("%d of 10 queries failed, want all (SERVFAIL)", len(fails))
	}
	for _, f := range fails {
		if !strings.Contains(f, "SERVFAIL") {
			t.Errorf("want SERVFAIL, got %s", f)
		}
	}
	if v, _ := waitMetricOf(t, d, 10*time.Second, func(v float64) bool { return v >= t0+10 }, "dnsfront_backend_timeouts_total", label); v != t0+10 {
		t.Errorf("dnsfront_backend_timeouts_total went %v → %v, want +10", t0, v)
	}
	if v := metricOf(t, d, "dnsfront_backend_outstanding", label); v != 0 {
		t.Errorf("dnsfront_backend_outstanding = %v after every query timed out, want 0", v)
	}
	if v := metricOf(t, d, "dnsfront_outstanding_queries"); v != 0 {
		t.Errorf("dnsfront_outstanding_queries = %v, want 0", v)
	}
	if v := metricOf(t, d, "dnsfront_backend_queries_total", label); v != 10 {
		t.Errorf("dnsfront_backend_queries_total = %v, want 10", v)
	}
}

// TestBackendPortClosedFailsFast: a backend forced up (no health checks) whose port is
// closed makes its socket fail at once; clients get SERVFAIL (Do53) and 502 (DoH) right
// away rather than after udp_timeout, and every query is counted as a send error.
func TestBackendPortClosedFailsFast(t *testing.T) {
	t.Parallel()
	port, err := FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	d := startFE(t, feConfig{
		UDPTimeout: 10,
		Binds:      []feBind{{Port: "dohc", Protocol: "DoH", DoH: dohBlock}, {Port: "dns", Protocol: "Do53"}},
		Backends:   []feBackend{{Name: "closed", Addr: fmt.Sprintf("127.0.0.1:%d", port)}},
	})
	c := newDoHClient(t, nil, "h2c")
	for i := range 3 {
		start := time.Now()
		r := mustDoH(t, c, "POST", dohURL(d, "http", "dohc", "/dns-query"), "application/dns-message",
			packDoH(t, NewQuery(fmt.Sprintf("doh%d.lb.test", i), dns.TypeA)))
		if el := time.Since(start); r.Status != 502 || el > 5*time.Second {
			t.Errorf("DoH query %d: status %d after %v, want 502 at once", i, r.Status, el)
		}
		start = time.Now()
		m, err := Exchange("udp", d.Addr("dns"), NewQuery(fmt.Sprintf("udp%d.lb.test", i), dns.TypeA))
		if el := time.Since(start); err != nil || m.Rcode != dns.RcodeServerFailure || el > 5*time.Second {
			t.Errorf("UDP query %d: %v, %v after %v; want SERVFAIL at once", i, m, err, el)
		}
	}
	if v, _ := waitMetricOf(t, d, 10*time.Second, func(v float64) bool { return v >= 6 }, "dnsfront_send_errors_total"); v < 6 {
		t.Errorf("dnsfront_send_errors_total = %v, want at least 6", v)
	}
}
