package rules_test

import (
	"fmt"
	"net/netip"

	"github.com/dnsfront/dnsfront/config"
	"github.com/dnsfront/dnsfront/engine/rules"
	"github.com/miekg/dns"
)

// The engine's path for one UDP query: block check, rules, and the answer a verdict asks for.
func Example() {
	cfg, err := config.ParseRules("example.yml", []byte(`
query_rules:
  - name: "spoof a blocked zone"
    selector: { type: "QNameSuffix", suffixes: ["blocked.example."] }
    action: { type: "Spoof", ips: ["192.0.2.99"] }
dynamic_rules:
  - name: "floods"
    rules:
      - { type: "query-rate", rate: 1000, seconds: 10, action_duration: 60, action: "Refused" }
`))
	if err != nil {
		panic(err)
	}
	rs, _ := rules.Compile(cfg, rules.Options{Loops: 1})
	dyn := rules.NewDynBlocks(rules.DynOptions{Loops: 1})
	_ = dyn.Reconfigure(cfg)

	m := new(dns.Msg)
	m.SetQuestion("www.blocked.example.", dns.TypeA)
	msg, _ := m.Pack()

	// Per loop: one Query reused for every query, filled from the bytes received.
	var q rules.Query
	q.Client, q.Proto, q.Loop, q.Now = netip.MustParseAddr("198.51.100.1"), rules.DoUDP, 0, 1
	if _, err := rules.ParseQuery(&q, msg); err != nil {
		return // FORMERR path
	}
	dyn.CountQuery(&q)
	v := rules.Decide(dyn, rs, &q)
	if v.Kind.Answers() {
		out := rules.WriteAnswer(make([]byte, 0, 512), &q, &v)
		var a dns.Msg
		_ = a.Unpack(out)
		fmt.Println(v.Kind, v.RuleName, a.Answer[0].(*dns.A).A)
	}
	// Output: Spoof spoof a blocked zone 192.0.2.99
}
