package quic

import (
	"testing"

	"github.com/miekg/dns"
)

// The parsers that read client bytes off the loops: neither may panic, whatever arrives.
func FuzzHasTCPKeepalive(f *testing.F) {
	m := new(dns.Msg)
	m.SetQuestion("www.example.", dns.TypeA)
	o := m.SetEdns0(1232, false).IsEdns0()
	o.Option = append(o.Option, &dns.EDNS0_TCP_KEEPALIVE{Code: dns.EDNS0TCPKEEPALIVE})
	b, _ := m.Pack()
	f.Add(b)
	f.Add(query("www.example.", 0))
	f.Fuzz(func(t *testing.T, msg []byte) {
		if len(msg) < 12 {
			return // readQuery refuses these before
		}
		hasTCPKeepalive(msg)
	})
}

func FuzzMinTTL(f *testing.F) {
	m := new(dns.Msg)
	m.SetQuestion("www.example.", dns.TypeA)
	rr, _ := dns.NewRR("www.example. 300 IN A 192.0.2.1")
	m.Answer = append(m.Answer, rr)
	b, _ := m.Pack()
	f.Add(b)
	f.Fuzz(func(t *testing.T, msg []byte) { minTTL(msg) })
}

func TestMinTTL(t *testing.T) {
	m := new(dns.Msg)
	m.SetQuestion("nx.example.", dns.TypeA)
	m.Rcode = dns.RcodeNameError
	soa, _ := dns.NewRR("example. 3600 IN SOA ns.example. host.example. 1 7200 900 1209600 60")
	m.Ns = append(m.Ns, soa)
	b, _ := m.Pack()
	if got := minTTL(b); got != 60 {
		t.Fatalf("negative answer: max-age %d, want the SOA's MINIMUM 60 (RFC 2308)", got)
	}
	if got := minTTL(query("www.example.", 0)); got != 0 {
		t.Fatalf("no records: %d, want 0", got)
	}
}
