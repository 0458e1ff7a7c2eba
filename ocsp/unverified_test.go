package ocsp_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	xocsp "golang.org/x/crypto/ocsp"

	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/dnsfront/dnsfront/ocsp"
)

// sha1CA is a CA whose key identifier is the SHA-1 of its key (RFC 5280
// method 1, as public CAs and openssl make them), and a leaf it issued.
type sha1CA struct {
	ca, leaf *x509.Certificate
	key      *ecdsa.PrivateKey
	now      time.Time
}

func newSHA1CA(t *testing.T, cn string, serial int64) *sha1CA {
	t.Helper()
	now := time.Now().Truncate(time.Second)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	pub, _ := x509.MarshalPKIXPublicKey(key.Public())
	if _, err := asn1.Unmarshal(pub, &spki); err != nil {
		t.Fatal(err)
	}
	skid := sha1.Sum(spki.PublicKey.RightAlign())
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, SubjectKeyId: skid[:]}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "dns.test"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), DNSNames: []string{"dns.test"}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, leafKey.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(leafDER)
	return &sha1CA{ca: ca, leaf: leaf, key: key, now: now}
}

// mint signs a response about cert with the CertID of issuer (name and
// key hashes with h), signed by c's key.
func (c *sha1CA) mint(t *testing.T, cert, issuer *x509.Certificate, h crypto.Hash, status int) []byte {
	t.Helper()
	der, err := xocsp.CreateResponse(issuer, c.ca, xocsp.Response{Status: status, SerialNumber: cert.SerialNumber,
		ThisUpdate: c.now.Add(-time.Minute), NextUpdate: c.now.Add(24 * time.Hour), IssuerHash: h,
		RevokedAt: c.now.Add(-time.Hour)}, c.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestValidateUnverified(t *testing.T) {
	a := newSHA1CA(t, "Test CA", 42)
	sameName := newSHA1CA(t, "Test CA", 42) // another key, same name and serial
	otherName := newSHA1CA(t, "Other CA", 42)
	p := devpki.NewTestPKI(t, t.TempDir()) // Go's key identifiers: truncated SHA-256
	cases := []struct {
		name string
		der  []byte
		leaf *x509.Certificate
		now  time.Time
		want error // nil: stapled unverified
	}{
		{"sha1-certid/sha1-aki", a.mint(t, a.leaf, a.ca, crypto.SHA1, xocsp.Good), a.leaf, a.now, nil},
		{"sha256-certid/sha1-aki", a.mint(t, a.leaf, a.ca, crypto.SHA256, xocsp.Good), a.leaf, a.now, nil},
		{"sha256-certid/rfc7093-aki", p.Good(), p.Leaf.Cert, p.Now, nil},
		// Not told apart from another key: the operator sets issuer:.
		{"sha1-certid/rfc7093-aki", mintSHA1(t, p), p.Leaf.Cert, p.Now, ocsp.ErrWrongCert},
		{"other-serial", p.ForOtherCert(), p.Leaf.Cert, p.Now, ocsp.ErrWrongCert},
		{"other-issuer-key", sameName.mint(t, sameName.leaf, sameName.ca, crypto.SHA1, xocsp.Good), a.leaf, a.now, ocsp.ErrWrongCert},
		{"other-issuer-name", otherName.mint(t, otherName.leaf, otherName.ca, crypto.SHA256, xocsp.Good), a.leaf, a.now, ocsp.ErrWrongCert},
		{"revoked", a.mint(t, a.leaf, a.ca, crypto.SHA1, xocsp.Revoked), a.leaf, a.now, ocsp.ErrRevoked},
		{"unknown", a.mint(t, a.leaf, a.ca, crypto.SHA1, xocsp.Unknown), a.leaf, a.now, ocsp.ErrUnknown},
		{"expired", a.mint(t, a.leaf, a.ca, crypto.SHA1, xocsp.Good), a.leaf, a.now.Add(24 * time.Hour), ocsp.ErrExpired},
		{"not-yet-valid", a.mint(t, a.leaf, a.ca, crypto.SHA1, xocsp.Good), a.leaf, a.now.Add(-time.Hour), ocsp.ErrNotYetValid},
		{"garbage", []byte("not ocsp"), a.leaf, a.now, ocsp.ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ocsp.ValidateUnverified(tc.der, tc.leaf, tc.now)
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if !s.Unverified || s.Signer != "" || s.Serial.Cmp(tc.leaf.SerialNumber) != 0 {
					t.Errorf("staple %+v", s)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
	// The signature is the one thing left to clients: a response with the
	// right CertID signed by another key passes here, not in Validate.
	if _, err := ocsp.ValidateUnverified(p.BadlySigned(), p.Leaf.Cert, p.Now); err != nil {
		t.Errorf("badly signed, right CertID: %v", err)
	}
	if _, err := ocsp.Validate(p.BadlySigned(), p.Leaf.Cert, p.Issuer.Cert, p.Now); !errors.Is(err, ocsp.ErrBadSignature) {
		t.Errorf("Validate with the issuer: %v", err)
	}
}

// mintSHA1 is a good response for p's leaf with a SHA-1 CertID, as
// `openssl ocsp` asks for by default.
func mintSHA1(t testing.TB, p *devpki.TestPKI) []byte {
	der, err := xocsp.CreateResponse(p.Issuer.Cert, p.Issuer.Cert, xocsp.Response{Status: xocsp.Good,
		SerialNumber: p.Leaf.Cert.SerialNumber, ThisUpdate: p.Now.Add(-time.Minute), NextUpdate: p.Now.Add(24 * time.Hour),
		IssuerHash: crypto.SHA1}, p.Issuer.Key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestInspectUnverified(t *testing.T) {
	p := devpki.NewTestPKI(t, t.TempDir())
	r := ocsp.Inspect(p.Good(), p.Leaf.Cert, nil, p.Now)
	if r.Err != nil || !r.Unverified {
		t.Fatalf("report %+v", r)
	}
	verdicts := map[string]ocsp.Check{}
	for _, c := range r.Checks {
		verdicts[c.Name] = c
	}
	if c := verdicts["issuer key hash"]; !c.OK || c.Skipped {
		t.Errorf("key hash check %+v", c)
	}
	if c := verdicts["signature"]; !c.Skipped || !strings.Contains(c.Detail, ocsp.ErrIssuerUnknown) {
		t.Errorf("signature check %+v", c)
	}
	if r := ocsp.Inspect(p.ForOtherCert(), p.Leaf.Cert, nil, p.Now); !errors.Is(r.Err, ocsp.ErrWrongCert) || r.Unverified {
		t.Errorf("other certificate: %+v", r)
	}
}

// TestManagerUnverifiedFile: a leaf-only chain, no issuer anywhere, no
// caIssuers URL (a dnsdist configuration): its response file is stapled
// unverified and reported so, with one warning naming the fix across
// reloads; a file for another certificate is never stapled.
func TestManagerUnverifiedFile(t *testing.T) {
	e := newEnv(t)
	good := e.pki.WriteFile("good.ocsp", e.pki.Good())
	other := e.pki.IssueLeaf("other")
	wrong := e.pki.WriteFile("wrong.ocsp", e.pki.ForOtherCert())
	m := e.start()
	srcs := []ocsp.CertSource{
		{ID: "leaf", Name: "leaf.pem", Chain: e.pki.Leaf.Chain[:1], Files: []string{good}},
		{ID: "other", Name: "other.pem", Chain: other.Chain[:1], Files: []string{wrong}},
	}
	for i := 0; i < 2; i++ {
		if err := m.Set(srcs); err != nil {
			t.Fatal(err)
		}
	}
	s := m.Staple("leaf")
	if s == nil || !s.Unverified {
		t.Fatalf("staple %+v", s)
	}
	if m.Staple("other") != nil {
		t.Error("a response for another certificate is stapled")
	}
	st := m.Status()
	if st[0].Status != ocsp.StateUnverified || st[0].StatusDetail != "signature not verified: issuer unknown" || st[0].Source != ocsp.SourceFile {
		t.Errorf("status %+v", st[0])
	}
	if st[1].Status != ocsp.StateNone {
		t.Errorf("status of the other certificate %+v", st[1])
	}
	logs := e.logs.String()
	if n := strings.Count(logs, "signature is not verified"); n != 1 || !strings.Contains(logs, "set issuer:") {
		t.Errorf("want one warning naming issuer:, got %d:\n%s", n, logs)
	}
	if !strings.Contains(logs, "another certificate") {
		t.Errorf("the wrong file is not reported:\n%s", logs)
	}
	// A response that embeds the issuer (openssl's responder signing with the CA) is
	// checked with it: verified, no warning.
	a := newSHA1CA(t, "Embedding CA", 7)
	embedded, err := xocsp.CreateResponse(a.ca, a.ca, xocsp.Response{Status: xocsp.Good, SerialNumber: a.leaf.SerialNumber,
		ThisUpdate: e.clk.Now().Add(-time.Minute), NextUpdate: e.clk.Now().Add(24 * time.Hour), Certificate: a.ca}, a.key)
	if err != nil {
		t.Fatal(err)
	}
	srcs = append(srcs, ocsp.CertSource{ID: "embedded", Name: "embedded.pem", Chain: []*x509.Certificate{a.leaf},
		Files: []string{e.pki.WriteFile("embedded.ocsp", embedded)}})
	if err := m.Set(srcs); err != nil {
		t.Fatal(err)
	}
	if s := m.Staple("embedded"); s == nil || s.Unverified || s.Signer != a.ca.Subject.String() {
		t.Errorf("staple of a response embedding its issuer: %+v", s)
	}
	forged, err := xocsp.CreateResponse(a.ca, e.pki.Issuer.Cert, xocsp.Response{Status: xocsp.Good, SerialNumber: a.leaf.SerialNumber,
		ThisUpdate: e.clk.Now().Add(-time.Minute), NextUpdate: e.clk.Now().Add(24 * time.Hour), Certificate: e.pki.Issuer.Cert}, e.pki.Issuer.Key)
	if err != nil {
		t.Fatal(err)
	}
	if ocsp.IssuerFromResponse(forged, a.leaf) != nil {
		t.Error("an embedded certificate that did not sign the leaf is taken for its issuer")
	}
	reg := gatherByCert(t, m, "dnsfront_ocsp_staple_unverified")
	if reg["leaf.pem"] != 1 || reg["other.pem"] != 0 || reg["embedded.pem"] != 0 {
		t.Errorf("dnsfront_ocsp_staple_unverified %v", reg)
	}
}

// TestManagerIssuerFromConfigFiles: the issuer missing from the chain is
// found among the CA files the configuration names, and the file is then
// fully validated (signature included).
func TestManagerIssuerFromConfigFiles(t *testing.T) {
	e := newEnv(t)
	good := e.pki.WriteFile("good.ocsp", e.pki.Good())
	bad := e.pki.WriteFile("bad.ocsp", e.pki.BadlySigned())
	unrelated := devpki.NewTestPKI(t, t.TempDir())
	files := []string{filepath.Join(t.TempDir(), "missing.pem"), unrelated.Root.CertFile, e.pki.Issuer.CertFile}
	m := e.start()
	if err := m.Set([]ocsp.CertSource{{ID: "leaf", Chain: e.pki.Leaf.Chain[:1], Files: []string{good}, IssuerFiles: files}}); err != nil {
		t.Fatal(err)
	}
	if s := m.Staple("leaf"); s == nil || s.Unverified || s.Signer != e.pki.Issuer.Cert.Subject.String() {
		t.Fatalf("staple %+v", s)
	}
	if st := e.status(); st.Status != ocsp.StateGood {
		t.Errorf("status %+v", st)
	}
	// With the issuer known, a badly signed file is refused.
	if err := m.Set([]ocsp.CertSource{{ID: "leaf2", Chain: e.pki.Leaf.Chain[:1], Files: []string{bad}, IssuerFiles: files}}); err != nil {
		t.Fatal(err)
	}
	if s := m.Staple("leaf2"); s != nil {
		t.Errorf("badly signed response stapled: %+v", s)
	}
}

// TestManagerFileIssuerFromAIA: a files-only source whose chain lacks the
// issuer is stapled unverified at once, then the issuer is fetched from
// caIssuers in the background and the same file is stapled verified.
func TestManagerFileIssuerFromAIA(t *testing.T) {
	e := newEnv(t)
	e.pki = devpki.NewTestPKI(t, t.TempDir(), devpki.WithNow(e.clk.Now()), devpki.WithIssuerURL(e.resp.IssuerURL()))
	e.resp.pki = e.pki
	good := e.pki.WriteFile("good.ocsp", e.pki.Good())
	m := e.start()
	if err := m.Set([]ocsp.CertSource{{ID: "leaf", Chain: e.pki.Leaf.Chain[:1], Files: []string{good}}}); err != nil {
		t.Fatal(err)
	}
	if ev := e.pubs.next(t); ev.s == nil || !ev.s.Unverified {
		t.Fatalf("first publication %+v", ev.s)
	}
	if ev := e.pubs.next(t); ev.s == nil || ev.s.Unverified {
		t.Fatalf("after caIssuers: %+v", ev.s)
	}
	e.waitStatus("verified", func(s ocsp.CertStatus) bool { return s.Status == ocsp.StateGood })
	if logs := e.logs.String(); strings.Contains(logs, "level=WARN") {
		t.Errorf("warning although the issuer was found:\n%s", logs)
	}
	e.resp.mu.Lock()
	defer e.resp.mu.Unlock()
	if e.resp.issuerN != 1 {
		t.Errorf("issuer fetched %d times", e.resp.issuerN)
	}
}

// gatherByCert scrapes one per-certificate metric: cert label → value.
func gatherByCert(t *testing.T, m *ocsp.Manager, name string) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(m.Collector()); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "cert" {
					out[l.GetValue()] = value(mt)
				}
			}
		}
	}
	return out
}

// FuzzValidateUnverified: no input panics, and whatever passes is for the certificate's
// serial and issuer name.
func FuzzValidateUnverified(f *testing.F) {
	p := devpki.NewTestPKI(f, f.TempDir())
	f.Add(p.Good())
	f.Add(p.ForOtherCert())
	f.Add(mintSHA1(f, p))
	f.Add([]byte{0x30, 0x03, 0x0a, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		s, err := ocsp.ValidateUnverified(der, p.Leaf.Cert, p.Now)
		if err != nil {
			return
		}
		if !s.Unverified || s.Serial.Cmp(p.Leaf.Cert.SerialNumber) != 0 {
			t.Fatalf("accepted %+v", s)
		}
	})
}
