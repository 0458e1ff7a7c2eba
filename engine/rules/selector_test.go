package rules

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

type headers map[string]string

func (h headers) Header(n string) (string, bool) { v, ok := h[n]; return v, ok }

// TestSelectors runs each selector type as the only rule (action Drop) against queries that
// must and must not match.
func TestSelectors(t *testing.T) {
	a := func(name string, qtype uint16) []byte { return packQuery(t, name, qtype, nil) }
	edns := func(do bool, opts ...dns.EDNS0) func(*dns.Msg) {
		return func(m *dns.Msg) {
			m.SetEdns0(1232, do)
			o := m.IsEdns0()
			o.Option = append(o.Option, opts...)
		}
	}
	type tc struct {
		name   string
		msg    []byte
		client string
		setup  func(*Query)
		want   bool
	}
	tests := []struct {
		selector string
		cases    []tc
	}{
		{`{ type: All }`, []tc{{name: "any", msg: a("x.example", dns.TypeA), want: true}}},
		{`{ type: QName, qname: "www.Example.com" }`, []tc{
			{name: "same name other case", msg: a("WWW.example.COM", dns.TypeA), want: true},
			{name: "subdomain", msg: a("a.www.example.com", dns.TypeA)},
			{name: "parent", msg: a("example.com", dns.TypeA)},
		}},
		{`{ type: QNameSet, qnames: ["a.example.", "b.example."] }`, []tc{
			{name: "first", msg: a("a.example", dns.TypeA), want: true},
			{name: "second", msg: a("B.example", dns.TypeA), want: true},
			{name: "below", msg: a("x.a.example", dns.TypeA)},
		}},
		{`{ type: QNameSuffix, suffixes: ["blocked.example.", "ads.example.net"] }`, []tc{
			{name: "apex", msg: a("blocked.example", dns.TypeA), want: true},
			{name: "below", msg: a("x.y.BLOCKED.example", dns.TypeA), want: true},
			{name: "second suffix", msg: a("t.ads.example.net", dns.TypeAAAA), want: true},
			{name: "label boundary", msg: a("notblocked.example", dns.TypeA)},
			{name: "parent", msg: a("example", dns.TypeA)},
		}},
		{`{ type: Regex, expression: "^ads[0-9]+\\." }`, []tc{
			{name: "match", msg: a("ads42.example.com", dns.TypeA), want: true},
			{name: "any case", msg: a("ADS42.example.com", dns.TypeA), want: true},
			{name: "no match", msg: a("www.ads42.example.com", dns.TypeA)},
		}},
		{`{ type: RE2, expression: "[a-z]+\\.example\\.com" }`, []tc{
			{name: "full match", msg: a("www.example.com", dns.TypeA), want: true},
			{name: "partial only", msg: a("a.www.example.com", dns.TypeA)},
			{name: "case-sensitive", msg: a("WWW.example.com", dns.TypeA)},
		}},
		{`{ type: QType, qtype: "AAAA" }`, []tc{
			{name: "AAAA", msg: a("x.example", dns.TypeAAAA), want: true},
			{name: "A", msg: a("x.example", dns.TypeA)},
		}},
		{`{ type: QType, numeric_value: 65 }`, []tc{
			{name: "HTTPS", msg: a("x.example", dns.TypeHTTPS), want: true},
		}},
		{`{ type: QClass, qclass: "CH" }`, []tc{
			{name: "CH", msg: packQuery(t, "version.bind", dns.TypeTXT, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }), want: true},
			{name: "IN", msg: a("version.bind", dns.TypeTXT)},
		}},
		{`{ type: Opcode, code: "Notify" }`, []tc{
			{name: "notify", msg: packQuery(t, "zone.example", dns.TypeSOA, func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }), want: true},
			{name: "query", msg: a("zone.example", dns.TypeSOA)},
		}},
		{`{ type: RD }`, []tc{
			{name: "rd", msg: a("x.example", dns.TypeA), want: true},
			{name: "no rd", msg: packQuery(t, "x.example", dns.TypeA, func(m *dns.Msg) { m.RecursionDesired = false })},
		}},
		{`{ type: DNSSEC }`, []tc{
			{name: "do", msg: packQuery(t, "x.example", dns.TypeA, edns(true)), want: true},
			{name: "edns without do", msg: packQuery(t, "x.example", dns.TypeA, edns(false))},
			{name: "no edns", msg: a("x.example", dns.TypeA)},
		}},
		{`{ type: EDNSOption, option_code: 10 }`, []tc{
			{name: "cookie", msg: packQuery(t, "x.example", dns.TypeA, edns(false, &dns.EDNS0_COOKIE{Code: 10, Cookie: "0102030405060708"})), want: true},
			{name: "other option", msg: packQuery(t, "x.example", dns.TypeA, edns(false, &dns.EDNS0_NSID{Code: 3}))},
		}},
		{`{ type: EDNSVersion, version: 0 }`, []tc{
			{name: "version 1", msg: packQuery(t, "x.example", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(1232, false); m.IsEdns0().SetVersion(1) }), want: true},
			{name: "version 0", msg: packQuery(t, "x.example", dns.TypeA, edns(false))},
		}},
		{`{ type: PayloadSize, comparison: greater, size: 40 }`, []tc{
			{name: "long", msg: a("a-rather-long-name.example.com", dns.TypeA), want: true},
			{name: "short", msg: a("x.example", dns.TypeA)},
		}},
		{`{ type: QNameLabelsCount, min_labels_count: 2, max_labels_count: 3 }`, []tc{
			{name: "two", msg: a("x.example", dns.TypeA), want: true},
			{name: "four", msg: a("a.b.c.example", dns.TypeA)},
		}},
		{`{ type: QNameWireLength, min: 1, max: 20 }`, []tc{
			{name: "short", msg: a("x.example", dns.TypeA), want: true},
			{name: "long", msg: a("a-rather-long-name.example.com", dns.TypeA)},
		}},
		{`{ type: NetmaskGroup, netmasks: ["192.0.2.0/24", "2001:db8::/32", "198.51.100.7"] }`, []tc{
			{name: "v4 inside", msg: a("x.example", dns.TypeA), client: "192.0.2.200", want: true},
			{name: "v4 single", msg: a("x.example", dns.TypeA), client: "198.51.100.7", want: true},
			{name: "v6 inside", msg: a("x.example", dns.TypeA), client: "2001:db8:1::5", want: true},
			{name: "v4 outside", msg: a("x.example", dns.TypeA), client: "198.51.100.8"},
			{name: "v6 outside", msg: a("x.example", dns.TypeA), client: "2001:db9::1"},
		}},
		{`{ type: NetmaskGroup, netmasks: ["127.0.0.2"], source: false }`, []tc{
			{name: "destination", msg: a("x.example", dns.TypeA), setup: func(q *Query) { q.LocalAddr = netip.MustParseAddr("127.0.0.2") }, want: true},
			{name: "other destination", msg: a("x.example", dns.TypeA), setup: func(q *Query) { q.LocalAddr = netip.MustParseAddr("127.0.0.1") }},
		}},
		{`{ type: TCP, tcp: true }`, []tc{
			{name: "dot", msg: a("x.example", dns.TypeA), setup: func(q *Query) { q.Proto = DoT }, want: true},
			{name: "udp", msg: a("x.example", dns.TypeA)},
		}},
		{`{ type: IncomingProtocol, protocol: DoH }`, []tc{
			{name: "doh", msg: a("x.example", dns.TypeA), setup: func(q *Query) { q.Proto = DoH }, want: true},
			{name: "dot", msg: a("x.example", dns.TypeA), setup: func(q *Query) { q.Proto = DoT }},
		}},
		{`{ type: SNI, server_name: "dns.example" }`, []tc{
			{name: "sni", msg: a("x.example", dns.TypeA), setup: func(q *Query) { q.SNI = "DNS.example" }, want: true},
			{name: "other", msg: a("x.example", dns.TypeA), setup: func(q *Query) { q.SNI = "other.example" }},
		}},
		{`{ type: HTTPHeader, header: "user-agent", expression: "^curl/" }`, []tc{
			{name: "curl", msg: a("x.example", dns.TypeA), setup: func(q *Query) { q.Headers = headers{"user-agent": "curl/8.5"} }, want: true},
			{name: "browser", msg: a("x.example", dns.TypeA), setup: func(q *Query) { q.Headers = headers{"user-agent": "Mozilla"} }},
			{name: "no headers", msg: a("x.example", dns.TypeA)},
		}},
		{`{ type: HTTPPath, path: "/dns-query" }`, []tc{
			{name: "path", msg: a("x.example", dns.TypeA), setup: func(q *Query) { q.Proto, q.HTTPPath = DoH, "/dns-query" }, want: true},
			{name: "other path", msg: a("x.example", dns.TypeA), setup: func(q *Query) { q.Proto, q.HTTPPath = DoH, "/other" }},
		}},
		{`{ type: HTTPPathRegex, expression: "^/dns-query/[a-z]+$" }`, []tc{
			{name: "match", msg: a("x.example", dns.TypeA), setup: func(q *Query) { q.Proto, q.HTTPPath = DoH, "/dns-query/family" }, want: true},
			{name: "no match", msg: a("x.example", dns.TypeA), setup: func(q *Query) { q.Proto, q.HTTPPath = DoH, "/dns-query" }},
		}},
		{`{ type: DSTPort, port: 853 }`, []tc{
			{name: "853", msg: a("x.example", dns.TypeA), setup: func(q *Query) { q.LocalPort = 853 }, want: true},
			{name: "53", msg: a("x.example", dns.TypeA), setup: func(q *Query) { q.LocalPort = 53 }},
		}},
		{`{ type: Tag, tag: "class", value: "abuse" }`, []tc{
			{name: "tagged", msg: a("x.example", dns.TypeA), setup: func(q *Query) { q.Tags.Set("class", "abuse") }, want: true},
			{name: "other value", msg: a("x.example", dns.TypeA), setup: func(q *Query) { q.Tags.Set("class", "good") }},
			{name: "untagged", msg: a("x.example", dns.TypeA)},
		}},
		{`{ type: Tag, tag: "class" }`, []tc{
			{name: "any value", msg: a("x.example", dns.TypeA), setup: func(q *Query) { q.Tags.Set("class", "good") }, want: true},
		}},
		{`{ type: Proba, probability: 1.0 }`, []tc{{name: "always", msg: a("x.example", dns.TypeA), want: true}}},
		{`{ type: Proba, probability: 0 }`, []tc{{name: "never", msg: a("x.example", dns.TypeA)}}},
		{`{ type: And, selectors: [ { type: QType, qtype: A }, { type: QNameSuffix, suffixes: [example.] } ] }`, []tc{
			{name: "both", msg: a("x.example", dns.TypeA), want: true},
			{name: "one", msg: a("x.example", dns.TypeMX)},
		}},
		{`{ type: Or, selectors: [ { type: QType, qtype: A }, { type: QName, qname: x.example. } ] }`, []tc{
			{name: "first", msg: a("y.example", dns.TypeA), want: true},
			{name: "second", msg: a("x.example", dns.TypeMX), want: true},
			{name: "neither", msg: a("y.example", dns.TypeMX)},
		}},
		{`{ type: Not, selector: { type: QNameSuffix, suffixes: [example.] } }`, []tc{
			{name: "outside", msg: a("x.test", dns.TypeA), want: true},
			{name: "inside", msg: a("x.example", dns.TypeA)},
		}},
	}
	for _, tt := range tests {
		rs := compileYAML(t, "query_rules:\n  - name: r\n    selector: "+tt.selector+"\n    action: { type: Drop }\n")
		for _, c := range tt.cases {
			t.Run(tt.selector+"/"+c.name, func(t *testing.T) {
				client := c.client
				if client == "" {
					client = "203.0.113.1"
				}
				q := newQuery(t, c.msg, client)
				if c.setup != nil {
					c.setup(q)
				}
				v := rs.EvalQuery(q)
				if got := v.Kind == KindDrop; got != c.want {
					t.Errorf("matched = %v, want %v", got, c.want)
				}
			})
		}
	}
}

