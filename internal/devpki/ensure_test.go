package devpki_test

import (
	"crypto/tls"
	"os"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/dnsfront/dnsfront/ocsp"
)

func TestEnsureCreatesThenReuses(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	p, err := devpki.Ensure(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := ocsp.ReadCertFile(p.CACert)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []struct{ chain, key, staple, alg string }{
		{p.ECDSAChain, p.ECDSAKey, p.ECDSAOCSP, "ECDSA"}, {p.RSAChain, p.RSAKey, p.RSAOCSP, "RSA"},
	} {
		chain, err := ocsp.ReadChainFile(l.chain)
		if err != nil {
			t.Fatal(err)
		}
		if len(chain) != 2 || !chain[1].Equal(ca) {
			t.Fatalf("%s: chain is not leaf then CA", l.chain)
		}
		if chain[0].PublicKeyAlgorithm.String() != l.alg {
			t.Errorf("%s: key %s, want %s", l.chain, chain[0].PublicKeyAlgorithm, l.alg)
		}
		for _, n := range []string{"dns.test", "localhost", "127.0.0.1", "::1"} {
			if err := chain[0].VerifyHostname(n); err != nil {
				t.Errorf("%s: %v", l.chain, err)
			}
		}
		if _, err := ocsp.LoadFile(l.staple, chain[0], ca, now); err != nil {
			t.Error(err)
		}
		if fi, _ := os.Stat(l.key); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", l.key, fi.Mode())
		}
	}

	before, _ := os.ReadFile(p.ECDSAChain)
	staple, _ := os.ReadFile(p.ECDSAOCSP)
	if _, err := devpki.Ensure(dir, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(p.ECDSAChain)
	staple2, _ := os.ReadFile(p.ECDSAOCSP)
	if string(before) != string(after) || string(staple) != string(staple2) {
		t.Error("a valid PKI was not reused")
	}

	// Six and a half days later the staple ends within a day: re-minted,
	// the certificates stay.
	later := now.Add(devpki.StapleValidity - 12*time.Hour)
	if _, err := devpki.Ensure(dir, later); err != nil {
		t.Fatal(err)
	}
	after, _ = os.ReadFile(p.ECDSAChain)
	staple3, _ := os.ReadFile(p.ECDSAOCSP)
	if string(before) != string(after) || string(staple) == string(staple3) {
		t.Error("the staple was not re-minted alone")
	}
	chain, _ := ocsp.ReadChainFile(p.ECDSAChain)
	s, err := ocsp.LoadFile(p.ECDSAOCSP, chain[0], ca, later)
	if err != nil {
		t.Fatal(err)
	}
	if s.NextUpdate.Sub(later) < devpki.StapleValidity-time.Minute {
		t.Errorf("re-minted staple ends %s", s.NextUpdate)
	}
}

func TestEnsureReplacesBrokenCA(t *testing.T) {
	dir := t.TempDir()
	p, err := devpki.Ensure(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p.CAKey, []byte("garbage"), 0o600)
	if _, err := devpki.Ensure(dir, time.Now()); err != nil {
		t.Fatal(err)
	}
	ca, _ := ocsp.ReadCertFile(p.CACert)
	chain, _ := ocsp.ReadChainFile(p.RSAChain)
	if err := chain[0].CheckSignatureFrom(ca); err != nil {
		t.Errorf("leaf not re-issued by the new CA: %v", err)
	}
}

// A key file that does not belong to the certificate beside it (a crash
// between the two writes) makes Ensure issue a new leaf: reusing it would
// leave a server that cannot load its certificate.
func TestEnsureReplacesLeafWithForeignKey(t *testing.T) {
	dir := t.TempDir()
	p, err := devpki.Ensure(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	other, err := os.ReadFile(p.CAKey) // an ECDSA key, not the leaf's
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.ECDSAKey, other, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := devpki.Ensure(dir, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := tls.LoadX509KeyPair(p.ECDSAChain, p.ECDSAKey); err != nil {
		t.Errorf("after Ensure: %v", err)
	}
	chain, err := ocsp.ReadChainFile(p.ECDSAChain)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := ocsp.ReadCertFile(p.CACert)
	if _, err := ocsp.LoadFile(p.ECDSAOCSP, chain[0], ca, time.Now()); err != nil {
		t.Errorf("staple of the new leaf: %v", err)
	}
}
