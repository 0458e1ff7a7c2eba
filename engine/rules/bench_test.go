package rules

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// typicalRules writes n rules of the kinds operators write most: name blocks, type
// filters, networks with types, exact names, header bits.
func typicalRules(n int) string {
	var b strings.Builder
	b.WriteString("query_rules:\n")
	for i := 0; i < n; i++ {
		switch i % 10 {
		case 0, 1, 2, 3:
			fmt.Fprintf(&b, "  - selector: { type: QNameSuffix, suffixes: [\"blocked%d.example.\", \"ads%d.example.net.\"] }\n    action: { type: Spoof, ips: [\"192.0.2.%d\"] }\n", i, i, i%250)
		case 4, 5:
			fmt.Fprintf(&b, "  - selector: { type: QType, qtype: \"TYPE%d\" }\n    action: { type: RCode, rcode: REFUSED }\n", 1000+i)
		case 6, 7:
			fmt.Fprintf(&b, "  - selector: { type: And, selectors: [ { type: NetmaskGroup, netmasks: [\"198.51.%d.0/24\"] }, { type: QType, qtype: ANY } ] }\n    action: { type: TC }\n", i)
		case 8:
			fmt.Fprintf(&b, "  - selector: { type: QName, qname: \"exact%d.example.org.\" }\n    action: { type: NXDomain }\n", i)
		case 9:
			fmt.Fprintf(&b, "  - selector: { type: QNameSet, qnames: [\"set%d.example.org.\", \"other%d.example.org.\"] }\n    action: { type: SetSkipCache }\n", i, i)
		}
	}
	return strings.ReplaceAll(b.String(), "type: NXDomain", "type: RCode, rcode: NXDOMAIN")
}

func BenchmarkEvalQuery100Rules(b *testing.B) {
	rs := compileYAML(b, typicalRules(100))
	msgs := [][]byte{
		packQuery(b, "www.example.com", dns.TypeA, nil),
		packQuery(b, "a.b.c.some-site.org", dns.TypeAAAA, nil),
		packQuery(b, "x.blocked40.example", dns.TypeA, nil),
		packQuery(b, "mail.example.net", dns.TypeMX, nil),
	}
	qs := make([]*Query, len(msgs))
	for i, m := range msgs {
		qs[i] = newQuery(b, m, "203.0.113.7")
	}
	cpuLoop(b, func(i int) {
		q := qs[i&3]
		q.Tags = Tags{}
		_ = rs.EvalQuery(q)
	})
}

func BenchmarkEvalQueryNoRules(b *testing.B) {
	rs := compileYAML(b, "")
	q := newQuery(b, packQuery(b, "www.example.com", dns.TypeA, nil), "203.0.113.7")
	cpuLoop(b, func(int) { _ = rs.EvalQuery(q) })
}

func BenchmarkSuffixSet100k(b *testing.B) {
	names := make([]string, 100000)
	for i := range names {
		names[i] = fmt.Sprintf("d%d-%x.example%d.com.", i, rand.Uint32(), i%97)
	}
	s, err := NewSuffixSet(names)
	if err != nil {
		b.Fatal(err)
	}
	var qs [][]byte
	for i := 0; i < 1024; i++ {
		n := names[rand.IntN(len(names))]
		if i%2 == 1 {
			n = fmt.Sprintf("miss%d.example%d.com.", i, i%97)
		}
		w, _ := nameToWire("www.sub." + n)
		qs = append(qs, w)
	}
	cpuLoop(b, func(i int) { s.Match(qs[i&1023]) })
}

