package engine

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsfront/dnsfront/engine/packetcache"
	"github.com/dnsfront/dnsfront/internal/dnswire"
)

// ecsOf returns the ECS option of m, or nil.
func ecsOf(t testing.TB, m *dns.Msg) *dns.EDNS0_SUBNET {
	t.Helper()
	opt := m.IsEdns0()
	if opt == nil {
		return nil
	}
	var found *dns.EDNS0_SUBNET
	for _, o := range opt.Option {
		if s, ok := o.(*dns.EDNS0_SUBNET); ok {
			if found != nil {
				t.Fatalf("two ECS options in %v", m)
			}
			found = s
		}
	}
	return found
}

func subnetOption(prefix string, scope uint8) *dns.EDNS0_SUBNET {
	p := netip.MustParsePrefix(prefix)
	o := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, SourceNetmask: uint8(p.Bits()), SourceScope: scope, Address: p.Addr().AsSlice()}
	o.Family = 1
	if p.Addr().Is6() {
		o.Family = 2
	}
	return o
}

func packMsg(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func unpackMsg(t testing.TB, b []byte) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		t.Fatalf("unpack %x: %v", b, err)
	}
	return m
}

// ecsPending is the pending entry of the query q with the subnet sub decided for it;
// with clientECS, the client's own option is read from q, as the query path does.
func ecsPending(t *testing.T, q []byte, sub string, clientECS bool) *pending {
	t.Helper()
	pq, err := parseQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	p := &pending{q: pq, addOPT: pq.optOff < 0, query: q}
	p.ecs = ecsQuery{on: true, clientECS: clientECS, sub: dnswire.ECSFromPrefix(netip.MustParsePrefix(sub))}
	if clientECS {
		p.ecs.orig, _, _ = dnswire.ReadECS(q, mustOPT(t, q))
	}
	return p
}

// answerECS returns the ECS option of the answer out as it is on the wire, and parsed.
func answerECS(t *testing.T, out []byte) ([]byte, dnswire.ECS, error) {
	t.Helper()
	_, h, _ := dnswire.FindOPT(out)
	off, n, _ := dnswire.FindOption(out, h, dnswire.OptionECS)
	if off < 0 {
		t.Fatalf("no ECS option in the answer % x", out)
	}
	e, err := dnswire.ParseECS(out[off+4 : off+n])
	return out[off+4 : off+n], e, err
}

func TestAppendECS(t *testing.T) {
	cookie := &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}
	tsig := &dns.TSIG{Hdr: dns.RR_Header{Name: "key.", Rrtype: dns.TypeTSIG, Class: dns.ClassANY}, Algorithm: dns.HmacSHA256, MAC: "00", MACSize: 1, TimeSigned: 1, Fudge: 300}
	cases := []struct {
		name      string
		build     func(m *dns.Msg)
		clientECS bool
		want      string // the subnet the backend sees; "" none
		cookie    bool
	}{
		{name: "no OPT", build: func(*dns.Msg) {}, want: "192.0.2.0/24"},
		{name: "OPT with a cookie", build: func(m *dns.Msg) {
			m.SetEdns0(1232, true)
			m.IsEdns0().Option = append(m.IsEdns0().Option, cookie)
		}, want: "192.0.2.0/24", cookie: true},
		{name: "the client's own option replaced", build: func(m *dns.Msg) {
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = append(m.IsEdns0().Option, subnetOption("198.51.100.7/32", 0), cookie)
		}, clientECS: true, want: "192.0.2.0/24", cookie: true},
		{name: "OPT not the last record", build: func(m *dns.Msg) {
			m.SetEdns0(1232, false)
			m.Extra = append(m.Extra, tsig)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := new(dns.Msg)
			m.SetQuestion("www.example.com.", dns.TypeA)
			c.build(m)
			q := packMsg(t, m)
			p := ecsPending(t, q, "192.0.2.0/24", c.clientECS)
			out := append([]byte{0xff, 0xff}, q...) // a TCP prefix in front, as backendQuery writes it
			if p.addOPT {
				out = out[:2+len(appendOPT(out[2:], backendEDNSSize))]
			}
			out = appendECS(out, 2, p)
			got := unpackMsg(t, out[2:])
			e := ecsOf(t, got)
			if c.want == "" {
				if e != nil {
					t.Fatalf("backend sees %v, want no ECS", e)
				}
				return
			}
			if e == nil {
				t.Fatalf("backend sees no ECS in %v", got)
			}
			if s := netip.PrefixFrom(netip.MustParseAddr(e.Address.String()).Unmap(), int(e.SourceNetmask)).String(); s != c.want || e.SourceScope != 0 {
				t.Errorf("backend sees %s scope %d, want %s scope 0", s, e.SourceScope, c.want)
			}
			if c.cookie {
				found := false
				for _, o := range got.IsEdns0().Option {
					_, found = o.(*dns.EDNS0_COOKIE)
					if found {
						break
					}
				}
				if !found {
					t.Errorf("the client's cookie was lost: %v", got)
				}
			}
			if m.IsEdns0() != nil && got.IsEdns0().Do() != m.IsEdns0().Do() {
				t.Errorf("DO bit changed")
			}
		})
	}
}

