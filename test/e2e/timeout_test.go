package e2e

import (
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestBackendTimeoutServfail: a backend that never answers gets the client a SERVFAIL
// after about udp_timeout, over UDP and TCP, counted as a timeout.
func TestBackendTimeoutServfail(t *testing.T) {
	t.Parallel()
	be := StartBackend(t, BackendOptions{NeverAnswer: true})
	cfg := do53FE(be.Addr)
	cfg.Backends[0].UDPTimeout = 3
	d := startFE(t, cfg)
	before := d.Metric(`dnsfront_servfail_responses_total{reason="timeout"}`)

	type result struct {
		proto   string
		r       *dns.Msg
		err     error
		elapsed time.Duration
		id      uint16
	}
	done := make(chan result, 2)
	for _, proto := range []string{"udp", "tcp"} {
		go func() {
			q := NewQuery("slow.example.test", dns.TypeA)
			start := time.Now()
			r, err := ExchangeTimeout(proto, d.Addr("dns"), q, 15*time.Second)
			done <- result{proto, r, err, time.Since(start), q.Id}
		}()
	}
	for range 2 {
		res := <-done
		if res.err != nil {
			t.Errorf("%s: no answer: %v", res.proto, res.err)
			continue
		}
		if res.r.Rcode != dns.RcodeServerFailure {
			t.Errorf("%s: rcode %s, want SERVFAIL", res.proto, dns.RcodeToString[res.r.Rcode])
		}
		if res.r.Id != res.id || len(res.r.Question) != 1 || res.r.Question[0].Name != "slow.example.test." {
			t.Errorf("%s: SERVFAIL does not echo the query: id %d (want %d), question %v", res.proto, res.r.Id, res.id, res.r.Question)
		}
		// udp_timeout is 3 s; the sweep runs every 50 ms. The upper bound leaves a loaded
		// machine 2.5 s and still catches a timeout applied twice.
		if res.elapsed < 2900*time.Millisecond || res.elapsed > 5500*time.Millisecond {
			t.Errorf("%s: SERVFAIL after %v, want about 3s (udp_timeout: 3)", res.proto, res.elapsed)
		}
		t.Logf("%s: SERVFAIL after %v", res.proto, res.elapsed.Round(time.Millisecond))
	}
	if n := be.Count(""); n < 2 {
		t.Errorf("the backend saw %d queries, want 2", n)
	}
	after := d.WaitMetric(`dnsfront_servfail_responses_total{reason="timeout"}`, 10*time.Second, func(v float64) bool { return v >= before+2 })
	if after != before+2 {
		t.Errorf(`dnsfront_servfail_responses_total{reason="timeout"} went %v → %v, want +2`, before, after)
	}
}

// TestBackendDownServfail: nothing listens at the backend's address. Queries still get a
// SERVFAIL (at the latest after udp_timeout), dnsfront keeps serving, and the next queries
// get the same treatment rather than silence.
func TestBackendDownServfail(t *testing.T) {
	t.Parallel()
	port, err := FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cfg := do53FE("127.0.0.1:" + strconv.Itoa(port))
	cfg.Backends[0].UDPTimeout = 3
	d := startFE(t, cfg)
	for i := range 3 {
		for _, proto := range []string{"udp", "tcp"} {
			start := time.Now()
			r, err := ExchangeTimeout(proto, d.Addr("dns"), NewQuery("down.example.test", dns.TypeA), 15*time.Second)
			if err != nil {
				t.Fatalf("round %d %s: no answer with the backend down: %v", i, proto, err)
			}
			if r.Rcode != dns.RcodeServerFailure {
				t.Errorf("round %d %s: rcode %s, want SERVFAIL", i, proto, dns.RcodeToString[r.Rcode])
			}
			if el := time.Since(start); el > 5500*time.Millisecond {
				t.Errorf("round %d %s: SERVFAIL after %v, above udp_timeout", i, proto, el)
			}
		}
	}
}
