package ocsp_test

import (
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/dnsfront/dnsfront/ocsp"
)

func TestValidateGood(t *testing.T) {
	p := devpki.NewTestPKI(t, t.TempDir())
	s, err := ocsp.Validate(p.Good(), p.Leaf.Cert, p.Issuer.Cert, p.Now)
	if err != nil {
		t.Fatal(err)
	}
	if s.Serial.Cmp(p.Leaf.Cert.SerialNumber) != 0 || s.Status != ocsp.StatusGood || s.Delegated {
		t.Errorf("staple = %+v", s)
	}
	if s.Signer != p.Issuer.Cert.Subject.String() {
		t.Errorf("signer %q, want issuer %q", s.Signer, p.Issuer.Cert.Subject.String())
	}
	if !s.NextUpdate.After(p.Now) || s.ThisUpdate.After(p.Now) {
		t.Errorf("window %s..%s around %s", s.ThisUpdate, s.NextUpdate, p.Now)
	}
}

func TestValidateRejects(t *testing.T) {
	p := devpki.NewTestPKI(t, t.TempDir())
	now := p.Now
	leaf, issuer := p.Leaf.Cert, p.Issuer.Cert
	// Mint defaults a zero NextUpdate; build one without it by hand.
	noNext, err := xocsp.CreateResponse(issuer, issuer, xocsp.Response{Status: xocsp.Good,
		SerialNumber: leaf.SerialNumber, ThisUpdate: now.Add(-time.Minute)}, p.Issuer.Key)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		der  []byte
		is   error
		msg  string
	}{
		{"empty", nil, ocsp.ErrEmpty, "empty"},
		{"garbage", []byte("not an ocsp response at all"), ocsp.ErrMalformed, "malformed"},
		{"trylater", xocsp.TryLaterErrorResponse, ocsp.ErrTryLater, "try later"},
		{"unauthorized", xocsp.UnauthorizedErrorResponse, nil, "unauthorized"},
		{"revoked", p.Revoked(), ocsp.ErrRevoked, "keyCompromise"},
		{"unknown", p.Unknown(), ocsp.ErrUnknown, "unknown"},
		{"expired", p.Expired(), ocsp.ErrExpired, "has passed"},
		{"future", p.Mint(leaf, devpki.Response{Status: ocsp.StatusGood, ThisUpdate: now.Add(time.Hour), NextUpdate: now.Add(48 * time.Hour)}), ocsp.ErrNotYetValid, "in the future"},
		{"within skew of nextUpdate", p.Mint(leaf, devpki.Response{Status: ocsp.StatusGood, ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(ocsp.Skew / 2)}), ocsp.ErrExpired, ""},
		{"other cert", p.ForOtherCert(), ocsp.ErrWrongCert, "response is for serial 0x"},
		{"badly signed", p.BadlySigned(), ocsp.ErrBadSignature, "not signed by issuer"},
		{"no nextUpdate", noNext, ocsp.ErrMalformed, "no nextUpdate"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := ocsp.Validate(c.der, leaf, issuer, now)
			if err == nil {
				t.Fatalf("accepted: %+v", s)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %q is not %q", err, c.is)
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Errorf("error %q does not mention %q", err, c.msg)
			}
		})
	}
}

func TestValidateWrongSerialMessage(t *testing.T) {
	p := devpki.NewTestPKI(t, t.TempDir(), devpki.WithSerial(0x3c4d))
	der := p.Mint(p.Leaf.Cert, devpki.Response{Status: ocsp.StatusGood, Serial: big.NewInt(0x1a2b)})
	_, err := ocsp.Validate(der, p.Leaf.Cert, p.Issuer.Cert, p.Now)
	if err == nil || err.Error() != "ocsp: response is for another certificate: response is for serial 0x1a2b, certificate has 0x3c4d" {
		t.Fatalf("err = %v", err)
	}
}

func TestValidateRevokedDetails(t *testing.T) {
	p := devpki.NewTestPKI(t, t.TempDir())
	at := p.Now.Add(-3 * time.Hour).Truncate(time.Second)
	der := p.Mint(p.Leaf.Cert, devpki.Response{Status: ocsp.StatusRevoked, RevokedAt: at, Reason: 4})
	_, err := ocsp.Validate(der, p.Leaf.Cert, p.Issuer.Cert, p.Now)
	var re *ocsp.RevokedError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want *RevokedError", err)
	}
	if !re.RevokedAt.Equal(at) || re.Reason != 4 || !strings.Contains(err.Error(), "superseded") {
		t.Errorf("revoked at %s reason %d (%v), want %s reason 4", re.RevokedAt, re.Reason, err, at)
	}
}

func TestValidateIssuerHashes(t *testing.T) {
	// Same serial, other CA: the serial matches but the CertID's issuer
	// hashes must not.
	a := devpki.NewTestPKI(t, t.TempDir(), devpki.WithSerial(77))
	b := devpki.NewTestPKI(t, t.TempDir(), devpki.WithSerial(77))
	_, err := ocsp.Validate(b.Good(), a.Leaf.Cert, a.Issuer.Cert, a.Now)
	if !errors.Is(err, ocsp.ErrWrongCert) || !strings.Contains(err.Error(), "issuer key hash") {
		t.Fatalf("err = %v", err)
	}
}

