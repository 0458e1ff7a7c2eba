package rules

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// dynHarness drives a DynBlocks with a manual clock: each tick is one second of traffic
// followed by an evaluation.
type dynHarness struct {
	t     *testing.T
	d     *DynBlocks
	clock *ManualClock
	logs  *bytes.Buffer
	msgs  map[string][]byte
	// notified collects the OnBlock calls.
	notified []BlockInfo
}

func newDynHarness(t *testing.T, doc string) *dynHarness {
	t.Helper()
	h := &dynHarness{t: t, clock: &ManualClock{}, logs: &bytes.Buffer{}, msgs: map[string][]byte{}}
	h.clock.Set(int64(time.Hour))
	h.d = NewDynBlocks(DynOptions{Loops: 2, Clock: h.clock, Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: h.logs}, nil)),
		OnBlock: func(b BlockInfo) { h.notified = append(h.notified, b) }})
	if err := h.d.Reconfigure(compileRules(t, doc)); err != nil {
		t.Fatal(err)
	}
	return h
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (h *dynHarness) query(client, name string, qtype uint16, loop int) *Query {
	key := fmt.Sprint(name, qtype)
	msg, ok := h.msgs[key]
	if !ok {
		msg = packQuery(h.t, name, qtype, nil)
		h.msgs[key] = msg
	}
	q := newQuery(h.t, msg, client)
	q.Loop, q.Now = loop, h.clock.Nanos()
	return q
}

// send counts n queries from client (spread over both loops) and their responses.
func (h *dynHarness) send(client, name string, qtype uint16, n int, rcode int, size int, cacheHit bool) {
	for i := 0; i < n; i++ {
		q := h.query(client, name, qtype, i&1)
		h.d.CountQuery(q)
		if rcode >= 0 {
			h.d.CountResponse(q, rcode, size, cacheHit)
		}
	}
}

// tick ends a second.
func (h *dynHarness) tick() {
	h.clock.Advance(time.Second)
	h.d.Evaluate()
}

// verdict returns what the block set does to a query from client for name.
func (h *dynHarness) verdict(client, name string, proto Protocol) (Verdict, bool) {
	q := h.query(client, name, dns.TypeA, 0)
	q.Proto = proto
	var v Verdict
	final := h.d.Check(q, &v)
	return v, final
}

func (h *dynHarness) blocked(client string) bool {
	v, final := h.verdict(client, "x.example", DoUDP)
	return final && v.Kind != KindNone
}

func TestDynQueryRate(t *testing.T) {
	h := newDynHarness(t, `dynamic_rules:
  - name: floods
    mask_ipv4: 32
    mask_ipv6: 64
    exclude_ranges: ["10.0.0.0/8"]
    rules:
      - { type: query-rate, rate: 100, seconds: 5, action_duration: 60, comment: "query rate", action: Refused }
`)
	// 400 q/s from one client, 10 q/s from a quiet one, 400 q/s from an excluded one.
	for s := 0; s < 2; s++ {
		h.send("192.0.2.1", "x.example", dns.TypeA, 400, -1, 0, false)
		h.send("192.0.2.2", "x.example", dns.TypeA, 10, -1, 0, false)
		h.send("10.1.2.3", "x.example", dns.TypeA, 400, -1, 0, false)
		h.tick()
	}
	if !h.blocked("192.0.2.1") {
		t.Fatal("flooding client not blocked after 800 queries in 2 s against 100/s over 5 s")
	}
	v, _ := h.verdict("192.0.2.1", "x.example", DoUDP)
	if v.Kind != KindRCode || v.RCode != dns.RcodeRefused {
		t.Fatalf("verdict %+v, want REFUSED", v)
	}
	if h.blocked("192.0.2.2") || h.blocked("10.1.2.3") {
		t.Fatal("quiet or excluded client blocked")
	}
	list := h.d.List()
	if len(list) != 1 || list[0].Network != "192.0.2.1/32" || list[0].Reason != "query rate" || list[0].Group != "floods" {
		t.Fatalf("blocks %+v", list)
	}
	if len(h.notified) != 1 || h.notified[0].Network != "192.0.2.1/32" || h.notified[0].Action != "Refused" {
		t.Fatalf("OnBlock calls %+v", h.notified)
	}
	if !strings.Contains(h.logs.String(), "msg=\"dynamic block\"") || !strings.Contains(h.logs.String(), "block=192.0.2.1/32") {
		t.Fatalf("no block log line:\n%s", h.logs)
	}
	// The block holds for action_duration, then expires and is logged.
	h.clock.Advance(59 * time.Second)
	if !h.blocked("192.0.2.1") {
		t.Fatal("block lifted before action_duration")
	}
	h.clock.Advance(2 * time.Second)
	if h.blocked("192.0.2.1") {
		t.Fatal("block still applies after its expiry")
	}
	h.d.Evaluate()
	if len(h.d.List()) != 0 || !strings.Contains(h.logs.String(), "dynamic block expired") {
		t.Fatalf("expired block still listed or not logged: %+v", h.d.List())
	}
}