// ecsAnswerOf is the backend's answer to a query for www.example.com with ECS ecs.
func ecsAnswerOf(t testing.TB, ecs *dns.EDNS0_SUBNET) []byte {
	q := new(dns.Msg)
	q.SetQuestion("www.example.com.", dns.TypeA)
	r := new(dns.Msg)
	r.SetReply(q)
	rr, _ := dns.NewRR("www.example.com. 300 IN A 192.0.2.1")
	r.Answer = append(r.Answer, rr)
	r.SetEdns0(1232, false)
	r.IsEdns0().Option = append(r.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
	if ecs != nil {
		r.IsEdns0().Option = append(r.IsEdns0().Option, ecs)
	}
	return packMsg(t, r)
}

func TestECSAnswer(t *testing.T) {
	query := func(own *dns.EDNS0_SUBNET) []byte {
		m := new(dns.Msg)
		m.SetQuestion("www.example.com.", dns.TypeA)
		m.SetEdns0(1232, false)
		if own != nil {
			m.IsEdns0().Option = append(m.IsEdns0().Option, own)
		}
		return packMsg(t, m)
	}
	l := &loop{}
	t.Run("the option the client did not send goes", func(t *testing.T) {
		p := ecsPending(t, query(nil), "192.0.2.0/24", false)
		got := unpackMsg(t, l.ecsAnswer(p, ecsAnswerOf(t, subnetOption("192.0.2.0/24", 24))))
		if e := ecsOf(t, got); e != nil || len(got.IsEdns0().Option) != 1 || len(got.Answer) != 1 {
			t.Errorf("client gets %v", got)
		}
	})
	// The backend answers for the IPv4 subnet dnsfront sent: its scope (20) is given
	// back to IPv4 clients; an IPv6 client's option says its own source prefix instead.
	for _, c := range []struct {
		own   string
		scope uint8
	}{{"198.51.100.7/32", 20}, {"198.51.100.0/24", 20}, {"2001:db8::/48", 48}} {
		own := c.own
		t.Run("the client's own option comes back: "+own, func(t *testing.T) {
			p := ecsPending(t, query(subnetOption(own, 0)), "192.0.2.0/24", true)
			got := unpackMsg(t, l.ecsAnswer(p, ecsAnswerOf(t, subnetOption("192.0.2.0/24", 20))))
			e := ecsOf(t, got)
			if e == nil {
				t.Fatalf("client gets no ECS: %v", got)
			}
			if s := netip.PrefixFrom(netip.MustParseAddr(e.Address.String()).Unmap(), int(e.SourceNetmask)).String(); s != own || e.SourceScope != c.scope {
				t.Errorf("client gets %s scope %d, want %s scope %d", s, e.SourceScope, own, c.scope)
			}
			if len(got.IsEdns0().Option) != 2 || len(got.Answer) != 1 {
				t.Errorf("client gets %v", got)
			}
		})
	}
}

func mustOPT(t testing.TB, m []byte) dnswire.RRHeader {
	t.Helper()
	start, h, err := dnswire.FindOPT(m)
	if err != nil || start < 0 {
		t.Fatalf("no OPT record: %v", err)
	}
	return h
}

// FuzzECSAnswer gives the answer fix-up arbitrary backend answers: it must not panic, and
// an answer it changes for a client that sent no subnet carries no ECS option, well
// formed or not.
func FuzzECSAnswer(f *testing.F) {
	f.Add(ecsAnswerOf(f, subnetOption("192.0.2.0/24", 24)), false)
	f.Add(ecsAnswerOf(f, subnetOption("2001:db8::/56", 48)), true)
	f.Add(ecsAnswerOf(f, nil), true)
	own := dnswire.ECSFromPrefix(netip.MustParsePrefix("198.51.100.7/32"))
	l := &loop{}
	f.Fuzz(func(t *testing.T, m []byte, clientECS bool) {
		p := &pending{}
		p.ecs = ecsQuery{on: true, clientECS: clientECS, orig: own}
		in := append([]byte(nil), m...)
		out := l.ecsAnswer(p, in)
		if clientECS || len(out) == len(m) {
			return
		}
		_, h, err := dnswire.FindOPT(out)
		if err != nil {
			t.Fatalf("answer no longer parses: %v", err)
		}
		if off, _, _ := dnswire.FindOption(out, h, dnswire.OptionECS); off >= 0 {
			t.Fatalf("ECS left in %x", out)
		}
	})
}

// ecsHotPath is hotPath with a backend that uses ECS and answers with scope 24.
func ecsHotPath(tb testing.TB) (*hotPath, *net.UDPConn) {
	fd, client := udpPair(tb)
	h := newHotPath(tb, fd, client)
	st := h.l.current()
	st.Backends[0].ECS.UseClientSubnet = true
	st.ECS = ECSOptions{SourcePrefixV4: 24, SourcePrefixV6: 56}
	for _, p := range st.Pools {
		p.ecs = newPoolECS(p.Backends)
	}
	q := unpackMsg(tb, h.answer)
	q.IsEdns0().Option = append(q.IsEdns0().Option, subnetOption("127.0.0.0/24", 24))
	h.answer = packMsg(tb, q)
	return h, client
}

func TestHotPathECS(t *testing.T) {
	h, client := ecsHotPath(t)
	for i := range 2 {
		h.roundTrip()
		sent := unpackMsg(t, h.sent)
		e := ecsOf(t, sent)
		if e == nil || e.Family != 1 || e.SourceNetmask != 24 || !e.Address.Equal(net.IPv4(127, 0, 0, 0)) {
			t.Fatalf("round %d: backend sees %v", i, sent)
		}
		_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 4096)
		n, err := client.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got := unpackMsg(t, buf[:n])
		if ecsOf(t, got) != nil || got.IsEdns0() == nil || len(got.Answer) != 2 {
			t.Errorf("round %d: client gets %v", i, got)
		}
	}
}