func BenchmarkNetmaskGroup1M(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	ps := make([]netip.Prefix, 0, 1000000)
	for i := 0; i < 900000; i++ {
		var a [4]byte
		v := r.Uint32()
		a[0], a[1], a[2], a[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
		ps = append(ps, netip.PrefixFrom(netip.AddrFrom4(a), 24+r.IntN(9)).Masked())
	}
	for i := 0; i < 100000; i++ {
		var a [16]byte
		a[0], a[1] = 0x20, 0x01
		for j := 2; j < 8; j++ {
			a[j] = byte(r.Uint32())
		}
		ps = append(ps, netip.PrefixFrom(netip.AddrFrom16(a), 48+r.IntN(17)).Masked())
	}
	g := NewNetmaskGroup(ps)
	addrs := make([]netip.Addr, 1024)
	for i := range addrs {
		if i%4 == 3 {
			addrs[i] = ps[900000+r.IntN(100000)].Addr()
			continue
		}
		v := r.Uint32()
		addrs[i] = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	cpuLoop(b, func(i int) { g.Contains(addrs[i&1023]) })
}

// BenchmarkDynCheck is the per-query block check with 10,000 client blocks and 100 suffix
// blocks in force, for a client that is not blocked.
func BenchmarkDynCheck(b *testing.B) {
	d := NewDynBlocks(DynOptions{Loops: 1})
	d.log = discardLogger()
	for i := 0; i < 10000; i++ {
		if err := d.Add(BlockRequest{Network: fmt.Sprintf("10.%d.%d.0/24", i/256, i%256), Duration: 3600e9}); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < 100; i++ {
		if err := d.Add(BlockRequest{Suffix: fmt.Sprintf("bad%d.example.", i), Duration: 3600e9}); err != nil {
			b.Fatal(err)
		}
	}
	q := newQuery(b, packQuery(b, "www.example.com", dns.TypeA, nil), "203.0.113.7")
	q.Now = 2
	var v Verdict
	cpuLoop(b, func(int) { d.Check(q, &v) })
}

// BenchmarkDynCheckNone is the block check with no block in force.
func BenchmarkDynCheckNone(b *testing.B) {
	d := NewDynBlocks(DynOptions{Loops: 1})
	q := newQuery(b, packQuery(b, "www.example.com", dns.TypeA, nil), "203.0.113.7")
	var v Verdict
	cpuLoop(b, func(int) { d.Check(q, &v) })
}

// BenchmarkDynCount is the per-query counting for dynamic rules (query and response).
func BenchmarkDynCount(b *testing.B) {
	d := NewDynBlocks(DynOptions{Loops: 1})
	if err := d.Reconfigure(compileRules(b, "dynamic_rules:\n  - rules:\n      - { type: query-rate, rate: 1000, seconds: 10, action_duration: 60 }\n      - { type: rcode-rate, rcode: NXDOMAIN, rate: 100, seconds: 10, action_duration: 60 }\n")); err != nil {
		b.Fatal(err)
	}
	q := newQuery(b, packQuery(b, "www.example.com", dns.TypeA, nil), "203.0.113.7")
	cpuLoop(b, func(int) {
		d.CountQuery(q)
		d.CountResponse(q, 0, 100, false)
	})
}

// BenchmarkWriteAnswer builds a spoofed answer into a reused buffer.
func BenchmarkWriteAnswer(b *testing.B) {
	rs := compileYAML(b, "query_rules:\n  - selector: { type: All }\n    action: { type: Spoof, ips: [\"192.0.2.1\"] }\n")
	q := newQuery(b, packQuery(b, "www.example.com", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(1232, false) }), "203.0.113.7")
	v := rs.EvalQuery(q)
	buf := make([]byte, 0, 512)
	cpuLoop(b, func(int) { buf = WriteAnswer(buf[:0], q, &v) })
}

// BenchmarkDecide100Rules is the engine's whole per-query decision: block check (no block
// in force) and 100 rules.
func BenchmarkDecide100Rules(b *testing.B) {
	rs := compileYAML(b, typicalRules(100))
	d := NewDynBlocks(DynOptions{Loops: 1})
	q := newQuery(b, packQuery(b, "www.example.com", dns.TypeA, nil), "203.0.113.7")
	cpuLoop(b, func(int) { _ = Decide(d, rs, q) })
}