// TestDynRateWindow: a rate is compared over the whole window, not per second.
func TestDynRateWindow(t *testing.T) {
	h := newDynHarness(t, `dynamic_rules:
  - rules:
      - { type: query-rate, rate: 100, seconds: 3, action_duration: 10 }
`)
	for s := 0; s < 6; s++ {
		h.send("192.0.2.1", "x.example", dns.TypeA, 100, -1, 0, false) // exactly the rate
		h.tick()
		if h.blocked("192.0.2.1") {
			t.Fatalf("second %d: client at the rate blocked", s)
		}
	}
	h.send("192.0.2.1", "x.example", dns.TypeA, 101, -1, 0, false)
	h.tick()
	if !h.blocked("192.0.2.1") {
		t.Fatal("client above the rate over the window not blocked")
	}
}

func TestDynMaskAndInclude(t *testing.T) {
	h := newDynHarness(t, `dynamic_rules:
  - name: by24
    mask_ipv4: 24
    mask_ipv6: 48
    exclude_ranges: ["192.0.2.0/24"]
    include_ranges: ["192.0.2.128/25"]
    rules:
      - { type: query-rate, rate: 10, seconds: 1, action_duration: 30, action: Drop }
`)
	for i := 0; i < 6; i++ {
		h.send(fmt.Sprintf("198.51.100.%d", i), "x.example", dns.TypeA, 3, -1, 0, false) // 18 from one /24
		h.send(fmt.Sprintf("2001:db8:1:%d::1", i), "x.example", dns.TypeA, 3, -1, 0, false)
		h.send(fmt.Sprintf("192.0.2.%d", i), "x.example", dns.TypeA, 3, -1, 0, false)     // excluded
		h.send(fmt.Sprintf("192.0.2.%d", 200+i), "x.example", dns.TypeA, 3, -1, 0, false) // included back
	}
	h.tick()
	if !h.blocked("198.51.100.77") || !h.blocked("2001:db8:1:ffff::9") {
		t.Fatalf("network blocks missing: %+v", h.d.List())
	}
	if h.blocked("192.0.2.5") {
		t.Fatal("excluded client blocked")
	}
	if !h.blocked("192.0.2.250") {
		t.Fatalf("client of an include range inside an exclude range not blocked: %+v", h.d.List())
	}
	if v, _ := h.verdict("192.0.2.250", "x.example", DoUDP); v.Kind != KindDrop {
		t.Fatalf("verdict %+v", v)
	}
}