// BenchmarkHotPathUDPECS is BenchmarkHotPathUDP with a backend that uses ECS: the subnet
// goes into every query and comes out of every answer.
func BenchmarkHotPathUDPECS(b *testing.B) {
	h, _ := ecsHotPath(b)
	h.bench(b, h.roundTrip, func() int { return int(h.l.stats.responses[protoUDP].Load()) })
}

// TestECSClientAddr: the subnet is the client's as the ACL and the rules see it: the
// peer, the client a PROXY header names, the X-Forwarded-For address.
func TestECSClientAddr(t *testing.T) {
	l := &loop{}
	udp := &pending{proto: protoUDP, peer: netip.MustParseAddrPort("192.0.2.1:5353")}
	udp.pp.src = udp.peer
	proxied := &pending{proto: protoUDP, peer: netip.MustParseAddrPort("192.0.2.1:5353")}
	proxied.pp.src = netip.MustParseAddrPort("203.0.113.77:4242") // a PROXY header's client
	stream := &pending{proto: protoDoH, client: &clientConn{peer: netip.MustParseAddrPort("[2001:db8::1]:443")}}
	ruled := &pending{proto: protoUDP, peer: netip.MustParseAddrPort("192.0.2.1:5353")}
	ruled.pol.ruled, ruled.pol.client = true, netip.MustParseAddr("198.51.100.9")
	for _, c := range []struct {
		p    *pending
		fwd  string
		want string
	}{
		{udp, "", "192.0.2.1"},
		{proxied, "", "203.0.113.77"},
		{stream, "", "2001:db8::1"},
		{stream, "203.0.113.5", "203.0.113.5"}, // X-Forwarded-For from a trusting bind
		{ruled, "", "198.51.100.9"},
	} {
		l.forwardedFor = netip.Addr{}
		if c.fwd != "" {
			l.forwardedFor = netip.MustParseAddr(c.fwd)
		}
		if got := l.clientAddr(c.p); got.String() != c.want {
			t.Errorf("client %s, want %s", got, c.want)
		}
	}
}

