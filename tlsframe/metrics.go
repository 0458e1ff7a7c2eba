package tlsframe

import (
	"crypto/tls"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// negotiated counts completed handshakes by what they agreed on. It is
// process-wide (every Handshaker adds to it) so that the one series an
// operator watches, the share of post-quantum key exchanges, needs no sum
// over listeners; the label values are bounded (four versions, a handful of
// groups).
var negotiated = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "dnsfront_tls_handshakes_negotiated_total",
	Help: "TLS handshakes completed, by negotiated version (tls1.2, tls1.3) and key-exchange group (X25519MLKEM768, X25519, P-256, …; none for RSA key exchange and TLS 1.2 resumption).",
}, []string{"version", "group"})

// HandshakeCollector exports dnsfront_tls_handshakes_negotiated_total. Register
// it once per registry; every registry sees the same process-wide counts.
func HandshakeCollector() prometheus.Collector { return negotiated }

// CountHandshake counts one completed handshake in
// dnsfront_tls_handshakes_negotiated_total. Handshakers call it; listeners whose
// handshakes run elsewhere (QUIC, on quic-go's goroutines) call it once their
// handshake is complete, so the series covers every protocol.
func CountHandshake(cs tls.ConnectionState) {
	negotiated.WithLabelValues(VersionName(cs.Version), GroupName(cs.CurveID)).Inc()
}

// VersionName spells a TLS version as minimum_version does ("tls1.3").
func VersionName(v uint16) string {
	switch v {
	case tls.VersionTLS10:
		return "tls1.0"
	case tls.VersionTLS11:
		return "tls1.1"
	case tls.VersionTLS12:
		return "tls1.2"
	case tls.VersionTLS13:
		return "tls1.3"
	}
	return strings.ToLower(tls.VersionName(v))
}

// GroupName names a key-exchange group as ecdhe_curves does ("X25519MLKEM768",
// "P-256"); "none" when no group was used (RSA key exchange, or a TLS 1.2
// session resumed without one).
func GroupName(id tls.CurveID) string {
	if id == 0 {
		return "none"
	}
	if names, ok := curveNames[id]; ok {
		return names[0]
	}
	return id.String()
}
