package quic

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// counters are a listener's own events; queries, answers, cache and backend outcomes are
// the engine's (proto "doq" and "doh3").
type counters struct {
	accepted  atomic.Uint64 // connections established
	refused   atomic.Uint64 // connection attempts refused: limits, draining
	aclDrops  atomic.Uint64 // connection attempts from outside the ACL
	retries   atomic.Uint64 // Retry packets asked for (address validation)
	zeroRTT   atomic.Uint64 // connections that used 0-RTT
	protoErrs atomic.Uint64 // connections closed with DOQ_PROTOCOL_ERROR
	cancelled atomic.Uint64 // streams reset with DOQ_REQUEST_CANCELLED (stalled, dropped)
	badReqs   atomic.Uint64 // DoH3 requests refused before the engine (4xx)
	// connection attempts refused by the per-client TLS limits shared with DoT (also
	// counted in refused)
	clientLimited atomic.Uint64
}

// Stats is a snapshot of a listener's counters.
type Stats struct {
	Accepted, Refused, ACLDrops, Retries, ZeroRTT uint64
	ProtocolErrors, CancelledStreams, BadRequests uint64
	ClientLimited                                 uint64
	Connections, Handshaking                      int64
}

// Stats reads the listener's counters.
func (l *Listener) Stats() Stats {
	c := &l.stats
	return Stats{
		Accepted: c.accepted.Load(), Refused: c.refused.Load(), ACLDrops: c.aclDrops.Load(),
		Retries: c.retries.Load(), ZeroRTT: c.zeroRTT.Load(), ProtocolErrors: c.protoErrs.Load(),
		CancelledStreams: c.cancelled.Load(), BadRequests: c.badReqs.Load(), ClientLimited: c.clientLimited.Load(),
		Connections: int64(l.Connections()), Handshaking: l.handshaking.Load(),
	}
}

// Collector exposes the counters of a set of listeners, labelled by listener and protocol.
func Collector(ls ...*Listener) prometheus.Collector { return &collector{ls: ls} }

type collector struct{ ls []*Listener }

var (
	descConns = prometheus.NewDesc("dnsfront_quic_connections", "Established QUIC connections.", []string{"listener", "proto"}, nil)
	descHS    = prometheus.NewDesc("dnsfront_quic_handshakes_in_flight", "QUIC handshakes in flight.", []string{"listener", "proto"}, nil)
	descEvent = prometheus.NewDesc("dnsfront_quic_events_total", "QUIC connection and stream events, by kind.", []string{"listener", "proto", "kind"}, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descConns
	ch <- descHS
	ch <- descEvent
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, l := range c.ls {
		s := l.Stats()
		name, proto := l.opts.Addr.String(), l.opts.Protocol
		ch <- prometheus.MustNewConstMetric(descConns, prometheus.GaugeValue, float64(s.Connections), name, proto)
		ch <- prometheus.MustNewConstMetric(descHS, prometheus.GaugeValue, float64(s.Handshaking), name, proto)
		for kind, v := range map[string]uint64{
			"accepted": s.Accepted, "refused": s.Refused, "acl": s.ACLDrops, "retry": s.Retries,
			"zero_rtt": s.ZeroRTT, "protocol_error": s.ProtocolErrors, "stream_cancelled": s.CancelledStreams,
			"bad_request": s.BadRequests, "client_limited": s.ClientLimited,
		} {
			ch <- prometheus.MustNewConstMetric(descEvent, prometheus.CounterValue, float64(v), name, proto, kind)
		}
	}
}
