package engine

import "github.com/prometheus/client_golang/prometheus"

type proxyCollector struct {
	e              *Engine
	received, sent *prometheus.Desc
}

// ProxyCollector exposes the proxy protocol counters: headers received by outcome, and
// headers sent to backends by transport.
func (e *Engine) ProxyCollector() prometheus.Collector {
	return &proxyCollector{
		e: e,
		received: prometheus.NewDesc("dnsfront_proxy_protocol_headers_total",
			"PROXY protocol v2 headers received from peers in proxy_protocol.acl, by result (valid, local, invalid, too_large); invalid and too_large ones drop their query or connection.",
			[]string{"result"}, nil),
		sent: prometheus.NewDesc("dnsfront_proxy_protocol_sent_total",
			"PROXY protocol v2 headers sent to use_proxy_protocol backends, by transport (one per UDP query, one per TCP connection).",
			[]string{"transport"}, nil),
	}
}

func (c *proxyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.received
	ch <- c.sent
}

func (c *proxyCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.e.ProxyStats()
	for _, r := range []struct {
		v     uint64
		label string
	}{{s.Valid, "valid"}, {s.Local, "local"}, {s.Invalid, "invalid"}, {s.TooLarge, "too_large"}} {
		ch <- prometheus.MustNewConstMetric(c.received, prometheus.CounterValue, float64(r.v), r.label)
	}
	ch <- prometheus.MustNewConstMetric(c.sent, prometheus.CounterValue, float64(s.SentUDP), "udp")
	ch <- prometheus.MustNewConstMetric(c.sent, prometheus.CounterValue, float64(s.SentTCP), "tcp")
}