// A TCP query with no OPT record and too long for one (past 65524 bytes, trailing bytes
// included) goes to an ECS backend unchanged: there is no OPT record to put a subnet in.
// appendECS read a record at offset -1 and the loop crashed.
func TestAppendECSQueryTooLongForOPT(t *testing.T) {
	m := new(dns.Msg)
	m.SetQuestion("www.example.com.", dns.TypeA)
	q := packMsg(t, m)
	q = append(q, make([]byte, 65530-len(q))...)
	pq, err := parseQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	p := ecsPending(t, q, "192.0.2.0/24", false)
	p.q = pq
	p.addOPT = pq.optOff < 0 && len(q)+optLen <= maxMsgLen // as forward decides
	if p.addOPT {
		t.Fatal("the query should be too long for an OPT record")
	}
	out := append([]byte{0, 0}, q...)
	if got := appendECS(out, 2, p); len(got) != len(out) {
		t.Fatalf("query changed from %d to %d bytes", len(out), len(got))
	}
}

// A client's own option replaced by a subnet of the other family gets back an option
// that is valid for its own family: the backend's scope (for the other family, or a
// hostile 255) is not copied into it.
func TestECSAnswerScopeStaysInFamily(t *testing.T) {
	m := new(dns.Msg)
	m.SetQuestion("www.example.com.", dns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option, subnetOption("198.51.100.0/24", 0))
	q := packMsg(t, m)
	p := ecsPending(t, q, "2001:db8::/56", true)
	l := &loop{}
	for _, c := range []struct {
		backend string
		scope   uint8
		want    uint8
	}{{"2001:db8::/56", 56, 24}, {"2001:db8::/56", 255, 24}} {
		wire, e, err := answerECS(t, l.ecsAnswer(p, ecsAnswerOf(t, subnetOption(c.backend, c.scope))))
		if err != nil || e.Family != dnswire.FamilyIPv4 || e.Scope != c.want {
			t.Errorf("backend scope %d: the client gets % x (%+v, %v), want its IPv4 /24 with scope %d", c.scope, wire, e, err, c.want)
		}
	}
	// Of one family, the backend's scope is given back; one past the family's bits makes
	// the backend's option malformed, which says nothing of the subnet sent (RFC 7871 §6,
	// §7.3): the client's own source prefix goes back instead.
	m.IsEdns0().Option[0] = subnetOption("2001:db8:1::/48", 0)
	p = ecsPending(t, packMsg(t, m), "2001:db8::/56", true)
	for _, c := range []struct{ scope, want uint8 }{{56, 56}, {128, 128}, {200, 48}} {
		if _, e, err := answerECS(t, l.ecsAnswer(p, ecsAnswerOf(t, subnetOption("2001:db8::/56", c.scope)))); err != nil || e.Scope != c.want {
			t.Errorf("same family, backend scope %d: the client gets %+v (%v), want scope %d", c.scope, e, err, c.want)
		}
	}
}

