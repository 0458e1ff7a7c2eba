package e2e

import (
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestBackendTimeoutServfail: a backend that never answers gets the client a SERVFAIL
// after about udp_timeout, over UDP and TCP, counted as a timeout.
func TestBackendTimeoutServfail(t *testing.T) {
	t.Parallel()
	be := StartBackend(t, BackendOptions{NeverAnswer: true})
	data := Do53(be.Addr)
	data.UDPTimeout = 1
	d := Start(t, Do53Config, data)
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
			r, err := ExchangeTimeout(proto, d.Addr("dns"), q, 3*time.Second)
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
		// udp_timeout is 1 s; the sweep runs every 50 ms.
		if res.elapsed < 900*time.Millisecond || res.elapsed > 1600*time.Millisecond {
			t.Errorf("%s: SERVFAIL after %v, want about 1s (udp_timeout: 1)", res.proto, res.elapsed)
		}
		t.Logf("%s: SERVFAIL after %v", res.proto, res.elapsed.Round(time.Millisecond))
	}
	if n := be.Count(""); n < 2 {
		t.Errorf("the backend saw %d queries, want 2", n)
	}
	after := d.WaitMetric(`dnsfront_servfail_responses_total{reason="timeout"}`, time.Second, func(v float64) bool { return v >= before+2 })
	if after != before+2 {
		t.Errorf(`dnsfront_servfail_responses_total{reason="timeout"} went %v → %v, want +2`, before, after)
	}
}
