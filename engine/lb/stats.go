package lb

import (
	"sync/atomic"
	"time"
)

// LatencyBuckets are the upper bounds, in seconds, of the backend latency
// histogram: from a loopback resolver's cache hit to a slow recursion.
var LatencyBuckets = [...]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

var latencyBounds = func() (b [len(LatencyBuckets)]time.Duration) {
	for i, s := range LatencyBuckets {
		b[i] = time.Duration(s * float64(time.Second))
	}
	return b
}()

// counter is an atomic add: a shard has one writer while a Set serves, but
// for the moment a reload takes to reach every loop, a loop of the old Set
// and one of the new may write the same shard. On one writer's cache line an
// atomic add costs about what a load and a store do.
type counter struct{ v atomic.Uint64 }

func (c *counter) inc()         { c.v.Add(1) }
func (c *counter) add(n uint64) { c.v.Add(n) }
func (c *counter) load() uint64 { return c.v.Load() }
func (g *gauge) add(n int64)    { g.v.Add(n) }
func (g *gauge) load() int64    { return g.v.Load() }

type gauge struct{ v atomic.Int64 }

// loopBackendStats are one loop's counters for one backend. The latency
// histogram's count is responses: every response is observed once.
type loopBackendStats struct {
	queries, responses, timeouts, sendErrors counter
	outstanding                              gauge
	buckets                                  [len(LatencyBuckets)]counter // non-cumulative
	latencySumNs                             counter
	_                                        [64]byte // no false sharing between backends' stats
}

func (s *loopBackendStats) observe(d time.Duration) {
	for i, ub := range latencyBounds {
		if d <= ub {
			s.buckets[i].inc()
			break
		}
	}
	if d > 0 {
		s.latencySumNs.add(uint64(d))
	}
}

// Counters are a backend's totals summed over every loop.
type Counters struct {
	Queries, Responses, Timeouts, SendErrors uint64
	Outstanding                              int64
	// LatencyBuckets[i] counts responses at or under LatencyBuckets[i]
	// seconds (cumulative, as Prometheus wants them).
	LatencyBuckets [len(LatencyBuckets)]uint64
	LatencyCount   uint64
	LatencySum     time.Duration
}