func TestDynResponseRules(t *testing.T) {
	tests := []struct {
		rule   string
		bad    func(h *dynHarness, client string)
		good   func(h *dynHarness, client string)
		action Kind
	}{
		{`{ type: rcode-rate, rcode: NXDOMAIN, rate: 20, seconds: 2, action_duration: 60, action: NXDomain }`,
			func(h *dynHarness, c string) { h.send(c, "x.example", dns.TypeA, 50, dns.RcodeNameError, 100, false) },
			func(h *dynHarness, c string) { h.send(c, "x.example", dns.TypeA, 50, dns.RcodeSuccess, 100, false) }, KindRCode},
		{`{ type: rcode-ratio, rcode: SERVFAIL, ratio: 0.5, minimum_number_of_responses: 20, seconds: 2, action_duration: 60, action: Truncate }`,
			func(h *dynHarness, c string) {
				h.send(c, "x.example", dns.TypeA, 20, dns.RcodeServerFailure, 100, false)
				h.send(c, "x.example", dns.TypeA, 5, dns.RcodeSuccess, 100, false)
			},
			func(h *dynHarness, c string) {
				h.send(c, "x.example", dns.TypeA, 10, dns.RcodeServerFailure, 100, false)
			}, // below the minimum
			KindTruncate},
		{`{ type: qtype-rate, qtype: ANY, rate: 5, seconds: 2, action_duration: 60, action: Drop }`,
			func(h *dynHarness, c string) { h.send(c, "x.example", dns.TypeANY, 11, -1, 0, false) },
			func(h *dynHarness, c string) { h.send(c, "x.example", dns.TypeA, 50, -1, 0, false) }, KindDrop},
		{`{ type: response-byte-rate, rate: 10000, seconds: 2, action_duration: 60, action: Refused }`,
			func(h *dynHarness, c string) { h.send(c, "x.example", dns.TypeA, 30, 0, 1000, false) },
			func(h *dynHarness, c string) { h.send(c, "x.example", dns.TypeA, 30, 0, 100, false) }, KindRCode},
		{`{ type: cache-miss-ratio, ratio: 0.8, minimum_number_of_responses: 10, seconds: 2, action_duration: 60, action: Drop }`,
			func(h *dynHarness, c string) { h.send(c, "r.example", dns.TypeA, 30, 0, 100, false) },
			func(h *dynHarness, c string) { h.send(c, "x.example", dns.TypeA, 30, 0, 100, true) }, KindDrop},
		{`{ type: allowed-rcodes-ratio, allowed_rcodes: [NOERROR, NXDOMAIN], ratio: 0.3, minimum_number_of_responses: 10, seconds: 2, action_duration: 60, action: Drop }`,
			func(h *dynHarness, c string) { h.send(c, "x.example", dns.TypeA, 20, dns.RcodeRefused, 100, false) },
			func(h *dynHarness, c string) { h.send(c, "x.example", dns.TypeA, 20, dns.RcodeNameError, 100, false) }, KindDrop},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			h := newDynHarness(t, "dynamic_rules:\n  - rules:\n      - "+tt.rule+"\n")
			tt.bad(h, "192.0.2.1")
			tt.good(h, "192.0.2.2")
			h.tick()
			if !h.blocked("192.0.2.1") {
				t.Fatalf("abusive client not blocked: %+v", h.d.List())
			}
			if h.blocked("192.0.2.2") {
				t.Fatal("well-behaved client blocked")
			}
			if v, _ := h.verdict("192.0.2.1", "x.example", DoUDP); v.Kind != tt.action {
				t.Fatalf("verdict %v, want %v", v.Kind, tt.action)
			}
		})
	}
}

// TestDynSuffixMatch: an NXDOMAIN flood of random names under one zone blocks the zone,
// from every client, while other zones and excluded domains keep working.
func TestDynSuffixMatch(t *testing.T) {
	h := newDynHarness(t, `dynamic_rules:
  - name: random-subdomains
    exclude_domains: ["cdn.example."]
    rules:
      - { type: suffix-match, rcode: NXDOMAIN, rate: 50, seconds: 2, action_duration: 120, action: Refused, comment: "random subdomains" }
`)
	for i := 0; i < 200; i++ {
		c := fmt.Sprintf("198.51.100.%d", i%50)
		h.send(c, fmt.Sprintf("r%08x.victim.example", i*7919), dns.TypeA, 1, dns.RcodeNameError, 100, false)
		h.send(c, fmt.Sprintf("r%08x.cdn.example", i*7919), dns.TypeA, 1, dns.RcodeNameError, 100, false)
		h.send(c, fmt.Sprintf("www%d.fine.example", i%3), dns.TypeA, 1, dns.RcodeSuccess, 100, false)
	}
	h.tick()
	v, final := h.verdict("203.0.113.9", "another.VICTIM.example", DoUDP)
	if !final || v.Kind != KindRCode || v.RCode != dns.RcodeRefused {
		t.Fatalf("name under the attacked zone: verdict %+v (blocks %+v)", v, h.d.List())
	}
	for _, n := range []string{"x.cdn.example", "www1.fine.example", "victim.example.net"} {
		if _, final := h.verdict("203.0.113.9", n, DoUDP); final {
			t.Fatalf("%s blocked", n)
		}
	}
	list := h.d.List()
	if len(list) != 1 || list[0].Suffix != "victim.example." || list[0].Key != "suffix:victim.example." {
		t.Fatalf("blocks %+v", list)
	}
}

