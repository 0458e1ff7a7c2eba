package packetcache

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// FuzzInsertGet feeds arbitrary query/answer pairs through Insert and Get:
// neither may panic; a hit has the stored answer's length and the query's
// ID; an unaged hit is the stored answer but for the ID and the qname's case,
// so it parses wherever the stored answer parsed. (An aged hit need not: a
// backend may point a compression pointer into a TTL field, and aging then
// changes the name it decodes to. The backend controls its answers' names
// anyway, so the cache does not police that.)
func FuzzInsertGet(f *testing.F) {
	q := newQuery("www.example.com.", dns.TypeA, qopt{do: true})
	r := answer(f, q, dns.RcodeSuccess, []string{"www.example.com. 300 IN CNAME web.example.com.", "web.example.com. 60 IN A 192.0.2.1"}, []string{soa})
	nx := answer(f, q, dns.RcodeNameError, nil, []string{soa})
	f.Add(pack(f, q), pack(f, r), uint16(10))
	f.Add(pack(f, q), pack(f, nx), uint16(0))
	f.Add(pack(f, q), []byte{0, 0, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 0xc0, 0x0c}, uint16(1))
	f.Fuzz(func(t *testing.T, query, response []byte, age uint16) {
		c := New(DefaultOptions(8))
		c.Insert(query, response, t0)
		out, ok := c.Get(query, nil, t0)
		if !ok {
			return
		}
		if len(out) != len(response) {
			t.Fatalf("hit of %d bytes for a %d-byte answer", len(out), len(response))
		}
		if binary.BigEndian.Uint16(out) != binary.BigEndian.Uint16(query) {
			t.Fatal("hit does not carry the query's ID")
		}
		if new(dns.Msg).Unpack(response) == nil {
			if err := new(dns.Msg).Unpack(out); err != nil {
				t.Fatalf("stored answer parsed, served one does not: %v", err)
			}
		}
		aged, ok := c.Get(query, nil, t0.Add(time.Duration(age)*time.Second))
		if ok && (len(aged) != len(response) || binary.BigEndian.Uint16(aged) != binary.BigEndian.Uint16(query)) {
			t.Fatal("aged hit differs in length or ID")
		}
	})
}
