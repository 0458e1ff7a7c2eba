package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestTCRetryOverTCP: the backend truncates over UDP. A TCP client gets the full answer,
// because dnsfront asks the backend again over TCP; a UDP client gets the TC=1 answer and
// dig, which retries over TCP itself, ends with the full answer.
func TestTCRetryOverTCP(t *testing.T) {
	t.Parallel()
	records := append(txtRecords("big.example.test.", 30, 63), "www.example.test. 300 IN A 198.51.100.7")
	be := StartBackend(t, BackendOptions{Records: records, TruncateUDP: true})
	d := startFE(t, do53FE(be.Addr))
	addr := d.Addr("dns")

	t.Run("tcp client gets the full answer", func(t *testing.T) {
		before := d.Metric("dnsfront_tc_tcp_retries_total")
		udp0, tcp0 := be.Count("udp"), be.Count("tcp")
		r := MustExchange(t, "tcp", addr, NewQuery("big.example.test", dns.TypeTXT))
		if r.Truncated || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 30 {
			t.Fatalf("tcp answer: TC=%v rcode=%s, %d records; want the 30 TXT records", r.Truncated, dns.RcodeToString[r.Rcode], len(r.Answer))
		}
		if du, dt := be.Count("udp")-udp0, be.Count("tcp")-tcp0; du != 1 || dt != 1 {
			t.Errorf("backend saw %d UDP and %d TCP queries, want 1 and 1 (UDP, then the TCP retry)", du, dt)
		}
		after := d.WaitMetric("dnsfront_tc_tcp_retries_total", 10*time.Second, func(v float64) bool { return v > before })
		if after != before+1 {
			t.Errorf("dnsfront_tc_tcp_retries_total went %v → %v, want +1", before, after)
		}
	})
	t.Run("udp client gets TC=1", func(t *testing.T) {
		q := NewQuery("www.example.test", dns.TypeA)
		r := MustExchange(t, "udp", addr, q)
		if !r.Truncated || len(r.Answer) != 0 || r.Id != q.Id {
			t.Errorf("udp answer: TC=%v, %d records, id %d (query %d); want the backend's TC=1 answer", r.Truncated, len(r.Answer), r.Id, q.Id)
		}
		out := Dig(t, addr, "+notcp", "+ignore", "www.example.test", "A")
		if !flagsContain(out, "tc") {
			t.Errorf("dig +ignore: no tc flag in\n%s", out)
		}
		// Without +ignore dig retries over TCP on TC=1 and must end with the answer.
		if got := shortLines(Dig(t, addr, "+notcp", "+short", "www.example.test", "A")); len(got) != 1 || got[0] != "198.51.100.7" {
			t.Errorf("dig after its own TCP retry: %q, want 198.51.100.7", got)
		}
	})
}

// flagsContain reports whether the ";; flags:" line of dig (";; Flags:" of kdig) has flag.
func flagsContain(digOut, flag string) bool {
	for _, l := range strings.Split(digOut, "\n") {
		l = strings.ToLower(l)
		if i := strings.Index(l, ";; flags:"); i >= 0 {
			f := l[i+len(";; flags:"):]
			if j := strings.IndexByte(f, ';'); j >= 0 {
				f = f[:j]
			}
			for _, x := range strings.Fields(f) {
				if x == flag {
					return true
				}
			}
		}
	}
	return false
}

// TestTruncateToClientSize: an answer larger than the UDP client's EDNS size (or 512
// bytes without EDNS) is cut to TC=1 by dnsfront; a client with room gets it whole.
func TestTruncateToClientSize(t *testing.T) {
	t.Parallel()
	be := StartBackend(t, BackendOptions{Records: txtRecords("big.example.test.", 30, 63)})
	d := startFE(t, do53FE(be.Addr))
	addr := d.Addr("dns")

	cases := []struct {
		name      string
		edns      uint16 // 0: no OPT
		truncated bool
	}{
		{"no EDNS (512)", 0, true},
		{"EDNS 1232", 1232, true},
		{"EDNS 4096", 4096, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := d.Metric("dnsfront_truncated_responses_total")
			q := NewQuery("big.example.test", dns.TypeTXT)
			if c.edns > 0 {
				q.SetEdns0(c.edns, false)
			}
			r := MustExchange(t, "udp", addr, q)
			if r.Truncated != c.truncated {
				t.Fatalf("TC=%v, want %v (answer of %d records)", r.Truncated, c.truncated, len(r.Answer))
			}
			if c.truncated {
				if len(r.Answer) != 0 || len(r.Ns) != 0 || len(r.Question) != 1 {
					t.Errorf("truncated answer keeps %d answer and %d authority records, %d questions", len(r.Answer), len(r.Ns), len(r.Question))
				}
				if after := d.WaitMetric("dnsfront_truncated_responses_total", 10*time.Second, func(v float64) bool { return v > before }); after != before+1 {
					t.Errorf("dnsfront_truncated_responses_total went %v → %v, want +1", before, after)
				}
			} else if len(r.Answer) != 30 {
				t.Errorf("got %d records, want 30", len(r.Answer))
			}
			if size := r.Len(); c.edns > 0 && size > int(c.edns) || c.edns == 0 && size > 512 {
				t.Errorf("answer is %d bytes, above the client's limit", size)
			}
		})
	}
	t.Run("kdig bufsize 1232 sees TC", func(t *testing.T) {
		out := Kdig(t, addr, "+notcp", "+ignore", "+bufsize=1232", "big.example.test", "TXT")
		if !flagsContain(out, "tc") {
			t.Errorf("kdig: no tc flag in\n%s", out)
		}
	})
}

