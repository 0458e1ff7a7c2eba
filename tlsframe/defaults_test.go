package tlsframe

import (
	"crypto/tls"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/internal/testutil"
	dto "github.com/prometheus/client_model/go"
)

func TestDefaultCipherSuitesAreAEADWithECDHE(t *testing.T) {
	if weak := WeakCipherSuites(DefaultCipherSuites()); len(weak) != 0 {
		t.Fatalf("default suites include weak ones: %v", weak)
	}
	for _, id := range DefaultCipherSuites() {
		if !slices.ContainsFunc(tls.CipherSuites(), func(cs *tls.CipherSuite) bool { return cs.ID == id }) {
			t.Errorf("default suite %s is not one of crypto/tls's secure suites", tls.CipherSuiteName(id))
		}
	}
	specs := []CertSpec{newPKI(t).issue(t, "d.test", false).spec(nil)}
	snap, err := BuildSnapshot(specs, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(snap.config.CipherSuites, DefaultCipherSuites()) {
		t.Errorf("zero Options: suites %v, want DefaultCipherSuites", snap.config.CipherSuites)
	}
	explicit := []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}
	snap, err = BuildSnapshot(specs, Options{CipherSuites: explicit}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(snap.config.CipherSuites, explicit) {
		t.Errorf("explicit suites %v became %v", explicit, snap.config.CipherSuites)
	}
}

func TestWeakCipherSuites(t *testing.T) {
	cases := []struct {
		in   []uint16
		want []string
	}{
		{nil, nil},
		{DefaultCipherSuites(), nil},
		{[]uint16{tls.TLS_AES_128_GCM_SHA256, tls.TLS_CHACHA20_POLY1305_SHA256}, nil}, // TLS 1.3: not configurable, never weak
		{[]uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA},
			[]string{"TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"}},
		{[]uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256}, []string{"TLS_RSA_WITH_AES_128_GCM_SHA256"}}, // no forward secrecy
		{[]uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA},
			[]string{"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA"}},
		{[]uint16{0xfefe}, nil},
	}
	for _, tc := range cases {
		if got := WeakCipherSuites(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("WeakCipherSuites(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestOpenSSLTLS12SuitesOffered probes the TLS 1.2 suites a default bind
// accepts, one -cipher at a time, as a TLS scanner does.
func TestOpenSSLTLS12SuitesOffered(t *testing.T) {
	b := newBothPKI(t)
	s := startServer(t, b.snap, nil, 2)
	cases := []struct {
		cipher, sigalgs string
		ok              bool
	}{
		{"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDSA+SHA256", true},
		{"ECDHE-ECDSA-AES256-GCM-SHA384", "ECDSA+SHA384", true},
		{"ECDHE-ECDSA-CHACHA20-POLY1305", "ECDSA+SHA256", true},
		{"ECDHE-RSA-AES128-GCM-SHA256", "RSA+SHA256", true},
		{"ECDHE-RSA-CHACHA20-POLY1305", "RSA+SHA256", true},
		{"ECDHE-ECDSA-AES128-SHA", "", false},
		{"ECDHE-ECDSA-AES256-SHA", "", false},
		{"ECDHE-RSA-AES128-SHA", "", false},
		{"ECDHE-ECDSA-AES128-SHA256", "", false},
		{"AES128-GCM-SHA256", "", false}, // static RSA key exchange
		{"AES128-SHA", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.cipher, func(t *testing.T) {
			args := []string{"-connect", s.addr, "-servername", "both.test", "-tls1_2", "-cipher", tc.cipher}
			if tc.sigalgs != "" {
				args = append(args, "-sigalgs", tc.sigalgs)
			}
			out := startSClient(t, args...).finish()
			if got := strings.Contains(out, "Cipher is "+tc.cipher); got != tc.ok {
				t.Errorf("-tls1_2 -cipher %s: negotiated %v, want %v:\n%s", tc.cipher, got, tc.ok, out)
			}
		})
	}
	t.Run("tls1.3 unchanged", func(t *testing.T) {
		out := startSClient(t, "-connect", s.addr, "-servername", "both.test", "-tls1_3").finish()
		if !strings.Contains(out, "New, TLSv1.3, Cipher is TLS_") {
			t.Errorf("no TLS 1.3 handshake:\n%s", out)
		}
	})
}

// TestOpenSSLExplicitCiphersOverride: a configured list is used as it is,
// weak suites included (check-config warns about them).
func TestOpenSSLExplicitCiphersOverride(t *testing.T) {
	p := newPKI(t)
	leaf := p.issue(t, "cbc.test", false)
	snap, err := BuildSnapshot([]CertSpec{leaf.spec(nil)},
		Options{CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, snap, nil, 1)
	out := startSClient(t, "-connect", s.addr, "-servername", "cbc.test", "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA").finish()
	if !strings.Contains(out, "Cipher is ECDHE-ECDSA-AES128-SHA") {
		t.Errorf("configured CBC suite not negotiated:\n%s", out)
	}
	out = startSClient(t, "-connect", s.addr, "-servername", "cbc.test", "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256").finish()
	if strings.Contains(out, "Cipher is ECDHE-ECDSA-AES128-GCM-SHA256") {
		t.Errorf("suite outside the configured list negotiated:\n%s", out)
	}
}

func negotiatedCount(t testing.TB, version, group string) float64 {
	t.Helper()
	var m dto.Metric
	if err := negotiated.WithLabelValues(version, group).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// waitNegotiated waits until the counter for version and group reaches want:
// the worker counts after handing the connection back, so a client may see
// its echo first.
func waitNegotiated(t testing.TB, version, group string, want float64) {
	t.Helper()
	if !testutil.Poll(10*time.Second, func() bool { return negotiatedCount(t, version, group) >= want }) {
		t.Fatalf("handshakes{version=%s,group=%s} = %v, want at least %v", version, group,
			negotiatedCount(t, version, group), want)
	}
}

func TestHandshakesNegotiatedCounter(t *testing.T) {
	b := newBothPKI(t)
	s := startServer(t, b.snap, nil, 2)
	cases := []struct {
		version, group string
		cfg            func(*tls.Config)
	}{
		{"tls1.3", "X25519MLKEM768", func(c *tls.Config) { c.MinVersion = tls.VersionTLS13 }},
		{"tls1.3", "P-521", func(c *tls.Config) {
			c.MinVersion, c.CurvePreferences = tls.VersionTLS13, []tls.CurveID{tls.CurveP521}
		}},
		{"tls1.2", "P-384", func(c *tls.Config) {
			c.MaxVersion, c.CurvePreferences = tls.VersionTLS12, []tls.CurveID{tls.CurveP384}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.version+" "+tc.group, func(t *testing.T) {
			before := negotiatedCount(t, tc.version, tc.group)
			cfg := b.pki.clientConfig("both.test")
			tc.cfg(cfg)
			c := dialTLS(t, s.addr, cfg)
			echo(t, c, "count me")
			if got := GroupName(c.ConnectionState().CurveID); got != tc.group {
				t.Fatalf("client negotiated %s, want %s", got, tc.group)
			}
			waitNegotiated(t, tc.version, tc.group, before+1)
		})
	}
}

func TestVersionAndGroupNames(t *testing.T) {
	for v, want := range map[uint16]string{tls.VersionTLS12: "tls1.2", tls.VersionTLS13: "tls1.3", tls.VersionTLS10: "tls1.0"} {
		if got := VersionName(v); got != want {
			t.Errorf("VersionName(%x) = %q, want %q", v, got, want)
		}
	}
	for id, want := range map[tls.CurveID]string{0: "none", tls.X25519MLKEM768: "X25519MLKEM768",
		tls.CurveP256: "P-256", tls.SecP256r1MLKEM768: "SecP256r1MLKEM768", tls.X25519: "X25519"} {
		if got := GroupName(id); got != want {
			t.Errorf("GroupName(%d) = %q, want %q", id, got, want)
		}
	}
}
