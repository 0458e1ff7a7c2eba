package packetcache

import (
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsfront/dnsfront/internal/dnswire"
)

func subnet(s string) dnswire.ECS { return dnswire.ECSFromPrefix(netip.MustParsePrefix(s)) }

func ecsOption(s string, scope uint8) *dns.EDNS0_SUBNET {
	p := netip.MustParsePrefix(s)
	o := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(p.Bits()), SourceScope: scope, Address: p.Addr().AsSlice()}
	if p.Addr().Is6() {
		o.Family = 2
	}
	return o
}

// ecsAnswer is the backend's answer to q for the subnet s with scope, carrying addr.
func ecsAnswer(t testing.TB, q *dns.Msg, s string, scope uint8, addr string) []byte {
	r := answer(t, q, dns.RcodeSuccess, []string{q.Question[0].Name + " 300 IN A " + addr}, nil)
	if r.IsEdns0() == nil {
		r.SetEdns0(1232, false)
	}
	r.IsEdns0().Option = append(r.IsEdns0().Option, ecsOption(s, scope))
	return pack(t, r)
}

func firstA(t testing.TB, b []byte) string {
	m := unpack(t, b)
	if len(m.Answer) != 1 {
		t.Fatalf("answer %v", m)
	}
	return m.Answer[0].(*dns.A).A.String()
}

// TestSubnetsDoNotMix: an answer stored for one added subnet is not served for another,
// the same subnet from another client address shares it.
func TestSubnetsDoNotMix(t *testing.T) {
	c := New(DefaultOptions(100))
	q := newQuery("www.example.com.", dns.TypeA, qopt{edns: true})
	qb := pack(t, q)
	a, b := subnet("192.0.2.0/24"), subnet("198.51.100.0/24")
	c.InsertSubnet(qb, ecsAnswer(t, q, "192.0.2.0/24", 24, "192.0.2.53"), a, true, t0, -1)
	c.InsertSubnet(qb, ecsAnswer(t, q, "198.51.100.0/24", 24, "198.51.100.53"), b, true, t0, -1)
	if got, ok := c.GetSubnet(qb, a, true, nil, t0); !ok || firstA(t, got) != "192.0.2.53" {
		t.Errorf("subnet a: hit %v", ok)
	}
	if got, ok := c.GetSubnet(qb, b, true, nil, t0); !ok || firstA(t, got) != "198.51.100.53" {
		t.Errorf("subnet b: hit %v", ok)
	}
	if _, ok := c.GetSubnet(qb, subnet("203.0.113.0/24"), true, nil, t0); ok {
		t.Error("a third subnet got another's answer")
	}
	if _, ok := c.GetSubnet(qb, subnet("192.0.2.0/25"), true, nil, t0); ok {
		t.Error("a longer source prefix got the /24's answer")
	}
	if _, ok := c.Get(qb, nil, t0); ok {
		t.Error("a query without a subnet got a subnet's answer")
	}
	if got, ok := c.GetSubnet(qb, dnswire.ECSFromAddr(netip.MustParseAddr("192.0.2.200"), 24), true, nil, t0); !ok || firstA(t, got) != "192.0.2.53" {
		t.Error("another client of the same /24 did not share its answer")
	}
	if st := c.Stats(); st.Entries != 2 || st.Insertions != 2 {
		t.Errorf("stats %+v", st)
	}
}

// TestClientSubnetInKey: the subnet a client sends itself is part of the key.
func TestClientSubnetInKey(t *testing.T) {
	c := New(DefaultOptions(100))
	withECS := func(s string) (*dns.Msg, []byte) {
		q := newQuery("www.example.com.", dns.TypeA, qopt{edns: true})
		q.IsEdns0().Option = append(q.IsEdns0().Option, ecsOption(s, 0))
		return q, pack(t, q)
	}
	qa, qab := withECS("192.0.2.0/24")
	_, qbb := withECS("198.51.100.0/24")
	c.Insert(qab, ecsAnswer(t, qa, "192.0.2.0/24", 24, "192.0.2.53"), t0)
	if _, ok := c.Get(qbb, nil, t0); ok {
		t.Error("another client subnet got the answer")
	}
	if _, ok := c.Get(pack(t, newQuery("www.example.com.", dns.TypeA, qopt{edns: true})), nil, t0); ok {
		t.Error("a query without a subnet got the answer")
	}
	if _, ok := c.Get(qab, nil, t0); !ok {
		t.Error("the same subnet missed")
	}
	bad := newQuery("www.example.com.", dns.TypeA, qopt{edns: true})
	bad.IsEdns0().Option = append(bad.IsEdns0().Option, &dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: []byte{0, 3, 24, 0, 1, 2, 3}})
	c.Insert(pack(t, bad), ecsAnswer(t, qa, "192.0.2.0/24", 24, "192.0.2.53"), t0)
	if st := c.Stats(); st.Uncacheable != 1 {
		t.Errorf("a malformed client subnet was cached: %+v", st)
	}
}

