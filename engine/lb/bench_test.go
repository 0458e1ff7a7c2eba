package lb

import (
	"fmt"
	"testing"
)

// BenchmarkPick measures one pick among 8 backends, two of them down, with
// the per-loop view the engine passes.
func BenchmarkPick(b *testing.B) {
	for _, pol := range []string{PolicyLeastOutstanding, PolicyFirstAvailable, PolicyRoundRobin, PolicyWeightedRandom, PolicyConsistentHash} {
		b.Run(pol, func(b *testing.B) {
			s, p := newTestSet(b, pol, []int{1, 2, 3, 4, 1, 2, 3, 4}, []int{1, 1, 2, 2, 3, 3, 4, 4})
			setDown(s.Backends[0], s.Backends[5])
			loop := s.NewLoop()
			for i := range s.Backends {
				for range i % 3 {
					loop.QuerySent(i)
				}
			}
			pk := p.NewLoopPicker()
			hashes := make([]uint64, 1024)
			for i := range hashes {
				hashes[i] = HashQName([]byte(fmt.Sprintf("\x04host%d\x07example\x03com\x00", i)))
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if pk.Pick(loop, hashes[i&1023]) == nil {
					b.Fatal("nil pick")
				}
				i++
			}
		})
	}
}

func BenchmarkLoopCounters(b *testing.B) {
	s, _ := newTestSet(b, "", []int{1, 1}, nil)
	l := s.NewLoop()
	b.ReportAllocs()
	for b.Loop() {
		l.QuerySent(1)
		l.ResponseReceived(1, 1234567)
	}
}
