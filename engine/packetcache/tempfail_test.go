package packetcache

import (
	"testing"
	"time"

	"github.com/miekg/dns"
)

// A rule's SetTempFailureCacheTTL replaces temporary_failure_ttl for one answer only.
func TestInsertTempFailureTTL(t *testing.T) {
	tests := []struct {
		name  string
		rcode int
		an    []string
		ttl   uint32
		life  time.Duration // 0: not cached
	}{
		{name: "SERVFAIL for the given TTL", rcode: dns.RcodeServerFailure, ttl: 7, life: 7 * time.Second},
		{name: "REFUSED for the given TTL", rcode: dns.RcodeRefused, ttl: 300, life: 300 * time.Second},
		{name: "SERVFAIL not cached with 0", rcode: dns.RcodeServerFailure, ttl: 0},
		{name: "positive answer keeps its own TTL", rcode: dns.RcodeSuccess, ttl: 7,
			an: []string{"www.example.com. 120 IN A 192.0.2.1"}, life: 120 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(DefaultOptions(10))
			q := newQuery("www.example.com.", dns.TypeA, qopt{})
			r := answer(t, q, tt.rcode, tt.an, nil)
			c.InsertTempFailureTTL(pack(t, q), pack(t, r), t0, tt.ttl)
			qb := pack(t, q)
			if tt.life == 0 {
				if _, ok := c.Get(qb, nil, t0); ok {
					t.Fatal("answer was cached")
				}
				return
			}
			if _, ok := c.Get(qb, nil, t0.Add(tt.life-time.Second)); !ok {
				t.Fatalf("miss %v after insertion, want hit until %v", tt.life-time.Second, tt.life)
			}
			if _, ok := c.Get(qb, nil, t0.Add(tt.life)); ok {
				t.Fatalf("hit %v after insertion, want expiry", tt.life)
			}
			// The cache's own temporary_failure_ttl (60) is untouched for the next insert.
			if tt.rcode == dns.RcodeServerFailure {
				c.Insert(qb, pack(t, r), t0)
				if _, ok := c.Get(qb, nil, t0.Add(59*time.Second)); !ok {
					t.Fatal("plain Insert did not use temporary_failure_ttl")
				}
			}
		})
	}
}
