package tlsframe

import (
	"crypto/tls"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Options are the TLS settings of one bind. The zero value is usable:
// TLS 1.2 minimum, the AEAD-only TLS 1.2 suites of DefaultCipherSuites,
// Go's TLS 1.3 suites and key exchanges (X25519MLKEM768 first), no ALPN,
// no session tickets.
type Options struct {
	// MinVersion is tls.VersionTLS12 when zero.
	MinVersion uint16
	// CipherSuites applies to TLS 1.2 and below (TLS 1.3 suites are not
	// configurable in crypto/tls). Nil means DefaultCipherSuites; a list
	// given here replaces it as it is, weak suites included.
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

// DefaultCipherSuites is the TLS 1.2 list a bind offers unless its
// configuration names one: ECDHE key exchange with AES-GCM or
// ChaCha20-Poly1305, the TLS 1.2 part of Mozilla's "intermediate" profile.
// Go's own default adds the ECDHE CBC suites, which TLS scanners flag
// (LUCKY13-style padding oracles); every TLS 1.2 client of the last decade
// offers at least one of these. crypto/tls orders the suites itself (AES
// first where the CPU has AES instructions), so the order here does not
// matter. TLS 1.0 and 1.1 have no AEAD suite: a bind that lowers
// minimum_version must also name CBC suites for those clients.
func DefaultCipherSuites() []uint16 {
	return []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
}

// WeakCipherSuites returns the names of the suites in ids that a TLS audit
// flags: CBC or RC4/3DES ciphers, and key exchanges without forward secrecy
// (static RSA). TLS 1.3 suites and unknown IDs are never reported. An empty
// result means the list is AEAD with ECDHE only.
func WeakCipherSuites(ids []uint16) []string {
	var weak []string
	for _, id := range ids {
		cs := suiteByID(id)
		if cs == nil || slices.Equal(cs.SupportedVersions, []uint16{tls.VersionTLS13}) {
			continue
		}
		aead := strings.Contains(cs.Name, "_GCM_") || strings.Contains(cs.Name, "_CHACHA20_POLY1305")
		if !aead || !strings.HasPrefix(cs.Name, "TLS_ECDHE_") {
			weak = append(weak, cs.Name)
		}
	}
	return weak
}

func suiteByID(id uint16) *tls.CipherSuite {
	for _, list := range [][]*tls.CipherSuite{tls.CipherSuites(), tls.InsecureCipherSuites()} {
		for _, cs := range list {
			if cs.ID == id {
				return cs
			}
		}
	}
	return nil
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
	return 0, fmt.Errorf("unknown TLS version %q (want tls1.0, tls1.1, tls1.2 or tls1.3)", s)
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
// (ECDHE-ECDSA-AES128-GCM-SHA256). Empty means DefaultCipherSuites.
func ParseCipherSuites(s string) ([]uint16, error) {
	byName := make(map[string]uint16)
	for _, cs := range tls.CipherSuites() {
		byName[cs.Name] = cs.ID
	}
	var out []uint16
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ':' || r == ',' || r == ' ' }) {
		if id, ok := byName[strings.ToUpper(f)]; ok {
			out = append(out, id)
			continue
		}
		if id, ok := openSSLSuiteNames[strings.ToUpper(f)]; ok {
			out = append(out, id)
			continue
		}
		return nil, fmt.Errorf("unknown or insecure TLS 1.2 cipher suite %q (IANA or OpenSSL names, e.g. ECDHE-ECDSA-AES128-GCM-SHA256)", f)
	}
	return out, nil
}

var curveNames = map[tls.CurveID][]string{
	tls.X25519MLKEM768:     {"X25519MLKEM768"},
	tls.SecP256r1MLKEM768:  {"SecP256r1MLKEM768", "P256MLKEM768"},
	tls.SecP384r1MLKEM1024: {"SecP384r1MLKEM1024", "P384MLKEM1024"},
	tls.X25519:             {"X25519"},
	tls.CurveP256:          {"P-256", "prime256v1", "secp256r1"},
	tls.CurveP384:          {"P-384", "secp384r1"},
	tls.CurveP521:          {"P-521", "secp521r1"},
}

// curveKey folds a group name for lookup: case, dashes and underscores do not count, so
// P-256, p256 and P_256 are one name.
func curveKey(name string) string {
	return strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(strings.TrimSpace(name)))
}

var curvesByKey = func() map[string]tls.CurveID {
	m := make(map[string]tls.CurveID)
	for id, names := range curveNames {
		for _, n := range names {
			m[curveKey(n)] = id
		}
	}
	return m
}()

// ParseCurves reads an ecdhe_curves list separated by ':', ',' or spaces
// (X25519MLKEM768, SecP256r1MLKEM768, SecP384r1MLKEM1024, X25519,
// P-256/prime256v1/secp256r1, P-384/secp384r1, P-521/secp521r1; case, dashes and
// underscores do not count). Empty means Go's default, which keeps the post-quantum
// hybrids first. config, the server and the bench client all read curves here.
func ParseCurves(s string) ([]tls.CurveID, error) {
	var out []tls.CurveID
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ':' || r == ',' || r == ' ' }) {
		id, ok := curvesByKey[curveKey(f)]
		if !ok {
			return nil, fmt.Errorf("unknown key exchange %q (want X25519MLKEM768, SecP256r1MLKEM768, SecP384r1MLKEM1024, X25519, P-256, P-384 or P-521)", f)
		}
		out = append(out, id)
	}
	return out, nil
}