// TestResponseSelectors runs the response-only selectors on responses.
func TestResponseSelectors(t *testing.T) {
	resp := func(rcode int, edit func(*dns.Msg)) []byte {
		m := new(dns.Msg)
		m.SetQuestion("x.example.", dns.TypeA)
		m.Response = true
		m.Rcode = rcode
		if edit != nil {
			edit(m)
		}
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	twoA := func(m *dns.Msg) {
		for _, ip := range []string{"192.0.2.1", "192.0.2.2"} {
			rr, _ := dns.NewRR("x.example. 300 IN A " + ip)
			m.Answer = append(m.Answer, rr)
		}
		rr, _ := dns.NewRR("x.example. 300 IN RRSIG A 8 2 300 20300101000000 20200101000000 1 example. AAAA")
		m.Answer = append(m.Answer, rr)
	}
	badvers := func(m *dns.Msg) { m.SetEdns0(1232, false) }
	tests := []struct {
		selector string
		resp     []byte
		want     bool
	}{
		{`{ type: RCode, rcode: NXDOMAIN }`, resp(dns.RcodeNameError, nil), true},
		{`{ type: RCode, rcode: "3" }`, resp(dns.RcodeNameError, nil), true},
		{`{ type: RCode, rcode: NXDOMAIN }`, resp(dns.RcodeSuccess, nil), false},
		{`{ type: ERCode, rcode: BADVERS }`, resp(dns.RcodeBadVers, badvers), true},
		{`{ type: ERCode, rcode: NOERROR }`, resp(dns.RcodeBadVers, badvers), false},
		{`{ type: RecordsCount, section: 1, minimum: 2, maximum: 5 }`, resp(0, twoA), true},
		{`{ type: RecordsCount, section: 1, minimum: 4, maximum: 5 }`, resp(0, twoA), false},
		{`{ type: RecordsTypeCount, section: 1, record_type: 1, minimum: 2, maximum: 2 }`, resp(0, twoA), true},
		{`{ type: RecordsTypeCount, section: 1, record_type: 46, minimum: 2, maximum: 9 }`, resp(0, twoA), false},
	}
	for _, tt := range tests {
		t.Run(tt.selector, func(t *testing.T) {
			rs := compileYAML(t, "response_rules:\n  - selector: "+tt.selector+"\n    action: { type: Drop }\n")
			q := newQuery(t, packQuery(t, "x.example", dns.TypeA, nil), "203.0.113.1")
			q.Resp = tt.resp
			if got := rs.EvalResponse(q).Kind == KindDrop; got != tt.want {
				t.Errorf("matched = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestPoolAvailable asks the engine's callback.
func TestPoolAvailable(t *testing.T) {
	r := compileRules(t, "query_rules:\n  - selector: { type: PoolAvailable, pool: spare }\n    action: { type: Pool, pool_name: spare }\n")
	up := false
	rs, err := Compile(r, Options{PoolAvailable: func(p string) bool { return p == "spare" && up }})
	if err != nil {
		t.Fatal(err)
	}
	q := newQuery(t, packQuery(t, "x.example", dns.TypeA, nil), "203.0.113.1")
	if v := rs.EvalQuery(q); v.Pool != "" {
		t.Fatalf("pool down: verdict routes to %q", v.Pool)
	}
	up = true
	if v := rs.EvalQuery(q); v.Pool != "spare" || v.Kind != KindAllow {
		t.Fatalf("pool up: verdict %+v, want pool spare and Allow", v)
	}
}

// TestMaxQPSIPSelector holds a client to its rate while another client is unaffected, and
// counts one budget for a /24.
func TestMaxQPSIPSelector(t *testing.T) {
	rs := compileYAML(t, "query_rules:\n  - selector: { type: MaxQPSIP, qps: 10, ipv4_mask: 24 }\n    action: { type: Drop }\n")
	msg := packQuery(t, "x.example", dns.TypeA, nil)
	dropped := func(client string, now int64) bool {
		q := newQuery(t, msg, client)
		q.Now = now
		return rs.EvalQuery(q).Kind == KindDrop
	}
	now := int64(1e9)
	for i := 0; i < 10; i++ {
		if dropped("192.0.2."+string(rune('1'+i%2)), now) {
			t.Fatalf("query %d of the burst dropped", i)
		}
	}
	if !dropped("192.0.2.3", now) {
		t.Fatal("11th query in the same instant from the same /24 passed")
	}
	if dropped("198.51.100.1", now) {
		t.Fatal("another network was dropped")
	}
	if dropped("192.0.2.1", now+int64(100e6)) {
		t.Fatal("a query one interval later was dropped")
	}
}

// TestMaxQPSSelector matches while under the rate.
func TestMaxQPSSelector(t *testing.T) {
	rs := compileYAML(t, "query_rules:\n  - selector: { type: MaxQPS, qps: 2 }\n    action: { type: Allow }\n  - selector: { type: All }\n    action: { type: Drop }\n")
	msg := packQuery(t, "x.example", dns.TypeA, nil)
	var kinds []Kind
	for i := 0; i < 3; i++ {
		q := newQuery(t, msg, "192.0.2.1")
		q.Now = 5
		kinds = append(kinds, rs.EvalQuery(q).Kind)
	}
	if kinds[0] != KindAllow || kinds[1] != KindAllow || kinds[2] != KindDrop {
		t.Fatalf("verdicts %v, want Allow Allow Drop", kinds)
	}
}

// TestMaxQPSIPRate: a client offering 400 q/s from two loops at once gets 20 q/s through,
// within 10%, over ten simulated seconds.
func TestMaxQPSIPRate(t *testing.T) {
	rs := compileYAML(t, "query_rules:\n  - selector: { type: MaxQPSIP, qps: 20 }\n    action: { type: Drop }\n")
	msg := packQuery(t, "x.example", dns.TypeA, nil)
	var passed [2]int
	done := make(chan int)
	for loop := 0; loop < 2; loop++ {
		go func() {
			q := &Query{Client: netip.MustParseAddr("192.0.2.1"), Loop: loop}
			if _, err := ParseQuery(q, msg); err != nil {
				t.Error(err)
			}
			for i := 0; i < 2000; i++ { // 200 q/s per loop for 10 s
				q.Now = 1 + int64(i)*5e6
				if rs.EvalQuery(q).Kind != KindDrop {
					passed[loop]++
				}
			}
			done <- loop
		}()
	}
	<-done
	<-done
	// The loops run at their own pace, so they do not offer at the same simulated instant;
	// the budget is still shared: 10 s × 20 q/s plus the burst of 20.
	if n := passed[0] + passed[1]; n < 198 || n > 242 {
		t.Fatalf("%d queries passed in 10 s, want 220 ± 10%%", n)
	}
}
