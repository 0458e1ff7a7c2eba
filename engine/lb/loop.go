package lb

import (
	"time"
)

// LoopView is what policies need to know about the calling loop: how many
// of its queries each backend still owes an answer.
type LoopView interface {
	Outstanding(backendID int) int
}

// Loop is one event loop's view of the backends: its counters and
// outstanding queries per backend. Create one per loop with Set.NewLoop;
// only that loop may call its methods other than Outstanding readers used by
// the collector (which read atomics). Loop implements LoopView.
type Loop struct {
	stats []*loopBackendStats // indexed by Backend.ID: this loop's shard of each backend's counters
}

// Outstanding returns this loop's queries in flight to the backend. Right
// after a reload it may count queries another loop sent on the same shard,
// or miss some it answers; it is never negative.
func (l *Loop) Outstanding(backendID int) int {
	return int(max(l.stats[backendID].outstanding.load(), 0))
}

// QuerySent records a query written to the backend: one more query and one
// more outstanding.
func (l *Loop) QuerySent(backendID int) {
	s := l.stats[backendID]
	s.queries.inc()
	s.outstanding.add(1)
}

// ResponseReceived records the backend's answer to an outstanding query and
// its latency.
func (l *Loop) ResponseReceived(backendID int, latency time.Duration) {
	s := l.stats[backendID]
	s.responses.inc()
	s.outstanding.add(-1)
	s.observe(latency)
}

// TimedOut records an outstanding query the backend never answered.
func (l *Loop) TimedOut(backendID int) {
	s := l.stats[backendID]
	s.timeouts.inc()
	s.outstanding.add(-1)
}

// Abandoned releases an outstanding query that ended without an answer or a
// timeout (for example its backend connection closed); it is not counted as
// a timeout.
func (l *Loop) Abandoned(backendID int) {
	l.stats[backendID].outstanding.add(-1)
}

// SendFailed records a query that could not be written to the backend.
// Call it instead of QuerySent.
func (l *Loop) SendFailed(backendID int) {
	l.stats[backendID].sendErrors.inc()
}

func (s *loopBackendStats) addTo(c *Counters) {
	c.Queries += s.queries.load()
	c.Responses += s.responses.load()
	c.Timeouts += s.timeouts.load()
	c.SendErrors += s.sendErrors.load()
	c.Outstanding += s.outstanding.load()
	for i := range s.buckets {
		c.LatencyBuckets[i] += s.buckets[i].load()
	}
	c.LatencyCount += s.responses.load()
	c.LatencySum += time.Duration(s.latencySumNs.load())
}
