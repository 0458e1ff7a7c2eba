package ocsp

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metric names; docs/ocsp.md lists them for operators.
var (
	descPresent = prometheus.NewDesc("dnsfront_ocsp_staple_present",
		"1 when a valid OCSP staple is served for the certificate.", []string{"cert", "serial"}, nil)
	descUntilNext = prometheus.NewDesc("dnsfront_ocsp_staple_next_update_seconds",
		"Seconds until the served staple's nextUpdate (absent without staple).", []string{"cert", "serial"}, nil)
	descMustStapleMissing = prometheus.NewDesc("dnsfront_ocsp_must_staple_without_staple",
		"1 when a Must-Staple certificate has no valid staple: clients reject it.", []string{"cert", "serial"}, nil)
	descRevoked = prometheus.NewDesc("dnsfront_ocsp_certificate_revoked",
		"1 when the responder said the certificate is revoked.", []string{"cert", "serial"}, nil)
	descFailures = prometheus.NewDesc("dnsfront_ocsp_consecutive_failures",
		"Consecutive failed update attempts of the certificate.", []string{"cert", "serial"}, nil)
	descUnverified = prometheus.NewDesc("dnsfront_ocsp_staple_unverified",
		"1 when the served staple's signature is not verified: the issuer is unknown (set issuer:).", []string{"cert", "serial"}, nil)
	descNotApplicable = prometheus.NewDesc("dnsfront_ocsp_not_applicable",
		"1 when the certificate has no OCSP responder URL and no other source: nothing to staple, not a failure.", []string{"cert", "serial"}, nil)
	descAttempts = prometheus.NewDesc("dnsfront_ocsp_update_attempts_total",
		"Update attempts (fetch or generate) by source and result.", []string{"source", "result"}, nil)
	descFailuresTotal = prometheus.NewDesc("dnsfront_ocsp_update_failures_total",
		"Failed update attempts by source and result.", []string{"source", "result"}, nil)
)

// Collector returns the Manager's Prometheus collector. It is not
// registered anywhere: the server registers it with its registry. Values are
// read from the Manager at scrape time.
func (m *Manager) Collector() prometheus.Collector { return collector{m} }

type collector struct{ m *Manager }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPresent, descUntilNext, descMustStapleMissing, descRevoked,
		descFailures, descUnverified, descNotApplicable, descAttempts, descFailuresTotal} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	now := m.clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	for _, id := range m.order {
		st := m.certs[id]
		serial := FormatSerial(st.leaf.SerialNumber)
		ch <- prometheus.MustNewConstMetric(descPresent, prometheus.GaugeValue, b(st.current != nil), st.name, serial)
		if st.current != nil {
			ch <- prometheus.MustNewConstMetric(descUntilNext, prometheus.GaugeValue,
				st.current.NextUpdate.Sub(now).Seconds(), st.name, serial)
		}
		ch <- prometheus.MustNewConstMetric(descMustStapleMissing, prometheus.GaugeValue,
			b(st.mustStaple && st.current == nil), st.name, serial)
		ch <- prometheus.MustNewConstMetric(descRevoked, prometheus.GaugeValue, b(st.revoked != nil), st.name, serial)
		ch <- prometheus.MustNewConstMetric(descFailures, prometheus.GaugeValue, float64(st.failures), st.name, serial)
		ch <- prometheus.MustNewConstMetric(descUnverified, prometheus.GaugeValue,
			b(st.current != nil && st.current.Unverified), st.name, serial)
		ch <- prometheus.MustNewConstMetric(descNotApplicable, prometheus.GaugeValue, b(st.notApplicable()), st.name, serial)
	}
	for k, n := range m.attempts {
		ch <- prometheus.MustNewConstMetric(descAttempts, prometheus.CounterValue, float64(n), k[0], k[1])
		if k[1] != ResultOK {
			ch <- prometheus.MustNewConstMetric(descFailuresTotal, prometheus.CounterValue, float64(n), k[0], k[1])
		}
	}
}
