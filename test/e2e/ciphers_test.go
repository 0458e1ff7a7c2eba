package e2e

import (
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

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
	if v := waitNegotiated(t, s.d, "tls1.2", "P-256", accepted); v != float64(accepted) {
		t.Errorf(`handshakes_negotiated{tls1.2,P-256} = %v, want %d`, v, accepted)
	}

	// Go's client offers the post-quantum hybrid first, and TLS 1.3 keeps it. In TLS 1.3
	// the client's Finished ends the server's handshake: the query makes sure the
	// server read it before the client closes.
	c := s.dial(t, &tls.Config{MinVersion: tls.VersionTLS13})
	if got := c.ConnectionState().CurveID; got != tls.X25519MLKEM768 {
		t.Errorf("Go client negotiated %v, want X25519MLKEM768", got)
	}
	ExchangeDoT(t, c, NewQuery(testName, dns.TypeA))
	c.Close()
	if v := waitNegotiated(t, s.d, "tls1.3", "X25519MLKEM768", 1); v != 1 {
		t.Errorf(`handshakes_negotiated{tls1.3,X25519MLKEM768} = %v, want 1`, v)
	}
	sc := StartSClient(t, "-connect", addr, "-servername", "dns.test", "-CAfile", ca, "-tls1_3", "-groups", "X25519")
	sc.WaitFor("New, TLSv1.3")
	sc.Query(testName, 7, net.ParseIP(testAnswer))
	sc.Finish()
	if v := waitNegotiated(t, s.d, "tls1.3", "X25519", 1); v != 1 {
		t.Errorf(`handshakes_negotiated{tls1.3,X25519} = %v, want 1`, v)
	}
}

// waitNegotiated waits until dnsfront_tls_handshakes_negotiated_total{version, group}
// reaches want and returns its value. The handshake worker counts after it hands the
// connection back, so the client may be done first; a series appears with its first
// handshake, so an absent one reads as 0.
func waitNegotiated(t testing.TB, d *Dnsfront, version, group string, want int) float64 {
	t.Helper()
	v, took := pollValue(5*time.Second, func(v float64) bool { return v >= float64(want) }, func() float64 {
		v, _ := metricSum(d.Metrics(), "dnsfront_tls_handshakes_negotiated_total",
			fmt.Sprintf("version=%q", version), fmt.Sprintf("group=%q", group))
		return v
	})
	if v < float64(want) {
		t.Fatalf("handshakes_negotiated{%s,%s} = %v after %v, want %d", version, group, v, took, want)
	}
	return v
}

// TestCheckConfigWarnsWeakCiphers: an explicit cipher list with CBC suites still loads
// (the operator's choice) and check-config names the flagged suites; the default and
// an AEAD-only list get no warning.
func TestCheckConfigWarnsWeakCiphers(t *testing.T) {
	t.Parallel()
	p := devpki.NewTestPKI(t, t.TempDir())
	cases := []struct {
		name, ciphers, minVersion string
		warn                      []string
	}{
		{"default", "", "tls1.2", nil},
		{"aead", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256:TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "tls1.2", nil},
		{"cbc", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "tls1.2",
			[]string{"binds[0].tls.ciphers", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"}},
		// TLS 1.0 and 1.1 have no AEAD suite: the default list leaves them nothing.
		{"tls1.0 default", "", "tls1.0", []string{"binds[0].tls.minimum_version", "name CBC suites"}},
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
      minimum_version: %q
backends:
  - address: "127.0.0.1:53"
`, p.Leaf.ChainFile, p.Leaf.KeyFile, tc.ciphers, tc.minVersion)
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