// TestZeroScopeShared: an answer with scope 0 holds for every client: it is stored once,
// without the option, and found by any subnet and by queries without one.
func TestZeroScopeShared(t *testing.T) {
	c := New(DefaultOptions(100))
	q := newQuery("www.example.com.", dns.TypeA, qopt{edns: true})
	qb := pack(t, q)
	c.InsertSubnet(qb, ecsAnswer(t, q, "192.0.2.0/24", 0, "192.0.2.1"), subnet("192.0.2.0/24"), true, t0, -1)
	for _, s := range []string{"192.0.2.0/24", "198.51.100.0/24", "2001:db8::/56"} {
		got, ok := c.GetSubnet(qb, subnet(s), true, nil, t0)
		if !ok {
			t.Fatalf("%s: missed the zero-scope answer", s)
		}
		m := unpack(t, got)
		if opt := m.IsEdns0(); opt == nil || len(opt.Option) != 0 {
			t.Errorf("%s: the shared answer carries %v", s, m.IsEdns0())
		}
	}
	if _, ok := c.Get(qb, nil, t0); !ok {
		t.Error("a query without a subnet missed the zero-scope answer")
	}
	if _, ok := c.GetSubnet(qb, subnet("198.51.100.0/24"), false, nil, t0); ok {
		t.Error("a client that sent its own subnet got the shared answer")
	}

	// Without zero scope (the client sent its own subnet, or disable_zero_scope), a scope
	// 0 answer stays with its subnet.
	c2 := New(DefaultOptions(100))
	c2.InsertSubnet(qb, ecsAnswer(t, q, "192.0.2.0/24", 0, "192.0.2.1"), subnet("192.0.2.0/24"), false, t0, -1)
	if _, ok := c2.GetSubnet(qb, subnet("198.51.100.0/24"), true, nil, t0); ok {
		t.Error("shared without zero scope")
	}
	if _, ok := c2.GetSubnet(qb, subnet("192.0.2.0/24"), false, nil, t0); !ok {
		t.Error("its own subnet missed")
	}
}

func TestSubnetTempFailureTTL(t *testing.T) {
	c := New(DefaultOptions(100))
	q := newQuery("www.example.com.", dns.TypeA, qopt{edns: true})
	qb := pack(t, q)
	sf := pack(t, answer(t, q, dns.RcodeServerFailure, nil, nil))
	c.InsertSubnet(qb, sf, subnet("192.0.2.0/24"), true, t0, 0)
	if _, ok := c.GetSubnet(qb, subnet("192.0.2.0/24"), true, nil, t0); ok {
		t.Error("a temporary failure with TTL 0 was cached")
	}
	c.InsertSubnet(qb, sf, subnet("192.0.2.0/24"), true, t0, 5)
	if _, ok := c.GetSubnet(qb, subnet("192.0.2.0/24"), true, nil, t0.Add(4*time.Second)); !ok {
		t.Error("missed within the rule's TTL")
	}
	if _, ok := c.GetSubnet(qb, subnet("192.0.2.0/24"), true, nil, t0.Add(6*time.Second)); ok {
		t.Error("hit past the rule's TTL")
	}
}

// BenchmarkGetSubnetHit: a hit for an added subnet, after a zero-scope miss.
func BenchmarkGetSubnetHit(b *testing.B) {
	c := New(DefaultOptions(1000))
	q := newQuery("www.example.com.", dns.TypeA, qopt{edns: true})
	qb := pack(b, q)
	sub := subnet("192.0.2.0/24")
	c.InsertSubnet(qb, ecsAnswer(b, q, "192.0.2.0/24", 24, "192.0.2.53"), sub, true, t0, -1)
	dst := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, ok := c.GetSubnet(qb, sub, true, dst[:0], t0); !ok {
			b.Fatal("miss")
		}
	}
}

// ecsAnswerWith is the backend's answer to q carrying the ECS options opts, in order.
func ecsAnswerWith(t testing.TB, q *dns.Msg, opts ...dns.EDNS0) []byte {
	r := answer(t, q, dns.RcodeSuccess, []string{q.Question[0].Name + " 300 IN A 192.0.2.1"}, nil)
	if r.IsEdns0() == nil {
		r.SetEdns0(1232, false)
	}
	r.IsEdns0().Option = append(r.IsEdns0().Option, opts...)
	return pack(t, r)
}

