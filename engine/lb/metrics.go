package lb

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports a Set's per-backend and per-pool metrics. It reads
// atomics and is safe to scrape from any goroutine. It is not registered
// anywhere: the caller registers it with its own registry.
type Collector struct {
	set *Set

	queries, responses, timeouts, sendErrors *prometheus.Desc
	latency, outstanding, up, noBackend      *prometheus.Desc
}

// NewCollector returns a collector over set.
func NewCollector(set *Set) *Collector {
	bl := []string{"backend", "address"}
	return &Collector{
		set:         set,
		queries:     prometheus.NewDesc("dnsfront_backend_queries_total", "Queries sent to the backend.", bl, nil),
		responses:   prometheus.NewDesc("dnsfront_backend_responses_total", "Responses received from the backend.", bl, nil),
		timeouts:    prometheus.NewDesc("dnsfront_backend_timeouts_total", "Queries the backend did not answer in time.", bl, nil),
		sendErrors:  prometheus.NewDesc("dnsfront_backend_send_errors_total", "Queries that could not be sent to the backend.", bl, nil),
		latency:     prometheus.NewDesc("dnsfront_backend_latency_seconds", "Time from sending a query to the backend to its response.", bl, nil),
		outstanding: prometheus.NewDesc("dnsfront_backend_outstanding", "Queries sent to the backend and not yet answered or timed out.", bl, nil),
		up:          prometheus.NewDesc("dnsfront_backend_up", "Backend health state: 1 up, 0 down.", bl, nil),
		noBackend:   prometheus.NewDesc("dnsfront_pool_no_backend_total", "Queries for which every backend of the pool was down (answered SERVFAIL).", []string{"pool"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.queries, c.responses, c.timeouts, c.sendErrors, c.latency, c.outstanding, c.up, c.noBackend} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, b := range c.set.Backends {
		lv := []string{b.Name, b.Addr.String()}
		k := c.set.Counters(b)
		ch <- prometheus.MustNewConstMetric(c.queries, prometheus.CounterValue, float64(k.Queries), lv...)
		ch <- prometheus.MustNewConstMetric(c.responses, prometheus.CounterValue, float64(k.Responses), lv...)
		ch <- prometheus.MustNewConstMetric(c.timeouts, prometheus.CounterValue, float64(k.Timeouts), lv...)
		ch <- prometheus.MustNewConstMetric(c.sendErrors, prometheus.CounterValue, float64(k.SendErrors), lv...)
		ch <- prometheus.MustNewConstMetric(c.outstanding, prometheus.GaugeValue, float64(k.Outstanding), lv...)
		up := 0.0
		if b.Up() {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, lv...)
		buckets := make(map[float64]uint64, len(LatencyBuckets))
		for i, ub := range LatencyBuckets {
			buckets[ub] = k.LatencyBuckets[i]
		}
		ch <- prometheus.MustNewConstHistogram(c.latency, k.LatencyCount, k.LatencySum.Seconds(), buckets, lv...)
	}
	for _, p := range c.set.Pools {
		ch <- prometheus.MustNewConstMetric(c.noBackend, prometheus.CounterValue, float64(p.NoBackend()), p.Name)
	}
}