// An answer near 64 KiB whose ECS option is shorter than the client's own does not grow
// past what a TCP length prefix can say: it goes without the option instead.
func TestECSAnswerStaysWithin64K(t *testing.T) {
	m := new(dns.Msg)
	m.SetQuestion("www.example.com.", dns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option, subnetOption("2001:db8::1/128", 0))
	q := packMsg(t, m)
	p := ecsPending(t, q, "192.0.2.0/24", true)
	r := new(dns.Msg)
	r.SetReply(m)
	r.SetEdns0(1232, false)
	base := packMsg(t, r)
	r.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_PADDING{Padding: make([]byte, 65535-len(base)-4-11-8)}, subnetOption("192.0.2.0/24", 24)}
	a := packMsg(t, r)
	l := &loop{}
	out := l.ecsAnswer(p, a)
	if len(out) > maxMsgLen {
		t.Fatalf("answer to the client is %d bytes: its TCP length prefix would say %d", len(out), uint16(len(out)))
	}
	_, h, _ := dnswire.FindOPT(out)
	if off, _, _ := dnswire.FindOption(out, h, dnswire.OptionECS); off >= 0 {
		t.Errorf("an ECS option is left in an answer with no room for the client's own")
	}
}

// RFC 7871 §7.3: an answer whose ECS option names another subnet than the one sent (its
// family, source prefix length or address) is not the answer for that subnet. It is
// stored neither for the subnet nor as a zero-scope entry, it is counted, and the client
// still gets it, without the option. An answer with two options loses both, for the
// client and in the shared entry.
func TestECSAnswerMismatchNotCached(t *testing.T) {
	for _, c := range []struct {
		name     string
		opts     []*dns.EDNS0_SUBNET
		stored   bool // for 127.0.0.0/24
		shared   bool // as a zero-scope entry
		mismatch bool
	}{
		{"matching", []*dns.EDNS0_SUBNET{subnetOption("127.0.0.0/24", 24)}, true, false, false},
		{"matching, scope 0", []*dns.EDNS0_SUBNET{subnetOption("127.0.0.0/24", 0)}, false, true, false},
		{"family", []*dns.EDNS0_SUBNET{subnetOption("2001:db8::/24", 0)}, false, false, true},
		{"source prefix", []*dns.EDNS0_SUBNET{subnetOption("127.0.0.0/25", 0)}, false, false, true},
		{"address", []*dns.EDNS0_SUBNET{subnetOption("127.0.1.0/24", 24)}, false, false, true},
		{"second option", []*dns.EDNS0_SUBNET{subnetOption("127.0.0.0/24", 0), subnetOption("10.0.0.0/24", 0)}, false, false, true},
		{"two options", []*dns.EDNS0_SUBNET{subnetOption("127.0.0.0/24", 24), subnetOption("127.0.0.0/24", 24)}, true, false, false},
		{"two options, scope 0", []*dns.EDNS0_SUBNET{subnetOption("127.0.0.0/24", 0), subnetOption("127.0.0.0/24", 0)}, false, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			h, client := ecsHotPath(t)
			cache := packetcache.New(packetcache.DefaultOptions(10))
			h.l.e.state.Load().Pools[""].Cache = cache
			a := unpackMsg(t, h.answer)
			a.IsEdns0().Option = nil
			for _, o := range c.opts {
				a.IsEdns0().Option = append(a.IsEdns0().Option, o)
			}
			h.answer = packMsg(t, a)
			h.roundTrip()

			_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 4096)
			n, err := client.Read(buf)
			if err != nil {
				t.Fatalf("the client got no answer: %v", err)
			}
			got := unpackMsg(t, buf[:n])
			if got.IsEdns0() == nil || len(got.IsEdns0().Option) != 0 || len(got.Answer) != 2 {
				t.Errorf("client gets %v", got)
			}

			st := cache.Stats()
			if want := map[bool]uint64{true: 1}[c.mismatch]; st.ECSMismatches != want || st.Uncacheable != want {
				t.Errorf("mismatches %d, uncacheable %d, want %d", st.ECSMismatches, st.Uncacheable, want)
			}
			sub := dnswire.ECSFromPrefix(netip.MustParsePrefix("127.0.0.0/24"))
			if _, ok := cache.GetSubnet(h.query, sub, false, nil, time.Now()); ok != c.stored {
				t.Errorf("stored for the subnet sent: %v, want %v", ok, c.stored)
			}
			shared, ok := cache.Get(h.query, nil, time.Now())
			if ok != c.shared {
				t.Fatalf("stored as a zero-scope entry: %v, want %v", ok, c.shared)
			}
			if ok {
				if m := unpackMsg(t, shared); m.IsEdns0() == nil || len(m.IsEdns0().Option) != 0 {
					t.Errorf("the shared entry carries %v", m.IsEdns0())
				}
			}
		})
	}
}

