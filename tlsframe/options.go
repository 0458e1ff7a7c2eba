package tlsframe

import (
	"crypto/tls"
	"fmt"
	"io"
	"strings"
)

// Options are the TLS settings of one bind. The zero value is usable:
// TLS 1.2 minimum, Go's cipher suites and curves (X25519MLKEM768 first),
// no ALPN, no session tickets.
type Options struct {
	// MinVersion is tls.VersionTLS12 when zero.
	MinVersion uint16
	// CipherSuites applies to TLS 1.2 only (TLS 1.3 suites are not
	// configurable in crypto/tls). Nil keeps Go's default list.
	CipherSuites []uint16
	// CurvePreferences: nil keeps Go's default, which starts with the hybrid
	// post-quantum X25519MLKEM768.
	CurvePreferences []tls.CurveID
	// NextProtos is the ALPN list: "dot" for DoT; "h2", "http/1.1" for DoH.
	NextProtos []string
	// SessionTickets enables resumption with tickets sealed by the
	// TicketKeys given to BuildSnapshot.
	SessionTickets bool
	// KeyLogWriter receives NSS key log lines (debugging only: it defeats
	// the encryption for whoever reads it).
	KeyLogWriter io.Writer
}

func (o Options) validate() error {
	switch o.MinVersion {
	case 0, tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13:
	default:
		return fmt.Errorf("tlsframe: unknown minimum TLS version 0x%04x", o.MinVersion)
	}
	known := make(map[uint16]bool)
	for _, cs := range tls.CipherSuites() {
		known[cs.ID] = true
	}
	for _, cs := range tls.InsecureCipherSuites() {
		known[cs.ID] = true
	}
	for _, id := range o.CipherSuites {
		if !known[id] {
			return fmt.Errorf("tlsframe: unknown cipher suite 0x%04x", id)
		}
	}
	for _, c := range o.CurvePreferences {
		if _, ok := curveNames[c]; !ok {
			return fmt.Errorf("tlsframe: unknown curve %d", c)
		}
	}
	return nil
}

// ParseVersion reads a dnsdist-style minimum_version: "tls1.0", "tls1.1",
// "tls1.2" or "tls1.3". The empty string means TLS 1.2.
func ParseVersion(s string) (uint16, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "tls1.2":
		return tls.VersionTLS12, nil
	case "tls1.0":
		return tls.VersionTLS10, nil
	case "tls1.1":
		return tls.VersionTLS11, nil
	case "tls1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("tlsframe: unknown TLS version %q (want tls1.0, tls1.1, tls1.2 or tls1.3)", s)
}

// openSSLSuiteNames maps the OpenSSL spellings operators copy from dnsdist
// configurations to crypto/tls suites.
var openSSLSuiteNames = map[string]uint16{
	"ECDHE-ECDSA-AES128-GCM-SHA256": tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-RSA-AES128-GCM-SHA256":   tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-ECDSA-AES256-GCM-SHA384": tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-RSA-AES256-GCM-SHA384":   tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-ECDSA-CHACHA20-POLY1305": tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-RSA-CHACHA20-POLY1305":   tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-ECDSA-AES128-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	"ECDHE-RSA-AES128-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	"ECDHE-ECDSA-AES256-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	"ECDHE-RSA-AES256-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
}

// ParseCipherSuites reads a TLS 1.2 cipher list separated by ':' or ',',
// in IANA names (TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256) or OpenSSL names
// (ECDHE-ECDSA-AES128-GCM-SHA256). Empty means Go's default.
func ParseCipherSuites(s string) ([]uint16, error) {
	byName := make(map[string]uint16)
	for _, cs := range tls.CipherSuites() {
		byName[cs.Name] = cs.ID
	}
	var out []uint16
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ':' || r == ',' || r == ' ' }) {
		if id, ok := byName[f]; ok {
			out = append(out, id)
			continue
		}
		if id, ok := openSSLSuiteNames[strings.ToUpper(f)]; ok {
			out = append(out, id)
			continue
		}
		return nil, fmt.Errorf("tlsframe: unknown or insecure TLS 1.2 cipher suite %q", f)
	}
	return out, nil
}

var curveNames = map[tls.CurveID][]string{
	tls.X25519MLKEM768: {"X25519MLKEM768"},
	tls.X25519:         {"X25519"},
	tls.CurveP256:      {"P-256", "prime256v1", "secp256r1"},
	tls.CurveP384:      {"P-384", "secp384r1"},
	tls.CurveP521:      {"P-521", "secp521r1"},
}

// ParseCurves reads an ecdhe_curves list separated by ':' or ',' (X25519MLKEM768,
// X25519, P-256/prime256v1, P-384/secp384r1, P-521/secp521r1). Empty means
// Go's default, which keeps the post-quantum hybrid first.
func ParseCurves(s string) ([]tls.CurveID, error) {
	var out []tls.CurveID
next:
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ':' || r == ',' || r == ' ' }) {
		for id, names := range curveNames {
			for _, n := range names {
				if strings.EqualFold(n, f) {
					out = append(out, id)
					continue next
				}
			}
		}
		return nil, fmt.Errorf("tlsframe: unknown curve %q", f)
	}
	return out, nil
}
