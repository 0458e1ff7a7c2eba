package config

import (
	"net/netip"
	"strings"
)

// The QUIC binds: protocol DoQ (RFC 9250) and DoH3 (RFC 8484 over HTTP/3). Their keys are
// dnsdist 2.x's incoming_quic and incoming_doq; a DoH3 bind takes its HTTP settings from
// the doh block, as in dnsdist.

// BindQUIC is dnsdist's incoming_quic, plus the address-validation and 0-RTT settings
// dnsdist does not expose.
type BindQUIC struct {
	// IdleTimeout closes a connection with no traffic for this many seconds (dnsdist's
	// default, 5).
	IdleTimeout int `yaml:"idle_timeout"`
	// CongestionControlAlgorithm: quic-go implements Reno only, so "reno" is the one value
	// accepted; dnsdist's "cubic" and "bbr" are refused rather than silently ignored.
	CongestionControlAlgorithm string `yaml:"congestion_control_algorithm"`
	// InternalPipeBufferSize sizes dnsdist's pipes between its QUIC and worker threads.
	// dnsfront hands queries to the loops in memory, so the key is refused if set.
	InternalPipeBufferSize *int `yaml:"internal_pipe_buffer_size"`
	// Enable0RTT accepts 0-RTT data on resumed connections. Off by default: a 0-RTT query
	// can be replayed by anyone who recorded it (RFC 9250 section 4.5).
	Enable0RTT bool `yaml:"enable_0rtt"`
	// RetryThreshold: while more handshakes than this are in flight on the bind, a new
	// connection must first prove its address with a Retry (RFC 9000 section 8.1.2), so
	// that spoofed Initials cost one packet, not a handshake. 0 takes the default; -1
	// always asks.
	RetryThreshold int `yaml:"retry_threshold"`
	// MaxConcurrentConnections bounds the bind's established connections (0: no bound);
	// a connection beyond it is refused with CONNECTION_REFUSED.
	MaxConcurrentConnections int `yaml:"max_concurrent_connections"`
}

// BindDoQ is dnsdist's incoming_doq.
type BindDoQ struct {
	// MaxConcurrentQueriesPerConnection bounds the streams, so the queries, a client may
	// have open at once on one connection (QUIC's MAX_STREAMS).
	MaxConcurrentQueriesPerConnection int `yaml:"max_concurrent_queries_per_connection"`
}

// IsQUIC reports whether the bind listens on UDP for QUIC (DoQ or DoH3).
func (b *Bind) IsQUIC() bool { return b.Protocol == "DoQ" || b.Protocol == "DoH3" }

// quicProtocol returns dnsdist's spelling of a QUIC protocol name in any case, or "".
func quicProtocol(p string) string {
	switch strings.ToLower(p) {
	case "doq":
		return "DoQ"
	case "doh3":
		return "DoH3"
	}
	return ""
}

// applyQUICDefaults fills a QUIC bind's absent keys; it runs before the doh block's
// defaults, which a DoH3 bind then gets as a DoH bind does.
func applyQUICDefaults(b *Bind) {
	if p := quicProtocol(b.Protocol); p != "" {
		b.Protocol = p
	}
	if !b.IsQUIC() {
		return
	}
	if b.QUIC == nil {
		b.QUIC = &BindQUIC{}
	}
	q := b.QUIC
	orDefault(&q.IdleTimeout, DefaultQUICIdleTimeout)
	orDefault(&q.CongestionControlAlgorithm, DefaultQUICCongestion)
	orDefault(&q.RetryThreshold, DefaultQUICRetryThreshold)
	if b.Protocol == "DoQ" {
		if b.DoQ == nil {
			b.DoQ = &BindDoQ{}
		}
		orDefault(&b.DoQ.MaxConcurrentQueriesPerConnection, DefaultDoQQueriesPerConnect)
	}
	if b.Protocol == "DoH3" && b.DoH == nil {
		b.DoH = &BindDoH{}
	}
}

// validateQUICBind checks a bind's QUIC blocks: a DoQ or DoH3 bind's settings, and that
// no other bind has them (p is the bind's key path, "binds[3]").
func validateQUICBind(v *validator, p string, b *Bind) {
	if !b.IsQUIC() {
		if b.QUIC != nil {
			v.errorf(p+".quic", "a quic block needs protocol DoQ or DoH3")
		}
		if b.DoQ != nil {
			v.errorf(p+".doq", "a doq block needs protocol DoQ")
		}
		return
	}
	if b.TLS == nil {
		v.errorf(p+".tls", "protocol %s needs a tls block with certificates (QUIC is always encrypted)", b.Protocol)
	}
	if b.TCP != nil {
		v.errorf(p+".tcp", "protocol %s listens on UDP: use quic.max_concurrent_connections", b.Protocol)
	}
	if q := b.QUIC; q != nil {
		if q.IdleTimeout < 1 {
			v.errorf(p+".quic.idle_timeout", "must be at least 1 second")
		}
		switch strings.ToLower(q.CongestionControlAlgorithm) {
		case "reno":
		case "cubic", "bbr":
			v.errorf(p+".quic.congestion_control_algorithm", "%q is not supported: quic-go implements reno only", q.CongestionControlAlgorithm)
		default:
			v.errorf(p+".quic.congestion_control_algorithm", "unknown algorithm %q (want reno)", q.CongestionControlAlgorithm)
		}
		if q.InternalPipeBufferSize != nil {
			v.errorf(p+".quic.internal_pipe_buffer_size", "not supported: dnsfront hands QUIC queries to its event loops in memory, without pipes; remove the key")
		}
		if q.RetryThreshold < -1 {
			v.errorf(p+".quic.retry_threshold", "must be -1 (always), 0 (default) or more")
		}
		if q.MaxConcurrentConnections < 0 {
			v.errorf(p+".quic.max_concurrent_connections", "must not be negative")
		}
	}
	if d := b.DoQ; d != nil {
		if b.Protocol != "DoQ" {
			v.errorf(p+".doq", "a doq block needs protocol DoQ")
		} else if d.MaxConcurrentQueriesPerConnection < 1 {
			v.errorf(p+".doq.max_concurrent_queries_per_connection", "must be at least 1")
		}
	}
	if d := b.DoH; d != nil && b.Protocol == "DoH3" {
		// HTTP/3 has its own framing: the HTTP/2 defences do not apply, and no proxy in
		// front of a QUIC bind sets X-Forwarded-For.
		for key, set := range map[string]bool{
			"trust_forwarded_for_header": d.TrustForwardedForHeader, "max_connection_memory": d.MaxConnectionMemory != 0,
			"abuse_window": d.AbuseWindow != 0, "max_rapid_resets": d.MaxRapidResets != 0,
			"max_settings_frames": d.MaxSettingsFrames != 0, "max_ping_frames": d.MaxPingFrames != 0,
			"max_continuation_frames": d.MaxContinuationFrames != 0,
		} {
			if set {
				v.errorf(p+".doh."+key, "does not apply to DoH3 (HTTP/2 and HTTP/1.1 only)")
			}
		}
	}
}

// bindKeys are the sockets a bind listens on, which no two binds may share: UDP for QUIC,
// TCP for DoT and DoH, both for Do53; so DoT and DoQ may use one port number.
func bindKeys(protocol string, ap netip.AddrPort) []string {
	switch protocol {
	case "DoQ", "DoH3":
		return []string{"udp " + ap.String()}
	case "DoT", "DoH":
		return []string{"tcp " + ap.String()}
	}
	return []string{"udp " + ap.String(), "tcp " + ap.String()}
}
