package e2e

import (
	"crypto/tls"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/internal/devpki"
)

// TestTLS12SuitesAEADOnly probes a default DoT bind with `openssl s_client -tls1_2
// -cipher X`, one suite at a time, as a TLS scanner does: only ECDHE with AES-GCM or
// ChaCha20-Poly1305 is accepted. Each handshake then shows in
// dnsfront_tls_handshakes_negotiated_total with its version and key-exchange group.
func TestTLS12SuitesAEADOnly(t *testing.T) {
	t.Parallel()
	s := startDoTServer(t)
	addr := s.d.Addr("dot")
	ca := s.pki.Root.CertFile
	cases := []struct {
		cipher string
		ok     bool
	}{
		{"ECDHE-ECDSA-AES128-GCM-SHA256", true},
		{"ECDHE-ECDSA-AES256-GCM-SHA384", true},
		{"ECDHE-ECDSA-CHACHA20-POLY1305", true},
		{"ECDHE-ECDSA-AES128-SHA", false},
		{"ECDHE-ECDSA-AES256-SHA", false},
		{"ECDHE-ECDSA-AES128-SHA256", false},
		{"AES128-GCM-SHA256", false},
	}
	accepted := 0
	for _, tc := range cases {
		out := StartSClient(t, "-connect", addr, "-servername", "dns.test", "-CAfile", ca,
			"-tls1_2", "-cipher", tc.cipher, "-groups", "P-256").Finish()
		if got := strings.Contains(out, "Cipher is "+tc.cipher); got != tc.ok {
			t.Errorf("-tls1_2 -cipher %s: negotiated %v, want %v:\n%s", tc.cipher, got, tc.ok, out)
		}
		if tc.ok {
			accepted++
		}
	}
	// The metric is process-wide and this server is the only one in its process.
	waitMetricOf(t, s.d, 5*time.Second, func(v float64) bool { return v >= float64(accepted) },
		"dnsfront_tls_handshakes_negotiated_total", `version="tls1.2"`, `group="P-256"`)
	if v := metricOf(t, s.d, "dnsfront_tls_handshakes_negotiated_total", `version="tls1.2"`, `group="P-256"`); v != float64(accepted) {
		t.Errorf(`handshakes_negotiated{tls1.2,P-256} = %v, want %d`, v, accepted)
	}

	// Go's client offers the post-quantum hybrid first, and TLS 1.3 keeps it.
	c := s.dial(t, &tls.Config{MinVersion: tls.VersionTLS13})
	if got := c.ConnectionState().CurveID; got != tls.X25519MLKEM768 {
		t.Errorf("Go client negotiated %v, want X25519MLKEM768", got)
	}
	c.Close()
	waitMetricOf(t, s.d, 5*time.Second, func(v float64) bool { return v >= 1 },
		"dnsfront_tls_handshakes_negotiated_total", `version="tls1.3"`, `group="X25519MLKEM768"`)
	out := StartSClient(t, "-connect", addr, "-servername", "dns.test", "-CAfile", ca, "-tls1_3", "-groups", "X25519").Finish()
	if !strings.Contains(out, "New, TLSv1.3") {
		t.Fatalf("openssl TLS 1.3 handshake failed:\n%s", out)
	}
	waitMetricOf(t, s.d, 5*time.Second, func(v float64) bool { return v >= 1 },
		"dnsfront_tls_handshakes_negotiated_total", `version="tls1.3"`, `group="X25519"`)
}

// TestCheckConfigWarnsWeakCiphers: an explicit cipher list with CBC suites still loads
// (the operator's choice) and check-config names the flagged suites; the default and
// an AEAD-only list get no warning.
func TestCheckConfigWarnsWeakCiphers(t *testing.T) {
	t.Parallel()
	p := devpki.NewTestPKI(t, t.TempDir())
	cases := []struct {
		name, ciphers string
		warn          []string
	}{
		{"default", "", nil},
		{"aead", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256:TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", nil},
		{"cbc", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
			[]string{"binds[0].tls.ciphers", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "dnsfront.yaml")
			cfg := fmt.Sprintf(`binds:
  - listen_address: "127.0.0.1:8853"
    protocol: DoT
    tls:
      certificates:
        - certificate: %q
          key: %q
      ciphers: %q
backends:
  - address: "127.0.0.1:53"
`, p.Leaf.ChainFile, p.Leaf.KeyFile, tc.ciphers)
			WriteFile(t, path, []byte(cfg))
			out, code := RunCLI(t, "check-config", "--config", path)
			if code != 0 || !strings.Contains(out, "configuration OK") {
				t.Fatalf("check-config exited %d:\n%s", code, out)
			}
			if len(tc.warn) == 0 && strings.Contains(out, "warning") {
				t.Errorf("unexpected warning:\n%s", out)
			}
			for _, w := range tc.warn {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}
