package engine

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsfront/dnsfront/config"
	"github.com/dnsfront/dnsfront/engine/rules"
)

// typicalRules is a policy of n rules of the kinds operators write (names, types,
// networks, combinations), none of which matches the hot path's query, so that every
// query pays for the whole list, and dynamic rules that count every query and answer.
func typicalRules(tb testing.TB, n int) *config.Rules {
	tb.Helper()
	var b strings.Builder
	b.WriteString("query_rules:\n")
	for i := range n {
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "  - {name: r%d, selector: {type: QNameSuffix, suffixes: [\"z%d.example.net.\"]}, action: {type: Spoof, ips: [\"192.0.2.9\"]}}\n", i, i)
		case 1:
			fmt.Fprintf(&b, "  - {name: r%d, selector: {type: And, selectors: [{type: QType, qtype: ANY}, {type: QNameSuffix, suffixes: [\"a%d.example.org.\"]}]}, action: {type: TC}}\n", i, i)
		case 2:
			fmt.Fprintf(&b, "  - {name: r%d, selector: {type: NetmaskGroup, netmasks: [\"10.%d.0.0/16\"]}, action: {type: Drop}}\n", i, i%250)
		case 3:
			fmt.Fprintf(&b, "  - {name: r%d, selector: {type: QName, qname: \"exact%d.example.com.\"}, action: {type: RCode, rcode: Refused}}\n", i, i)
		}
	}
	b.WriteString(`dynamic_rules:
  - name: floods
    rules:
      - {type: query-rate, rate: 1000000, seconds: 10, action_duration: 60, action: Refused}
      - {type: rcode-rate, rcode: NXDOMAIN, rate: 1000000, seconds: 10, action_duration: 60, action: Drop}
`)
	r, err := config.ParseRules("bench.yaml", []byte(b.String()))
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// withRules puts a compiled rule set of n typical rules and dynamic blocks on the hot
// path's engine.
func (h *hotPath) withRules(tb testing.TB, n int) {
	tb.Helper()
	cfg := typicalRules(tb, n)
	clock := rules.NewSystemClock()
	rs, err := rules.Compile(cfg, rules.Options{Loops: 1, Clock: clock})
	if err != nil {
		tb.Fatal(err)
	}
	dyn := rules.NewDynBlocks(rules.DynOptions{Loops: 1, Clock: clock})
	if err := dyn.Reconfigure(cfg); err != nil {
		tb.Fatal(err)
	}
	h.l.e.state.Load().Rules = rs
	h.l.e.opts.Dyn, h.l.e.opts.Clock = dyn, clock
}

// BenchmarkHotPathUDPRules is BenchmarkHotPathUDP with 100 rules and dynamic rules that
// count every query and answer: the rules' share of a query's cost, and no allocation.
func BenchmarkHotPathUDPRules(b *testing.B) {
	fd, client := udpPair(b)
	h := newHotPath(b, fd, client)
	h.withRules(b, 100)
	h.bench(b, h.roundTrip, func() int { return int(h.l.stats.responses[protoUDP].Load()) })
}

// TestHotPathRulesAllocs: with 100 rules and dynamic rules, a forwarded UDP query and its
// answer allocate nothing, as without rules.
func TestHotPathRulesAllocs(t *testing.T) {
	fd, client := udpPair(t)
	h := newHotPath(t, fd, client)
	h.withRules(t, 100)
	for range 1024 {
		h.roundTrip()
	}
	if a := testing.AllocsPerRun(1000, h.roundTrip); a != 0 {
		t.Errorf("%v allocations per query with rules, want 0", a)
	}
}

// TestPolicyVerdicts drives one loop's UDP path with rules: a spoofed name is answered on
// the loop without reaching the backend, a dropped one gets nothing, and a name no rule
// matches is forwarded as before.
func TestPolicyVerdicts(t *testing.T) {
	fd, client := udpPair(t)
	h := newHotPath(t, fd, client)
	cfg, err := config.ParseRules("t.yaml", []byte(`query_rules:
  - {name: spoof, selector: {type: QName, qname: "www.example.com."}, action: {type: Spoof, ips: ["192.0.2.99"]}}
  - {name: drop, selector: {type: QName, qname: "drop.example.com."}, action: {type: Drop}}
`))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Compile(cfg, rules.Options{Loops: 1})
	if err != nil {
		t.Fatal(err)
	}
	h.l.e.state.Load().Rules = rs

	// Spoofed: the answer comes back at once, and the backend has nothing to read.
	h.listener.in = h.query
	h.l.onUDP(h.listener, h.bind)
	buf := make([]byte, 512)
	_ = client.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, _, err := client.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no answer to the spoofed name: %v", err)
	}
	var m dns.Msg
	if err := m.Unpack(buf[:n]); err != nil || len(m.Answer) != 1 || !strings.Contains(m.Answer[0].String(), "192.0.2.99") || m.Id != 0x1234 {
		t.Fatalf("spoofed answer: %v (%v)", &m, err)
	}
	if len(h.sock.pending) != 0 {
		t.Fatalf("%d queries sent to the backend for a spoofed name", len(h.sock.pending))
	}

	// Dropped: nothing is sent, nothing is pending, and the pending entry is recycled.
	q := new(dns.Msg)
	q.SetQuestion("drop.example.com.", dns.TypeA)
	wire, _ := q.Pack()
	free := len(h.l.free)
	h.listener.in = wire
	h.l.onUDP(h.listener, h.bind)
	if len(h.sock.pending) != 0 || len(h.l.free) != free {
		t.Fatalf("dropped query: %d pending, free list %d → %d", len(h.sock.pending), free, len(h.l.free))
	}
	if d, a := h.l.pol.stats.drops.Load(), h.l.pol.stats.answered.Load(); d != 1 || a != 1 {
		t.Errorf("%d drops and %d answers counted, want one each", d, a)
	}
}
