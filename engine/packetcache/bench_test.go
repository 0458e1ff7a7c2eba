package packetcache

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

type fixture struct{ qs, rs [][]byte }

func makeFixture(b *testing.B, n int) fixture {
	var fx fixture
	for i := range n {
		q := newQuery(fmt.Sprintf("host%d.example.com.", i), dns.TypeA, qopt{do: true})
		r := answer(b, q, dns.RcodeSuccess, []string{
			q.Question[0].Name + " 300 IN CNAME web.example.com.",
			"web.example.com. 300 IN A 192.0.2.1",
			"web.example.com. 300 IN A 192.0.2.2",
		}, nil)
		fx.qs = append(fx.qs, pack(b, q))
		fx.rs = append(fx.rs, pack(b, r))
	}
	return fx
}

func (fx fixture) fill(c *Cache) {
	for i := range fx.qs {
		c.Insert(fx.qs[i], fx.rs[i], t0)
	}
}

func BenchmarkGetHit(b *testing.B) {
	fx := makeFixture(b, 1000)
	c := New(DefaultOptions(10000))
	fx.fill(c)
	dst := make([]byte, 0, 4096)
	now := t0.Add(5e9)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok := c.Get(fx.qs[i%1000], dst[:0], now); !ok {
			b.Fatal("miss")
		}
		i++
	}
}

func BenchmarkGetMiss(b *testing.B) {
	fx := makeFixture(b, 1000)
	c := New(DefaultOptions(10000))
	dst := make([]byte, 0, 4096)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.Get(fx.qs[i%1000], dst[:0], t0)
		i++
	}
}

// BenchmarkInsertReplace measures a full cache replacing entries, the
// steady state of a busy resolver: slots' buffers are reused.
func BenchmarkInsertReplace(b *testing.B) {
	fx := makeFixture(b, 2000)
	c := New(DefaultOptions(1000))
	fx.fill(c)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.Insert(fx.qs[i%2000], fx.rs[i%2000], t0)
		i++
	}
}

// BenchmarkParallel compares one cache shared by every loop (sharded, RWMutex
// per shard) with one cache per loop, on hits only and on a 90/10 mix of hits
// and inserts, over 10 hot names (loops often meet on a shard) and over 1000
// names. RunParallel's goroutines stand for event loops.
func BenchmarkParallel(b *testing.B) {
	for _, names := range []int{10, 1000} {
		fx := makeFixture(b, names)
		designs := []struct {
			name  string
			cache func(shared *Cache) *Cache
		}{
			{"shared", func(shared *Cache) *Cache { return shared }},
			{"per-loop", func(*Cache) *Cache { c := New(DefaultOptions(10000)); fx.fill(c); return c }},
		}
		for _, mix := range []struct {
			name        string
			insertEvery int
		}{{"hits", 0}, {"hits90-inserts10", 10}} {
			for _, d := range designs {
				b.Run(fmt.Sprintf("names%d/%s/%s", names, mix.name, d.name), func(b *testing.B) {
					shared := New(DefaultOptions(10000))
					fx.fill(shared)
					var seq atomic.Int64
					now := t0.Add(5e9)
					b.ReportAllocs()
					b.RunParallel(func(pb *testing.PB) {
						c := d.cache(shared)
						i := int(seq.Add(1)) * 7919
						dst := make([]byte, 0, 4096)
						for pb.Next() {
							k := i % names
							if mix.insertEvery > 0 && i%mix.insertEvery == 0 {
								c.Insert(fx.qs[k], fx.rs[k], now)
							} else if _, ok := c.Get(fx.qs[k], dst[:0], now); !ok {
								b.Error("miss")
								return
							}
							i++
						}
					})
				})
			}
		}
	}
}
