package e2e

import (
	"crypto/rand"
	"crypto/x509"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/dnsfront/dnsfront/ocsp"
)

// TestStaplingSClient: `openssl s_client -status` gets a successful staple over TLS 1.2
// and 1.3, from an ECDSA and an RSA certificate for the same name (the client's signature
// algorithms or cipher suites pick one), and from a second certificate chosen by SNI;
// every staple's serial is the served certificate's.
func TestStaplingSClient(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := devpki.NewTestPKI(t, dir, devpki.WithNames("a.test"))
	aECDSA := p.Leaf
	aRSA := p.IssueLeaf("a-rsa", devpki.WithNames("a.test"), devpki.WithRSA())
	b := p.IssueLeaf("b", devpki.WithNames("b.test"))
	var files []string
	for i, l := range []*devpki.Leaf{aECDSA, aRSA, b} {
		f := filepath.Join(dir, []string{"a-ecdsa", "a-rsa", "b"}[i]+".ocsp")
		WriteFile(t, f, p.Mint(l.Cert, devpki.Response{Status: ocsp.StatusGood}))
		files = append(files, f)
	}
	be := StartTestBackend(t)
	data := DoT(be.Addr, CertOf(aECDSA), CertOf(aRSA), CertOf(b))
	data.OCSPFiles = files
	d := Start(t, DoTConfig, data)
	addr := d.Addr("dot")
	root := p.Root.CertFile

	cases := []struct {
		name string
		sni  string
		args []string
		want *x509.Certificate
	}{
		{"tls13/ecdsa", "a.test", []string{"-tls1_3", "-sigalgs", "ecdsa_secp256r1_sha256"}, aECDSA.Cert},
		{"tls13/rsa", "a.test", []string{"-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256:rsa_pss_pss_sha256"}, aRSA.Cert},
		{"tls12/ecdsa", "a.test", []string{"-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"}, aECDSA.Cert},
		{"tls12/rsa", "a.test", []string{"-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"}, aRSA.Cert},
		{"tls12/rsa-sigalgs", "a.test", []string{"-tls1_2", "-sigalgs", "RSA+SHA256"}, aRSA.Cert},
		{"tls13/sni-b", "b.test", []string{"-tls1_3"}, b.Cert},
		{"tls12/sni-b", "b.test", []string{"-tls1_2"}, b.Cert},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"-alpn", "dot", "-CAfile", root, "-verify_hostname", tc.sni}, tc.args...)
			h := SClientStatus(t, addr, tc.sni, args...)
			h.RequireStaple(t, tc.want)
			wantProto := "TLSv1.3"
			if strings.Contains(tc.name, "tls12") {
				wantProto = "TLSv1.2"
			}
			if h.Protocol != wantProto {
				t.Errorf("protocol %q, want %s", h.Protocol, wantProto)
			}
			if !strings.Contains(h.Out, "Verify return code: 0 (ok)") {
				t.Errorf("chain does not verify against the test root:\n%s", h.Out)
			}
			if !strings.Contains(h.Out, "ALPN protocol: dot") {
				t.Errorf("ALPN dot not negotiated:\n%s", h.Out)
			}
		})
	}

	// GET /api/v1/certificates says all three are stapled.
	var certs []struct {
		Serial  string `json:"serial"`
		Stapled bool   `json:"stapled"`
	}
	getJSON(t, d.AdminURL()+"/api/v1/certificates", &certs)
	if len(certs) != 3 {
		t.Fatalf("/api/v1/certificates lists %d certificates, want 3: %+v", len(certs), certs)
	}
	for _, c := range certs {
		if !c.Stapled {
			t.Errorf("/api/v1/certificates: serial %s not stapled", c.Serial)
		}
	}
}