func TestValidateLongerThanCertificate(t *testing.T) {
	p := devpki.NewTestPKI(t, t.TempDir())
	der := p.Mint(p.Leaf.Cert, devpki.Response{Status: ocsp.StatusGood, NextUpdate: p.Leaf.Cert.NotAfter.Add(48 * time.Hour)})
	if _, err := ocsp.Validate(der, p.Leaf.Cert, p.Issuer.Cert, p.Now); err != nil {
		t.Fatalf("nextUpdate after NotAfter rejected: %v", err)
	}
}

func TestValidateDelegatedResponder(t *testing.T) {
	t.Run("with EKU", func(t *testing.T) {
		p := devpki.NewTestPKI(t, t.TempDir(), devpki.WithIntermediate(), devpki.WithDelegatedResponder(true))
		s, err := ocsp.Validate(p.Good(), p.Leaf.Cert, p.Issuer.Cert, p.Now)
		if err != nil {
			t.Fatal(err)
		}
		if !s.Delegated || s.Signer != p.Responder.Cert.Subject.String() {
			t.Errorf("signer %q delegated %v", s.Signer, s.Delegated)
		}
	})
	t.Run("without EKU", func(t *testing.T) {
		p := devpki.NewTestPKI(t, t.TempDir(), devpki.WithDelegatedResponder(false))
		_, err := ocsp.Validate(p.Good(), p.Leaf.Cert, p.Issuer.Cert, p.Now)
		if !errors.Is(err, ocsp.ErrBadSignature) || !strings.Contains(err.Error(), "OCSPSigning") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("responder of another CA", func(t *testing.T) {
		p := devpki.NewTestPKI(t, t.TempDir())
		other := devpki.NewTestPKI(t, t.TempDir(), devpki.WithDelegatedResponder(true))
		der := p.Mint(p.Leaf.Cert, devpki.Response{Status: ocsp.StatusGood, Signer: other.Responder})
		_, err := ocsp.Validate(der, p.Leaf.Cert, p.Issuer.Cert, p.Now)
		if !errors.Is(err, ocsp.ErrBadSignature) || !strings.Contains(err.Error(), "not signed by issuer") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestLoadFileErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	p := devpki.NewTestPKI(t, dir)
	cases := []struct {
		name, path string
		is         error
	}{
		{"missing", filepath.Join(dir, "missing.ocsp"), os.ErrNotExist},
		{"dev null", "/dev/null", ocsp.ErrEmpty},
		{"garbage", p.WriteFile("garbage.ocsp", []byte("\x30\x03garbage")), ocsp.ErrMalformed},
		{"expired", p.WriteFile("expired.ocsp", p.Expired()), ocsp.ErrExpired},
		{"revoked", p.WriteFile("revoked.ocsp", p.Revoked()), ocsp.ErrRevoked},
		{"other", p.WriteFile("other.ocsp", p.ForOtherCert()), ocsp.ErrWrongCert},
		{"bad signature", p.WriteFile("bad.ocsp", p.BadlySigned()), ocsp.ErrBadSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ocsp.LoadFile(c.path, p.Leaf.Cert, p.Issuer.Cert, p.Now)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.HasPrefix(err.Error(), "ocsp: ") || !strings.Contains(err.Error(), c.path) {
				t.Errorf("error %q does not name %s", err, c.path)
			}
			if !errors.Is(err, c.is) {
				t.Errorf("error %q is not %q", err, c.is)
			}
		})
	}
	good := p.WriteFile("good.ocsp", p.Good())
	if _, err := ocsp.LoadFile(good, p.Leaf.Cert, p.Issuer.Cert, p.Now); err != nil {
		t.Fatal(err)
	}
}

func FuzzValidate(f *testing.F) {
	p := devpki.NewTestPKI(f, f.TempDir(), devpki.WithDelegatedResponder(true))
	f.Add(p.Good())
	f.Add(p.Revoked())
	f.Add(p.Unknown())
	f.Add(p.Expired())
	f.Add(xocsp.TryLaterErrorResponse)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, der []byte) {
		s, err := ocsp.Validate(der, p.Leaf.Cert, p.Issuer.Cert, p.Now)
		if (s == nil) == (err == nil) {
			t.Fatalf("staple %v and error %v", s, err)
		}
		if err == nil && (s.Status != ocsp.StatusGood || s.Serial.Cmp(p.Leaf.Cert.SerialNumber) != 0 ||
			!p.Now.Add(ocsp.Skew).Before(s.NextUpdate)) {
			t.Fatalf("accepted an unusable response: %+v", s)
		}
	})
}

func BenchmarkValidate(b *testing.B) {
	p := devpki.NewTestPKI(b, b.TempDir())
	der := p.Good()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ocsp.Validate(der, p.Leaf.Cert, p.Issuer.Cert, p.Now); err != nil {
			b.Fatal(err)
		}
	}
}
