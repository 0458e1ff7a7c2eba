package rules

import (
	"fmt"
	"strings"
	"testing"

	"github.com/dnsfront/dnsfront/config"
	"github.com/dnsfront/dnsfront/internal/dnstap"
	"github.com/miekg/dns"
)

// DnstapLog actions mark the verdict, go on to the next rule, and keep their marks
// through a terminal action (the query is logged even when a later rule drops it).
func TestDnstapActionMarks(t *testing.T) {
	rs := compileYAML(t, `
query_rules:
  - selector: {type: All}
    action: {type: DnstapLog, identity: a, logger_name: one}
  - selector: {type: QNameSuffix, suffixes: ["drop.example."]}
    action: {type: Continue, action: {type: DnstapLog, identity: b, logger_name: two}}
  - selector: {type: QNameSuffix, suffixes: ["drop.example."]}
    action: {type: Drop}
response_rules:
  - selector: {type: All}
    action: {type: DnstapLog, identity: c, logger_name: one}
`)
	one, two := newTestLogger(t, "one"), newTestLogger(t, "two")
	if err := rs.ResolveDnstap(func(n string) *dnstap.Logger {
		return map[string]*dnstap.Logger{"one": one, "two": two}[n]
	}); err != nil {
		t.Fatal(err)
	}
	tg := rs.Dnstap()
	if tg == nil || tg.At(0).Identity != "a" || tg.At(0).Logger != one || tg.At(1).Logger != two || tg.At(2).Identity != "c" {
		t.Fatalf("targets %+v", tg)
	}
	v := rs.EvalQuery(newQuery(t, packQuery(t, "www.example.", dns.TypeA, nil), "192.0.2.1"))
	if v.Kind != KindNone || v.Dnstap.Targets != tg || v.Dnstap.Bits != 1 {
		t.Errorf("plain query: kind %v mark %+v, want bit 0 only", v.Kind, v.Dnstap)
	}
	v = rs.EvalQuery(newQuery(t, packQuery(t, "x.drop.example.", dns.TypeA, nil), "192.0.2.1"))
	if v.Kind != KindDrop || v.Dnstap.Bits != 3 {
		t.Errorf("dropped query: kind %v mark %+v, want bits 0 and 1", v.Kind, v.Dnstap)
	}
	q := newQuery(t, packQuery(t, "www.example.", dns.TypeA, nil), "192.0.2.1")
	q.Resp = packQuery(t, "www.example.", dns.TypeA, func(m *dns.Msg) { m.Response = true })
	if v = rs.EvalResponse(q); v.Dnstap.Bits != 4 {
		t.Errorf("response: mark %+v, want bit 2", v.Dnstap)
	}
}

func TestDnstapResolveAndLimit(t *testing.T) {
	rs := compileYAML(t, "query_rules:\n  - selector: {type: All}\n    action: {type: DnstapLog, logger_name: gone}\n")
	if err := rs.ResolveDnstap(func(string) *dnstap.Logger { return nil }); err == nil || !strings.Contains(err.Error(), `"gone"`) {
		t.Errorf("unresolved logger: %v", err)
	}
	if rs := compileYAML(t, "query_rules:\n  - selector: {type: All}\n    action: {type: Drop}\n"); rs.Dnstap() != nil {
		t.Error("a rule set without DnstapLog has dnstap targets")
	}
	var doc strings.Builder
	doc.WriteString("query_rules:\n")
	for i := range maxDnstapActions + 1 {
		fmt.Fprintf(&doc, "  - selector: {type: All}\n    action: {type: DnstapLog, identity: i%d, logger_name: tap}\n", i)
	}
	r, err := config.ParseRules("test.yml", []byte(doc.String()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Compile(r, Options{}); err == nil || !strings.Contains(err.Error(), "query_rules[64].action: at most 64") {
		t.Errorf("65 DnstapLog actions: %v", err)
	}
}

func newTestLogger(t *testing.T, name string) *dnstap.Logger {
	t.Helper()
	l, err := dnstap.New(dnstap.Options{Name: name, Network: "unix", Address: "/nonexistent", QueueSize: 1,
		BufferHint: 1, FlushTimeout: 1, FlushFrames: 1, ReopenInterval: 1, Connections: 1})
	if err != nil {
		t.Fatal(err)
	}
	return l
}
