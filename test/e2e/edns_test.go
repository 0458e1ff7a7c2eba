package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// ednsFront is dnsfront with a packet cache in front of a StartBackend serving
// cacheRecords and a TXT answer of about 1800 bytes (big.cache.test).
func ednsFront(t *testing.T) (*Dnsfront, *Backend) {
	t.Helper()
	be := StartBackend(t, BackendOptions{Records: append(append([]string(nil), cacheRecords...), txtRecords("big.cache.test.", 9, 200)...)})
	d := startFE(t, feConfig{
		Binds: []feBind{
			{Port: "dns", Protocol: "Do53"},
			{Port: "dohc", Protocol: "DoH", DoH: `{paths: ["/dns-query"]}`},
		},
		Backends: []feBackend{{Name: "b", Addr: be.Addr}},
		Pools:    []fePool{{Name: "", Cache: "main"}},
		Caches:   []string{"{name: main, size: 1000, shards: 4}"},
	})
	return d, be
}

// lastReceived is the last query the backend saw for name.
func lastReceived(t *testing.T, be *Backend, name string) *dns.Msg {
	t.Helper()
	rs := be.Received()
	for i := len(rs) - 1; i >= 0; i-- {
		if q := rs[i].Msg; len(q.Question) == 1 && q.Question[0].Name == dns.Fqdn(name) {
			return q
		}
	}
	t.Fatalf("the backend never saw %s", name)
	return nil
}

// TestEDNSTowardsBackend: for a client without EDNS (UDP, TCP, DoH) dnsfront adds an
// OPT record advertising 4096 bytes towards the backend and removes it from the answer;
// a client's own OPT (1232, DO) is passed on as is and the answer keeps an OPT.
func TestEDNSTowardsBackend(t *testing.T) {
	t.Parallel()
	d, be := ednsFront(t)
	doh := newDoHClient(t, nil, "h1c")
	for _, proto := range []string{"udp", "tcp", "doh"} {
		for _, edns := range []bool{false, true} {
			name := fmt.Sprintf("%s-%v.cache.test", proto, edns)
			q := NewQuery(name, dns.TypeA)
			if edns {
				q.SetEdns0(1232, true)
			}
			var r *dns.Msg
			if proto == "doh" {
				r = dohQuery(t, doh, dohURL(d, "http", "dohc", "/dns-query"), q, false).Msg(t)
			} else {
				r = MustExchange(t, proto, d.Addr("dns"), q)
			}
			if r.Rcode != dns.RcodeNameError {
				t.Errorf("%s: rcode %s, want NXDOMAIN from the backend", name, dns.RcodeToString[r.Rcode])
			}
			sent := lastReceived(t, be, name)
			opt := sent.IsEdns0()
			switch {
			case opt == nil:
				t.Errorf("%s: the backend got no OPT record", name)
			case !edns && (opt.UDPSize() != 4096 || opt.Do()):
				t.Errorf("%s: client without EDNS, the backend got OPT size %d DO=%v, want 4096 without DO", name, opt.UDPSize(), opt.Do())
			case edns && (opt.UDPSize() != 1232 || !opt.Do()):
				t.Errorf("%s: the backend got OPT size %d DO=%v, want the client's 1232 with DO", name, opt.UDPSize(), opt.Do())
			}
			if len(sent.Extra) != 1 {
				t.Errorf("%s: the backend got %d additional records, want the one OPT", name, len(sent.Extra))
			}
			if got := r.IsEdns0() != nil; got != edns {
				t.Errorf("%s: answer has OPT = %v, want %v (the client's view)", name, got, edns)
			}
		}
	}
}

// TestEDNSClientPayloadSize: an 1800-byte answer is cut to TC=1 for UDP clients whose
// limit is smaller (512 without EDNS, 1232 advertised), from the backend and from the
// cache alike, and delivered whole to a 4096-byte UDP client, a TCP client and a DoH one.
func TestEDNSClientPayloadSize(t *testing.T) {
	t.Parallel()
	d, be := ednsFront(t)
	tr0 := metricOf(t, d, "dnsfront_truncated_responses_total")
	doh := newDoHClient(t, nil, "h1c")
	cases := []struct {
		name  string
		proto string
		size  uint16 // 0: no EDNS
		tc    bool
	}{
		{"UDP without EDNS", "udp", 0, true},
		{"UDP EDNS 1232", "udp", 1232, true},
		{"UDP EDNS 4096", "udp", 4096, false},
		{"TCP without EDNS", "tcp", 0, false},
		{"DoH without EDNS", "doh", 0, false},
	}
	for round := range 2 { // the second round comes from the cache
		for _, c := range cases {
			q := NewQuery("big.cache.test", dns.TypeTXT)
			if c.size > 0 {
				q.SetEdns0(c.size, false)
			}
			var r *dns.Msg
			wireLen := 0
			if c.proto == "doh" {
				res := dohQuery(t, doh, dohURL(d, "http", "dohc", "/dns-query"), q, true)
				r, wireLen = res.Msg(t), len(res.Body)
			} else {
				r = MustExchange(t, c.proto, d.Addr("dns"), q)
				wireLen = r.Len()
			}
			limit := int(c.size)
			if limit == 0 {
				limit = 512
			}
			switch {
			case c.tc && (!r.Truncated || len(r.Answer) != 0 || wireLen > limit):
				t.Errorf("round %d, %s: TC=%v, %d answers, %d bytes; want TC=1 within %d bytes", round, c.name, r.Truncated, len(r.Answer), wireLen, limit)
			case !c.tc && (r.Truncated || len(r.Answer) != 9):
				t.Errorf("round %d, %s: TC=%v, %d answers; want the whole answer (9 TXT)", round, c.name, r.Truncated, len(r.Answer))
			}
			if len(r.Question) != 1 || r.Question[0].Name != "big.cache.test." {
				t.Errorf("round %d, %s: question %v", round, c.name, r.Question)
			}
		}
	}
	// The backend was asked once per cache entry: without EDNS, and with EDNS (the
	// advertised size is not part of the key).
	if n := be.Count(""); n != 2 {
		t.Errorf("the backend saw %d queries for big.cache.test, want 2 (one per cache entry)", n)
	}
	tr, _ := waitMetricOf(t, d, 10*time.Second, func(v float64) bool { return v >= tr0+4 }, "dnsfront_truncated_responses_total")
	if tr != tr0+4 {
		t.Errorf("dnsfront_truncated_responses_total went %v → %v, want +4", tr0, tr)
	}
}
