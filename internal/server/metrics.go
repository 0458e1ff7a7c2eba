package server

import (
	"github.com/prometheus/client_golang/prometheus"
)

// handshakeCollector exports each TLS bind's handshake counters. The binds are fixed for
// the life of the process, so the collector reads them without a lock.
type handshakeCollector struct {
	s                         *Server
	running, queued, finished *prometheus.Desc
}

func newHandshakeCollector(s *Server) *handshakeCollector {
	l := []string{"listener"}
	return &handshakeCollector{
		s:        s,
		running:  prometheus.NewDesc("dnsfront_tls_handshakes_running", "TLS handshakes running on worker goroutines.", l, nil),
		queued:   prometheus.NewDesc("dnsfront_tls_handshakes_queued", "TLS handshakes waiting for a worker.", l, nil),
		finished: prometheus.NewDesc("dnsfront_tls_handshakes_total", "TLS handshakes by outcome.", []string{"listener", "result"}, nil),
	}
}

func (c *handshakeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.running
	ch <- c.queued
	ch <- c.finished
}

func (c *handshakeCollector) Collect(ch chan<- prometheus.Metric) {
	for addr, tb := range c.s.tlsBinds() {
		st := tb.hs.Stats()
		ch <- prometheus.MustNewConstMetric(c.running, prometheus.GaugeValue, float64(st.Running), addr)
		ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(st.Queued), addr)
		for result, v := range map[string]uint64{
			"ok": st.Succeeded, "failed": st.Failed, "shed": st.Shed,
			"client_limit": st.ClientRejected, "timeout": st.TimedOut,
		} {
			ch <- prometheus.MustNewConstMetric(c.finished, prometheus.CounterValue, float64(v), addr, result)
		}
	}
}