func TestDynWarningRate(t *testing.T) {
	h := newDynHarness(t, `dynamic_rules:
  - rules:
      - { type: query-rate, rate: 100, warning_rate: 50, seconds: 1, action_duration: 30, action: Drop }
`)
	h.send("192.0.2.1", "x.example", dns.TypeA, 70, -1, 0, false)
	h.tick()
	if h.blocked("192.0.2.1") {
		t.Fatal("warning applied as a block")
	}
	list := h.d.List()
	if len(list) != 1 || !list[0].Warning || list[0].Action != "NoOp" {
		t.Fatalf("blocks %+v", list)
	}
	if !strings.Contains(h.logs.String(), "dynamic block warning") {
		t.Fatalf("no warning log:\n%s", h.logs)
	}
	h.send("192.0.2.1", "x.example", dns.TypeA, 150, -1, 0, false)
	h.tick()
	if !h.blocked("192.0.2.1") {
		t.Fatal("warning not upgraded to a block")
	}
}

// TestDynActions covers the block actions that change the query instead of answering.
func TestDynActions(t *testing.T) {
	h := newDynHarness(t, `dynamic_rules:
  - rules:
      - { type: qtype-rate, qtype: A, rate: 1, seconds: 1, action_duration: 30, action: NoRecurse }
      - { type: qtype-rate, qtype: AAAA, rate: 1, seconds: 1, action_duration: 30, action: SetTag, tag_name: abuse, tag_value: "yes" }
`)
	h.send("192.0.2.1", "x.example", dns.TypeA, 5, -1, 0, false)
	h.send("192.0.2.2", "x.example", dns.TypeAAAA, 5, -1, 0, false)
	h.tick()
	v, final := h.verdict("192.0.2.1", "x.example", DoUDP)
	if final || !v.NoRecurse {
		t.Fatalf("NoRecurse: final %v verdict %+v", final, v)
	}
	q := h.query("192.0.2.2", "x.example", dns.TypeA, 0)
	if h.d.Check(q, &Verdict{}) {
		t.Fatal("SetTag block ended the query")
	}
	if val, ok := q.Tags.Get("abuse"); !ok || val != "yes" {
		t.Fatalf("tag not set: %+v", q.Tags)
	}
}

// TestDynTruncateStream: a Truncate block lets TCP queries through (they cannot be truncated).
func TestDynTruncateStream(t *testing.T) {
	h := newDynHarness(t, "dynamic_rules:\n  - rules:\n      - { type: query-rate, rate: 1, seconds: 1, action_duration: 30, action: Truncate }\n")
	h.send("192.0.2.1", "x.example", dns.TypeA, 5, -1, 0, false)
	h.tick()
	if v, final := h.verdict("192.0.2.1", "x.example", DoUDP); !final || v.Kind != KindTruncate {
		t.Fatalf("UDP verdict %+v", v)
	}
	if _, final := h.verdict("192.0.2.1", "x.example", DoTCP); final {
		t.Fatal("TCP query truncated")
	}
}

