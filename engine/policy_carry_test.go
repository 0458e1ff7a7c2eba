package engine

import (
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsfront/dnsfront/config"
	"github.com/dnsfront/dnsfront/engine/packetcache"
	"github.com/dnsfront/dnsfront/engine/rules"
)

// withPolicy compiles yaml onto the hot path's engine.
func (h *hotPath) withPolicy(t *testing.T, yaml string) {
	t.Helper()
	cfg, err := config.ParseRules("t.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Compile(cfg, rules.Options{Loops: 1})
	if err != nil {
		t.Fatal(err)
	}
	h.l.e.state.Load().Rules = rs
}

// answerWith makes the backend answer the hot path's query with rcode.
func (h *hotPath) answerWith(t *testing.T, rcode int) {
	t.Helper()
	var q dns.Msg
	if err := q.Unpack(h.query); err != nil {
		t.Fatal(err)
	}
	r := new(dns.Msg)
	r.SetRcode(&q, rcode)
	var err error
	if h.answer, err = r.Pack(); err != nil {
		t.Fatal(err)
	}
}

// TestPolicyTempFailureCacheTTL: a SetTempFailureCacheTTL rule gives the SERVFAIL of the
// query it matched its own cache lifetime instead of the pool's temporary_failure_ttl.
func TestPolicyTempFailureCacheTTL(t *testing.T) {
	for _, tc := range []struct {
		name string
		ttl  string // "" : no rule
		life time.Duration
	}{
		{"pool's temporary_failure_ttl", "", 60 * time.Second},
		{"rule's TTL", "5", 5 * time.Second},
		{"rule's TTL 0: not cached", "0", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fd, client := udpPair(t)
			h := newHotPath(t, fd, client)
			cache := packetcache.New(packetcache.DefaultOptions(10))
			h.l.e.state.Load().Pools[""].Cache = cache
			yaml := "query_rules: []\n"
			if tc.ttl != "" {
				yaml = `query_rules:
  - {name: tf, selector: {type: QName, qname: "www.example.com."}, action: {type: SetTempFailureCacheTTL, ttl: ` + tc.ttl + `}}
`
			}
			h.withPolicy(t, yaml)
			h.answerWith(t, dns.RcodeServerFailure)
			start := time.Now()
			h.roundTrip()
			_, hit := cache.Get(h.query, nil, start)
			if tc.life == 0 {
				if hit {
					t.Fatal("SERVFAIL cached")
				}
				return
			}
			if !hit {
				t.Fatal("SERVFAIL not cached")
			}
			// Inserted at or after start and at most a few seconds later.
			if _, hit := cache.Get(h.query, nil, start.Add(tc.life-2*time.Second)); !hit {
				t.Errorf("gone before %v", tc.life)
			}
			if _, hit := cache.Get(h.query, nil, start.Add(tc.life+2*time.Second)); hit {
				t.Errorf("still cached after %v", tc.life)
			}
		})
	}
}

// TestPolicyTagsReachResponseRules: a tag set by a query rule is seen by the response
// rules of that query's answer, and only of that query's.
func TestPolicyTagsReachResponseRules(t *testing.T) {
	fd, client := udpPair(t)
	h := newHotPath(t, fd, client)
	h.withPolicy(t, `query_rules:
  - {name: tag, selector: {type: QName, qname: "www.example.com."}, action: {type: SetTag, tag: origin, value: web}}
response_rules:
  - {name: drop-tagged, selector: {type: Tag, tag: origin, value: web}, action: {type: Drop}}
`)
	h.roundTrip()
	if d := h.l.pol.stats.respDrops.Load(); d != 1 {
		t.Fatalf("%d answers dropped by the response rule, want 1: the query's tag did not reach it", d)
	}

	// Another name gets no tag: its answer is delivered.
	q := new(dns.Msg)
	q.SetQuestion("other.example.com.", dns.TypeA)
	q.Id = 0x4321
	var err error
	if h.query, err = q.Pack(); err != nil {
		t.Fatal(err)
	}
	h.answerWith(t, dns.RcodeSuccess)
	h.roundTrip()
	if d := h.l.pol.stats.respDrops.Load(); d != 1 {
		t.Fatalf("%d answers dropped, want still 1", d)
	}
	buf := make([]byte, 512)
	_ = client.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := client.Read(buf); err != nil {
		t.Fatalf("untagged answer not delivered: %v", err)
	}
}
