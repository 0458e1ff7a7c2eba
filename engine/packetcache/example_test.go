package packetcache_test

import (
	"fmt"
	"time"

	"github.com/dnsfront/dnsfront/engine/packetcache"
	"github.com/miekg/dns"
)

// On an event loop: look the client's query up; on a miss, forward it, and
// when the backend's answer comes back, insert it under the client's query
// (before any truncation to the client's UDP size).
func Example() {
	cache := packetcache.New(packetcache.DefaultOptions(100000))
	scratch := make([]byte, 0, 4096) // per loop, reused for every hit

	q := new(dns.Msg).SetQuestion("Example.COM.", dns.TypeA)
	query, _ := q.Pack()
	if _, ok := cache.Get(query, scratch[:0], time.Now()); !ok {
		r := new(dns.Msg).SetReply(q)
		a, _ := dns.NewRR("example.com. 300 IN A 192.0.2.1")
		r.Answer = append(r.Answer, a)
		answer, _ := r.Pack() // what the backend sent back
		cache.Insert(query, answer, time.Now())
	}

	q.Id = 4242
	query, _ = q.Pack()
	out, ok := cache.Get(query, scratch[:0], time.Now().Add(100*time.Second))
	m := new(dns.Msg)
	_ = m.Unpack(out)
	fmt.Println(ok, m.Id, m.Answer[0].Header().Ttl)
	// Output: true 4242 200
}