// TestSubnetMismatchNotStored: RFC 7871 §7.3, an answer whose option names another
// family, source prefix length or address than the subnet sent is not the answer for
// it: stored neither for that subnet nor as a zero-scope entry, and counted.
func TestSubnetMismatchNotStored(t *testing.T) {
	q := newQuery("www.example.com.", dns.TypeA, qopt{edns: true})
	qb := pack(t, q)
	sent := subnet("192.0.2.0/24")
	for _, c := range []struct {
		name string
		opts []dns.EDNS0
	}{
		{"family", []dns.EDNS0{ecsOption("2001:db8::/24", 0)}},
		{"source prefix", []dns.EDNS0{ecsOption("192.0.2.0/25", 0)}},
		{"shorter source prefix", []dns.EDNS0{ecsOption("192.0.0.0/16", 16)}},
		{"address", []dns.EDNS0{ecsOption("198.51.100.0/24", 0)}},
		{"second option", []dns.EDNS0{ecsOption("192.0.2.0/24", 0), ecsOption("198.51.100.0/24", 0)}},
		{"malformed", []dns.EDNS0{&dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: []byte{0, 1, 24, 0, 192, 0}}}},
	} {
		for _, zeroScope := range []bool{true, false} {
			c2 := New(DefaultOptions(100))
			c2.InsertSubnet(qb, ecsAnswerWith(t, q, c.opts...), sent, zeroScope, t0, -1)
			if _, ok := c2.GetSubnet(qb, sent, zeroScope, nil, t0); ok {
				t.Errorf("%s (zero scope %v): stored for the subnet sent", c.name, zeroScope)
			}
			if _, ok := c2.Get(qb, nil, t0); ok {
				t.Errorf("%s (zero scope %v): stored for every client", c.name, zeroScope)
			}
			if st := c2.Stats(); st.ECSMismatches != 1 || st.Uncacheable != 1 || st.Entries != 0 {
				t.Errorf("%s (zero scope %v): stats %+v", c.name, zeroScope, st)
			}
		}
	}
	// An answer without an option stays with the subnet sent, as before; a TC answer is
	// refused for being truncated, not counted as a mismatch.
	c := New(DefaultOptions(100))
	c.InsertSubnet(qb, ecsAnswerWith(t, q), sent, true, t0, -1)
	if _, ok := c.GetSubnet(qb, sent, false, nil, t0); !ok {
		t.Error("an answer without an option was not stored for the subnet sent")
	}
	tc := ecsAnswerWith(t, q, ecsOption("198.51.100.0/24", 0))
	tc[2] |= 0x02
	c.InsertSubnet(qb, tc, sent, true, t0, -1)
	if st := c.Stats(); st.ECSMismatches != 0 || st.Uncacheable != 1 || st.Entries != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestZeroScopeSharedWithoutAnyOption: an answer with two zero-scope options is shared
// without either; the other options stay.
func TestZeroScopeSharedWithoutAnyOption(t *testing.T) {
	c := New(DefaultOptions(100))
	q := newQuery("www.example.com.", dns.TypeA, qopt{edns: true})
	qb := pack(t, q)
	cookie := &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}
	c.InsertSubnet(qb, ecsAnswerWith(t, q, ecsOption("192.0.2.0/24", 0), cookie, ecsOption("192.0.2.0/24", 0)), subnet("192.0.2.0/24"), true, t0, -1)
	got, ok := c.GetSubnet(qb, subnet("198.51.100.0/24"), true, nil, t0)
	if !ok {
		t.Fatal("another subnet missed the zero-scope answer")
	}
	if o := unpack(t, got).IsEdns0(); o == nil || len(o.Option) != 1 || o.Option[0].Option() != dns.EDNS0COOKIE {
		t.Errorf("the shared answer carries %v, want the cookie alone", o)
	}
	// Scope 0 in one option and 24 in the other: it holds for the subnet only.
	c2 := New(DefaultOptions(100))
	c2.InsertSubnet(qb, ecsAnswerWith(t, q, ecsOption("192.0.2.0/24", 0), ecsOption("192.0.2.0/24", 24)), subnet("192.0.2.0/24"), true, t0, -1)
	if _, ok := c2.Get(qb, nil, t0); ok {
		t.Error("shared although one option has scope 24")
	}
	if _, ok := c2.GetSubnet(qb, subnet("192.0.2.0/24"), false, nil, t0); !ok {
		t.Error("not stored for its subnet")
	}
}