// TestStaplingBadFiles: each unusable response file leaves its certificate without a
// staple while the listener starts and answers, and is reported by one log line that
// names the file and the reason.
func TestStaplingBadFiles(t *testing.T) {
	t.Parallel()
	garbage := make([]byte, 300)
	_, _ = rand.Read(garbage)
	cases := []struct {
		name   string
		der    func(p *devpki.TestPKI) []byte // nil: use path as is
		path   string                         // when der is nil: "" = a file that does not exist
		reason string
	}{
		{name: "missing", reason: "no such file"},
		{name: "empty", path: "/dev/null", reason: "empty"},
		{name: "garbage", der: func(*devpki.TestPKI) []byte { return garbage }, reason: "malformed"},
		{name: "expired", der: (*devpki.TestPKI).Expired, reason: "expired"},
		{name: "revoked", der: (*devpki.TestPKI).Revoked, reason: "revoked"},
		{name: "other-cert", der: (*devpki.TestPKI).ForOtherCert, reason: "another certificate"},
		{name: "badly-signed", der: (*devpki.TestPKI).BadlySigned, reason: "signature"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			p := devpki.NewTestPKI(t, dir)
			file := tc.path
			switch {
			case tc.der != nil:
				file = p.WriteFile(tc.name+".ocsp", tc.der(p))
			case file == "":
				file = filepath.Join(dir, "missing.ocsp")
			}
			be := StartTestBackend(t)
			data := DoT(be.Addr, CertOf(p.Leaf))
			data.OCSPFiles = []string{file}
			d := Start(t, DoTConfig, data)

			h := SClientStatus(t, d.Addr("dot"), "dns.test")
			h.RequireNoStaple(t)

			// kdig insisting on a staple refuses the server.
			if out := kdigNoFail(t, d.Addr("dot"), "+tls", "+tls-ca="+p.Root.CertFile, "+tls-hostname=dns.test",
				"+tls-ocsp-stapling", testName); strings.Contains(out, testAnswer) {
				t.Errorf("kdig +tls-ocsp-stapling accepted a server without a staple:\n%s", out)
			}
			// The listener serves queries.
			c := DialDoT(t, d.Addr("dot"), "dns.test", CertPool(t, p.Root.Cert), nil)
			if r := ExchangeDoT(t, c, NewQuery(testName, dns.TypeA)); !equalStrings(AnswerStrings(r), testAnswer) {
				t.Errorf("DoT answer %v, want %s", AnswerStrings(r), testAnswer)
			}

			var lines []string
			for _, l := range strings.Split(d.Log(), "\n") {
				if strings.Contains(l, file) && (strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR")) {
					lines = append(lines, l)
				}
			}
			if len(lines) != 1 {
				t.Fatalf("want one warning naming %s, got %d:\n%s", file, len(lines), strings.Join(lines, "\n"))
			}
			if !strings.Contains(strings.ToLower(lines[0]), tc.reason) {
				t.Errorf("the warning does not give the reason (%q):\n%s", tc.reason, lines[0])
			}
			// A revoked response is a fact about the certificate: status says so.
			want := ocsp.StateNone
			if tc.name == "revoked" {
				want = ocsp.StateRevoked
			}
			st := d.OCSP()
			if len(st) != 1 || st[0].Status != want {
				t.Errorf("/api/v1/ocsp = %+v, want one certificate with status %s", st, want)
			}
		})
	}
}

// TestStaplingChains: staples from files for a leaf under an intermediate CA, signed by
// the intermediate or by a delegated responder it certified (accepted only with the
// OCSPSigning extended key usage), and for a server without SNI from the client.
func TestStaplingChains(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		opts    []devpki.Option
		stapled bool
	}{
		{"intermediate", []devpki.Option{devpki.WithIntermediate()}, true},
		{"delegated", []devpki.Option{devpki.WithIntermediate(), devpki.WithDelegatedResponder(true)}, true},
		{"delegated-without-eku", []devpki.Option{devpki.WithDelegatedResponder(false)}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newDoTServer(t, devpki.NewTestPKI(t, t.TempDir(), tc.opts...))
			d, p := s.d, s.pki
			h := SClientStatus(t, d.Addr("dot"), "dns.test", "-CAfile", p.Root.CertFile, "-verify_hostname", "dns.test")
			if !strings.Contains(h.Out, "Verify return code: 0 (ok)") {
				t.Errorf("chain does not verify against the root:\n%s", h.Out)
			}
			if !tc.stapled {
				h.RequireNoStaple(t)
				if !strings.Contains(d.Log(), "OCSPSigning") {
					t.Errorf("the rejected responder certificate is not explained in the log:\n%s", d.Log())
				}
				return
			}
			h.RequireStaple(t, p.Leaf.Cert)
			// Without SNI the only certificate is served, with its staple.
			SClientStatus(t, d.Addr("dot"), "", "-noservername").RequireStaple(t, p.Leaf.Cert)
		})
	}
}