// TestNoOPTForClientWithoutEDNS: dnsfront adds an OPT record (4096) towards the backend
// for a client that sent none, and strips it from the answer; a client with EDNS gets
// its OPT back and its DO bit passes through.
func TestNoOPTForClientWithoutEDNS(t *testing.T) {
	t.Parallel()
	be := StartBackend(t, BackendOptions{Records: []string{"www.example.test. 300 IN A 198.51.100.7"}})
	d := startFE(t, do53FE(be.Addr))
	addr := d.Addr("dns")

	for _, proto := range []string{"udp", "tcp"} {
		t.Run(proto, func(t *testing.T) {
			n0 := len(be.Received())
			q := NewQuery("www.example.test", dns.TypeA)
			r := MustExchange(t, proto, addr, q)
			if len(r.Answer) != 1 {
				t.Fatalf("got %d answers, want 1", len(r.Answer))
			}
			if opt := r.IsEdns0(); opt != nil {
				t.Errorf("the client sent no OPT but the answer has one: %v", opt)
			}
			if len(r.Extra) != 0 {
				t.Errorf("additional section: %v, want empty", r.Extra)
			}
			got := be.Received()[n0:]
			if len(got) != 1 {
				t.Fatalf("backend saw %d queries, want 1", len(got))
			}
			opt := got[0].Msg.IsEdns0()
			if opt == nil || opt.UDPSize() != 4096 {
				t.Errorf("backend query OPT = %v, want one advertising 4096", opt)
			}
		})
	}
	t.Run("client EDNS with DO", func(t *testing.T) {
		n0 := len(be.Received())
		q := NewQuery("www.example.test", dns.TypeA)
		q.SetEdns0(1232, true)
		r := MustExchange(t, "udp", addr, q)
		if opt := r.IsEdns0(); opt == nil {
			t.Error("the client sent an OPT and got none back")
		}
		got := be.Received()[n0:]
		if len(got) != 1 {
			t.Fatalf("backend saw %d queries, want 1", len(got))
		}
		opt := got[0].Msg.IsEdns0()
		if opt == nil || opt.UDPSize() != 1232 || !opt.Do() {
			t.Errorf("backend query OPT = %v, want the client's (1232, DO)", opt)
		}
		if n := len(got[0].Msg.Extra); n != 1 {
			t.Errorf("backend query has %d additional records, want the client's single OPT", n)
		}
	})
}

// TestStripOPTKeepsAdditional: a backend may put its OPT record before other additional
// records (RFC 6891 §6.1.1). For a client without EDNS dnsfront removes that OPT; the
// records after it, whose names are compressed against each other, must arrive intact.
func TestStripOPTKeepsAdditional(t *testing.T) {
	t.Parallel()
	extra := []string{"ns2.other.test. 60 IN A 192.0.2.54", "ns2.other.test. 60 IN AAAA 2001:db8::54"}
	be := StartBackend(t, BackendOptions{
		Records:    []string{"www.example.test. 300 IN A 198.51.100.7"},
		Additional: extra,
		OPTFirst:   true,
	})
	d := startFE(t, do53FE(be.Addr))
	for _, proto := range []string{"udp", "tcp"} {
		r := MustExchange(t, proto, d.Addr("dns"), NewQuery("www.example.test", dns.TypeA))
		if r.IsEdns0() != nil {
			t.Errorf("%s: OPT not removed for a client without EDNS", proto)
		}
		if len(r.Extra) != len(extra) {
			t.Fatalf("%s: additional section %v, want %q", proto, r.Extra, extra)
		}
		for i, rr := range r.Extra {
			want, _ := dns.NewRR(extra[i])
			if rr.String() != want.String() {
				t.Errorf("%s: additional[%d] = %q, want %q", proto, i, rr.String(), want.String())
			}
		}
	}
}