// A client whose own option was replaced gets it back once, however many the backend
// sent, and with its own source prefix as the scope when the backend answered for
// another subnet than the one sent.
func TestECSAnswerOwnOptionOnMismatch(t *testing.T) {
	m := new(dns.Msg)
	m.SetQuestion("www.example.com.", dns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option, subnetOption("198.51.100.0/24", 0))
	p := ecsPending(t, packMsg(t, m), "192.0.2.0/24", true)
	l := &loop{}
	for _, c := range []struct {
		name  string
		opts  []dns.EDNS0
		scope uint8
	}{
		{"matching", []dns.EDNS0{subnetOption("192.0.2.0/24", 20)}, 20},
		{"address", []dns.EDNS0{subnetOption("192.0.3.0/24", 20)}, 24},
		{"source prefix", []dns.EDNS0{subnetOption("192.0.2.0/23", 20)}, 24},
		{"two matching", []dns.EDNS0{subnetOption("192.0.2.0/24", 20), subnetOption("192.0.2.0/24", 20)}, 24},
		{"two, one with another subnet", []dns.EDNS0{subnetOption("192.0.2.0/24", 20), subnetOption("203.0.113.0/24", 16)}, 24},
		{"two around a cookie", []dns.EDNS0{subnetOption("192.0.2.0/24", 20), &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}, subnetOption("203.0.113.0/25", 16)}, 24},
	} {
		r := new(dns.Msg)
		r.SetReply(m)
		r.SetEdns0(1232, false)
		r.IsEdns0().Option = c.opts
		got := unpackMsg(t, l.ecsAnswer(p, packMsg(t, r)))
		e := ecsOf(t, got) // fails on two
		if e == nil || e.SourceNetmask != 24 || !e.Address.Equal(net.IPv4(198, 51, 100, 0)) || e.SourceScope != c.scope {
			t.Errorf("%s: the client gets %v, want its own /24 with scope %d", c.name, got.IsEdns0(), c.scope)
		}
	}
}

// The client that sent no subnet gets none, however many the backend sent.
func TestECSAnswerRemovesEveryOption(t *testing.T) {
	q := new(dns.Msg)
	q.SetQuestion("www.example.com.", dns.TypeA)
	q.SetEdns0(1232, false)
	p := ecsPending(t, packMsg(t, q), "192.0.2.0/24", false)
	r := new(dns.Msg)
	r.SetReply(q)
	r.SetEdns0(1232, false)
	r.IsEdns0().Option = []dns.EDNS0{subnetOption("192.0.2.0/24", 24),
		&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"},
		subnetOption("198.51.100.0/24", 24), subnetOption("192.0.2.0/24", 0)}
	l := &loop{}
	got := unpackMsg(t, l.ecsAnswer(p, packMsg(t, r)))
	if o := got.IsEdns0(); o == nil || len(o.Option) != 1 || o.Option[0].Option() != dns.EDNS0COOKIE {
		t.Errorf("the client gets %v, want the cookie alone", o)
	}
}
