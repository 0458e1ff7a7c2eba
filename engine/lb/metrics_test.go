package lb

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestCollectorSumsLoops(t *testing.T) {
	s, p := newTestSet(t, PolicyRoundRobin, []int{1, 1}, nil)
	l1, l2 := s.NewLoop(), s.NewLoop()
	b0 := s.Backends[0]
	l1.QuerySent(b0.ID)
	l1.QuerySent(b0.ID)
	l2.QuerySent(b0.ID)
	l2.QuerySent(b0.ID)
	l1.ResponseReceived(b0.ID, 3*time.Millisecond)
	l2.ResponseReceived(b0.ID, 700*time.Millisecond)
	l2.TimedOut(b0.ID)
	l1.SendFailed(b0.ID)
	if l1.Outstanding(b0.ID) != 1 || l2.Outstanding(b0.ID) != 0 {
		t.Fatalf("per-loop outstanding %d/%d, want 1/0", l1.Outstanding(b0.ID), l2.Outstanding(b0.ID))
	}
	setDown(s.Backends[1])
	setDown(b0)
	p.NewLoopPicker().Pick(l1, 0)
	setUp(b0)

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(s))
	mfs, err := reg.Gather() // the pedantic registry checks descriptions and consistency
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, lp := range m.GetLabel() {
				key += "," + lp.GetName() + "=" + lp.GetValue()
			}
			switch {
			case m.Counter != nil:
				got[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				got[key] = m.Gauge.GetValue()
			case m.Histogram != nil:
				got[key] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	const lb0, lb1 = ",address=127.0.0.1:5300,backend=b0", ",address=127.0.0.1:5301,backend=b1"
	for key, want := range map[string]float64{
		"dnsfront_backend_queries_total" + lb0: 4, "dnsfront_backend_queries_total" + lb1: 0,
		"dnsfront_backend_responses_total" + lb0: 2, "dnsfront_backend_timeouts_total" + lb0: 1,
		"dnsfront_backend_send_errors_total" + lb0: 1, "dnsfront_backend_outstanding" + lb0: 1,
		"dnsfront_backend_up" + lb0: 1, "dnsfront_backend_up" + lb1: 0,
		"dnsfront_backend_latency_seconds" + lb0: 2, "dnsfront_backend_latency_seconds" + lb1: 0,
		"dnsfront_pool_no_backend_total,pool=": 1,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}
	k := s.Counters(b0)
	// 3 ms falls in the 0.005 bucket, 700 ms in the 1 s one; buckets are cumulative.
	if k.LatencyCount != 2 || k.LatencyBuckets[2] != 0 || k.LatencyBuckets[3] != 1 || k.LatencyBuckets[9] != 1 || k.LatencyBuckets[10] != 2 ||
		k.LatencySum != 703*time.Millisecond {
		t.Fatalf("latency: %+v", k)
	}
}