// TestDynAPIAndReload: blocks added and removed by hand, exported and re-imported, and kept
// across a reconfiguration; metrics follow.
func TestDynAPIAndReload(t *testing.T) {
	h := newDynHarness(t, "dynamic_rules:\n  - rules:\n      - { type: query-rate, rate: 1, seconds: 1, action_duration: 300 }\n")
	if err := h.d.Add(BlockRequest{Network: "203.0.113.0/24", Action: "NXDomain", Duration: time.Minute, Reason: "manual"}); err != nil {
		t.Fatal(err)
	}
	if err := h.d.Add(BlockRequest{Suffix: "Bad.Example", Duration: time.Minute}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []BlockRequest{{Duration: time.Minute}, {Network: "x", Duration: time.Minute}, {Network: "192.0.2.1"}, {Network: "192.0.2.1", Action: "Explode", Duration: time.Minute}} {
		if err := h.d.Add(bad); err == nil {
			t.Errorf("Add(%+v) accepted", bad)
		}
	}
	h.send("192.0.2.1", "x.example", dns.TypeA, 5, -1, 0, false)
	h.tick()
	if !h.blocked("203.0.113.9") || !h.blocked("192.0.2.1") {
		t.Fatalf("blocks %+v", h.d.List())
	}
	if _, final := h.verdict("198.51.100.1", "a.bad.example", DoUDP); !final {
		t.Fatal("suffix block from the API not applied")
	}
	// A reload keeps the blocks in force.
	if err := h.d.Reconfigure(compileRules(t, "dynamic_rules:\n  - mask_ipv4: 24\n    rules:\n      - { type: query-rate, rate: 1000, seconds: 10, action_duration: 60 }\n")); err != nil {
		t.Fatal(err)
	}
	h.tick()
	if !h.blocked("192.0.2.1") || !h.blocked("203.0.113.9") {
		t.Fatal("blocks lost by a reconfiguration")
	}
	exported := h.d.Export()
	if len(exported) != 3 {
		t.Fatalf("exported %+v", exported)
	}
	other := NewDynBlocks(DynOptions{Loops: 1, Clock: h.clock, Logger: slog.New(slog.DiscardHandler)})
	for _, r := range exported {
		if err := other.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	if len(other.List()) != 3 {
		t.Fatalf("imported %+v", other.List())
	}
	if !h.d.Remove("203.0.113.0/24") || h.blocked("203.0.113.9") || h.d.Remove("203.0.113.0/24") {
		t.Fatal("Remove does not lift the block once")
	}
	if !h.d.Remove("192.0.2.1") || !h.d.Remove("suffix:bad.example.") {
		t.Fatalf("Remove by address or suffix failed: %+v", h.d.List())
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(h.d.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got[mf.GetName()] += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	if got["dnsfront_dynblock_removed_total"] != 3 || got["dnsfront_dynblock_inserted_total"] != 3 || got["dnsfront_dynblock_blocked_queries_total"] < 3 {
		t.Fatalf("metrics %v", got)
	}
}

// TestDynCountingAcrossLoops: the rate is a process-wide budget per client, whatever loop
// its queries land on.
func TestDynCountingAcrossLoops(t *testing.T) {
	h := newDynHarness(t, "dynamic_rules:\n  - rules:\n      - { type: query-rate, rate: 150, seconds: 1, action_duration: 30 }\n")
	msg := packQuery(t, "x.example", dns.TypeA, nil)
	var wg sync.WaitGroup
	for loop := 0; loop < 2; loop++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q := &Query{Client: netip.MustParseAddr("192.0.2.1"), Loop: loop}
			if _, err := ParseQuery(q, msg); err != nil {
				t.Error(err)
				return
			}
			for i := 0; i < 100; i++ {
				h.d.CountQuery(q)
			}
		}()
	}
	wg.Wait()
	h.tick()
	if !h.blocked("192.0.2.1") {
		t.Fatal("200 queries over two loops did not exceed 150/s")
	}
}

func TestNoDynRules(t *testing.T) {
	d := NewDynBlocks(DynOptions{Loops: 1})
	if err := d.Reconfigure(compileRules(t, "")); err != nil {
		t.Fatal(err)
	}
	q := newQuery(t, packQuery(t, "x.example", dns.TypeA, nil), "192.0.2.1")
	d.CountQuery(q)
	d.CountResponse(q, 0, 100, false)
	d.Evaluate()
	if d.Active() || d.Check(q, &Verdict{}) {
		t.Fatal("blocks without rules")
	}
}

// TestDynManyClients counts thousands of clients per second (the window index grows and is
// reused across seconds) and blocks only the one above the rate.
func TestDynManyClients(t *testing.T) {
	h := newDynHarness(t, "dynamic_rules:\n  - rules:\n      - { type: query-rate, rate: 5, seconds: 2, action_duration: 30 }\n")
	for s := 0; s < 3; s++ {
		for i := 0; i < 3000; i++ {
			h.send(fmt.Sprintf("10.%d.%d.1", i/256, i%256), "x.example", dns.TypeA, 2, -1, 0, false)
		}
		h.send("192.0.2.1", "x.example", dns.TypeA, 4, -1, 0, false)
		if s == 2 {
			h.send("192.0.2.1", "x.example", dns.TypeA, 10, -1, 0, false)
		}
		h.tick()
	}
	list := h.d.List()
	if len(list) != 1 || list[0].Network != "192.0.2.1/32" {
		t.Fatalf("blocks %d, first %+v", len(list), list[:min(len(list), 3)])
	}
}
