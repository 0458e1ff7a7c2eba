package engine

import (
	"testing"
	"time"

	"github.com/miekg/dns"
)

func ednsQuery(t testing.TB, opts ...dns.EDNS0) ([]byte, question) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion("www.example.test.", dns.TypeA)
	m.SetEdns0(1232, false)
	opt := m.IsEdns0()
	opt.Option = append(opt.Option, opts...)
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	q, err := parseQuery(b)
	if err != nil {
		t.Fatal(err)
	}
	return b, q
}

func ednsAnswer(t testing.TB, opt bool, opts ...dns.EDNS0) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion("www.example.test.", dns.TypeA)
	m.Response = true
	rr, _ := dns.NewRR("www.example.test. 60 IN A 192.0.2.1")
	m.Answer = append(m.Answer, rr)
	if opt {
		m.SetEdns0(1232, false)
		m.IsEdns0().Option = append(m.IsEdns0().Option, opts...)
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestQueryExt(t *testing.T) {
	pad := &dns.EDNS0_PADDING{Padding: make([]byte, 20)}
	ka := &dns.EDNS0_TCP_KEEPALIVE{Code: dns.EDNS0TCPKEEPALIVE}
	both, qb := ednsQuery(t, pad, ka)
	none, qn := ednsQuery(t)
	for _, c := range []struct {
		name string
		msg  []byte
		q    question
		pr   proto
		want uint8
	}{
		{"udp", both, qb, protoUDP, 0},
		{"tcp", both, qb, protoTCP, extKeepalive},
		{"dot", both, qb, protoDoT, extPadding | extKeepalive},
		{"doh", both, qb, protoDoH, extPadding},
		{"doq", both, qb, protoDoQ, extPadding},
		{"dot without options", none, qn, protoDoT, 0},
	} {
		if got := queryExt(c.msg, c.q, c.pr, false); got != c.want {
			t.Errorf("%s: queryExt = %b, want %b", c.name, got, c.want)
		}
		want := c.want
		if c.pr != protoUDP && c.pr != protoTCP {
			want |= extPadding
		}
		if got := queryExt(c.msg, c.q, c.pr, true); got != want {
			t.Errorf("%s with pad_responses: queryExt = %b, want %b", c.name, got, want)
		}
	}
}

func TestAddEDNSOptions(t *testing.T) {
	l := &loop{e: &Engine{opts: Options{TCPIdleTimeout: 7500 * time.Millisecond}}}
	for _, c := range []struct {
		name string
		m    []byte
		ext  uint8
	}{
		{"padding", ednsAnswer(t, true), extPadding},
		{"keepalive", ednsAnswer(t, true), extKeepalive},
		{"both", ednsAnswer(t, true), extPadding | extKeepalive},
		{"no OPT in the answer", ednsAnswer(t, false), extPadding | extKeepalive},
		{"the backend's own options replaced", ednsAnswer(t, true,
			&dns.EDNS0_PADDING{Padding: make([]byte, 3)},
			&dns.EDNS0_TCP_KEEPALIVE{Code: dns.EDNS0TCPKEEPALIVE, Length: 2, Timeout: 1},
			&dns.EDNS0_NSID{Code: dns.EDNS0NSID, Nsid: "6162"}), extPadding | extKeepalive},
	} {
		out := l.addEDNSOptions(c.ext, c.m)
		var r dns.Msg
		if err := r.Unpack(out); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		opt := r.IsEdns0()
		if opt == nil || len(r.Answer) != 1 {
			t.Fatalf("%s: answer %v", c.name, &r)
		}
		var pads, kas int
		for _, o := range opt.Option {
			switch o := o.(type) {
			case *dns.EDNS0_PADDING:
				pads++
			case *dns.EDNS0_TCP_KEEPALIVE:
				kas++
				if o.Timeout != 75 {
					t.Errorf("%s: keepalive timeout %d, want 75 (7.5 s in 100 ms units)", c.name, o.Timeout)
				}
			}
		}
		if want := int(c.ext & extPadding); pads != want {
			t.Errorf("%s: %d padding options, want %d", c.name, pads, want)
		}
		if want := int(c.ext&extKeepalive) >> 1; kas != want {
			t.Errorf("%s: %d keepalive options, want %d", c.name, kas, want)
		}
		if c.ext&extPadding != 0 && len(out)%paddingBlock != 0 {
			t.Errorf("%s: %d octets, want a multiple of %d", c.name, len(out), paddingBlock)
		}
	}
}

// TestEDNSOptionsNoAlloc: reading the options and rewriting an answer allocate nothing
// once the loop's buffer has grown.
func TestEDNSOptionsNoAlloc(t *testing.T) {
	l := &loop{e: &Engine{opts: Options{TCPIdleTimeout: 10 * time.Second}}}
	msg, q := ednsQuery(t, &dns.EDNS0_PADDING{Padding: make([]byte, 20)}, &dns.EDNS0_TCP_KEEPALIVE{Code: dns.EDNS0TCPKEEPALIVE})
	ans := ednsAnswer(t, true)
	l.addEDNSOptions(extPadding|extKeepalive, ans)
	if n := testing.AllocsPerRun(100, func() {
		l.addEDNSOptions(queryExt(msg, q, protoDoT, false), ans)
	}); n != 0 {
		t.Errorf("%v allocations per answer, want 0", n)
	}
}

func TestDDRMatch(t *testing.T) {
	d, err := NewDDR([]string{"Resolver.Example"}, []*dns.SVCB{{Priority: 1, Target: ".",
		Value: []dns.SVCBKeyValue{&dns.SVCBAlpn{Alpn: []string{"dot"}}, &dns.SVCBPort{Port: 853}}}}, 300)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"_dns.resolver.arpa.": true, "_DNS.Resolver.ARPA.": true, "_dns.resolver.example.": true,
		"resolver.arpa.": false, "_dns.other.arpa.": false,
	} {
		buf := make([]byte, 256)
		n, _ := dns.PackDomainName(name, buf, 0, nil, false)
		if got := d.match(buf[:n]); got != want {
			t.Errorf("match(%s) = %v, want %v", name, got, want)
		}
	}
	if len(d.rrs) != 1 {
		t.Fatalf("%d records packed, want 1", len(d.rrs))
	}
}
