package devpki_test

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/dnsfront/dnsfront/internal/testutil"
	"github.com/dnsfront/dnsfront/ocsp"
)

func TestTestPKIOptions(t *testing.T) {
	p := devpki.NewTestPKI(t, t.TempDir(), devpki.WithIntermediate(), devpki.WithMustStaple(), devpki.WithRSA(),
		devpki.WithOCSPURL("http://127.0.0.1:1/ocsp"), devpki.WithIssuerURL("http://127.0.0.1:1/ca.der"),
		devpki.WithExtraNames("extra.test", "192.0.2.1"), devpki.WithSerial(0x1a2b))
	l := p.Leaf.Cert
	if l.SerialNumber.Int64() != 0x1a2b || l.PublicKeyAlgorithm.String() != "RSA" {
		t.Errorf("serial %s key %s", l.SerialNumber, l.PublicKeyAlgorithm)
	}
	if len(l.OCSPServer) != 1 || len(l.IssuingCertificateURL) != 1 || !ocsp.HasMustStaple(l) {
		t.Errorf("AIA %v %v must-staple %v", l.OCSPServer, l.IssuingCertificateURL, ocsp.HasMustStaple(l))
	}
	for _, n := range []string{"dns.test", "localhost", "127.0.0.1", "extra.test", "192.0.2.1"} {
		if err := l.VerifyHostname(n); err != nil {
			t.Error(err)
		}
	}
	if p.Issuer == p.Root || l.CheckSignatureFrom(p.Issuer.Cert) != nil || p.Issuer.Cert.CheckSignatureFrom(p.Root.Cert) != nil {
		t.Error("leaf not issued by an intermediate under the root")
	}
	chain, err := ocsp.ReadChainFile(p.Leaf.ChainFile)
	if err != nil || len(chain) != 2 || !chain[1].Equal(p.Issuer.Cert) {
		t.Errorf("chain file: %v", err)
	}
	if ocsp.HasMustStaple(p.IssueLeaf("plain").Cert) {
		t.Error("must-staple on a leaf issued without the option")
	}
	t.Run("openssl", func(t *testing.T) {
		out, err := exec.Command(testutil.Tool(t, "openssl"), "x509", "-noout", "-text", "-in", p.Leaf.ChainFile).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "TLS Feature") || !strings.Contains(string(out), "status_request") {
			t.Errorf("openssl does not see Must-Staple: %v\n%s", err, out)
		}
	})
}

func TestTestPKIResponses(t *testing.T) {
	p := devpki.NewTestPKI(t, t.TempDir(), devpki.WithDelegatedResponder(true))
	check := func(name string, der []byte, want error) {
		_, err := ocsp.Validate(der, p.Leaf.Cert, p.Issuer.Cert, p.Now)
		if want == nil && err != nil || want != nil && !errors.Is(err, want) {
			t.Errorf("%s: err %v, want %v", name, err, want)
		}
	}
	check("good", p.Good(), nil)
	check("revoked", p.Revoked(), ocsp.ErrRevoked)
	check("unknown", p.Unknown(), ocsp.ErrUnknown)
	check("expired", p.Expired(), ocsp.ErrExpired)
	check("other", p.ForOtherCert(), ocsp.ErrWrongCert)
	check("badly signed", p.BadlySigned(), ocsp.ErrBadSignature)
	check("by the issuer", p.Mint(p.Leaf.Cert, devpki.Response{Signer: p.Issuer}), nil)
}
