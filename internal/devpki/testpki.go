package devpki

import (
	"crypto"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"os"
	"path/filepath"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/dnsfront/dnsfront/ocsp"
)

// TB is the part of testing.TB the test PKI uses; pass a *testing.T or
// *testing.B. (An interface, so that the server binary that links Ensure
// does not link the testing package.)
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Authority is a CA or a responder certificate with its key and files.
type Authority struct {
	Cert     *x509.Certificate
	Key      crypto.Signer
	CertFile string // PEM
	KeyFile  string // PEM PKCS#8
}

// Leaf is an issued server certificate.
type Leaf struct {
	Cert      *x509.Certificate
	Key       crypto.Signer
	Chain     []*x509.Certificate // leaf, then its issuer (the intermediate or the root)
	ChainFile string              // PEM of Chain
	KeyFile   string
}

// TestPKI is a throw-away PKI for tests: a root CA, an optional
// intermediate, an optional delegated OCSP responder, and a first leaf.
// Its methods call t.Fatalf on error, so they return no error.
type TestPKI struct {
	t   TB
	Dir string
	// Now is the reference time of certificates and responses (time.Now()
	// unless WithNow): certificates are valid from Now-1h for 90 days.
	Now time.Time

	Root      *Authority
	Issuer    *Authority // the intermediate with WithIntermediate, else Root
	Responder *Authority // the delegated responder, nil without WithDelegatedResponder
	Leaf      *Leaf      // issued with the options given to NewTestPKI
}

// Option configures NewTestPKI (all options) and IssueLeaf (leaf options).
type Option func(*config)

type config struct {
	leaf         leafSpec
	intermediate bool
	responder    bool
	responderEKU bool
	now          time.Time
	leafKey      crypto.Signer
}

// WithOCSPURL sets the leaf's AIA OCSP responder URL.
func WithOCSPURL(url string) Option { return func(c *config) { c.leaf.ocspURL = url } }

// WithIssuerURL sets the leaf's AIA caIssuers URL.
func WithIssuerURL(url string) Option { return func(c *config) { c.leaf.issuerURL = url } }

// WithMustStaple adds the TLS Feature status_request extension (RFC 7633).
func WithMustStaple() Option { return func(c *config) { c.leaf.mustStaple = true } }

// WithRSA gives the leaf an RSA-2048 key instead of ECDSA P-256.
func WithRSA() Option { return func(c *config) { c.leaf.keyType = RSA } }

// WithNames replaces the leaf's names (DNS names or IP addresses; the first
// is the subject CN). The default is Names.
func WithNames(names ...string) Option { return func(c *config) { c.leaf.names = names } }

// WithExtraNames adds names (DNS names or IP addresses) to the leaf's.
func WithExtraNames(names ...string) Option {
	return func(c *config) { c.leaf.names = append(append([]string(nil), c.leaf.names...), names...) }
}

// WithSerial chooses the leaf's serial number.
func WithSerial(serial int64) Option {
	return func(c *config) { c.leaf.serial = big.NewInt(serial) }
}

// WithKey issues the leaf for key instead of a new one. Tests that need
// many RSA leaves pass one key generated once: RSA key generation under the
// race detector takes about half a second.
func WithKey(key crypto.Signer) Option {
	return func(c *config) {
		c.leafKey = key
		if _, ok := key.(*rsa.PrivateKey); ok {
			c.leaf.keyType = RSA
		} else {
			c.leaf.keyType = ECDSA
		}
	}
}

// WithLeafValidity sets the leaf's NotBefore and NotAfter.
func WithLeafValidity(notBefore, notAfter time.Time) Option {
	return func(c *config) { c.leaf.notBefore, c.leaf.notAfter = notBefore, notAfter }
}

// WithIntermediate issues leaves from an intermediate CA under the root.
func WithIntermediate() Option { return func(c *config) { c.intermediate = true } }

// WithDelegatedResponder makes responses signed by a delegated responder
// certificate issued by the leaves' issuer, with the OCSPSigning extended
// key usage when withEKU is true (without it, a validator must reject it).
func WithDelegatedResponder(withEKU bool) Option {
	return func(c *config) { c.responder, c.responderEKU = true, withEKU }
}

// WithNow sets TestPKI.Now.
func WithNow(now time.Time) Option { return func(c *config) { c.now = now } }

// NewTestPKI builds a PKI in dir (usually t.TempDir()) and issues its first
// leaf, ECDSA for Names unless options say otherwise. Files: root.pem,
// root.key, [intermediate.pem, .key], [responder.pem, .key], leaf.chain.pem,
// leaf.key.
func NewTestPKI(t TB, dir string, opts ...Option) *TestPKI {
	t.Helper()
	var c config
	for _, o := range opts {
		o(&c)
	}
	if c.now.IsZero() {
		c.now = time.Now()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatalf("devpki: %v", err)
	}
	p := &TestPKI{t: t, Dir: dir, Now: c.now}
	p.Root = p.authority("root", "dnsfront test root CA", nil, caTemplate("", c.now.Add(-time.Hour), c.now.Add(5*365*24*time.Hour)))
	p.Issuer = p.Root
	if c.intermediate {
		p.Issuer = p.authority("intermediate", "dnsfront test intermediate CA", p.Root,
			caTemplate("", c.now.Add(-time.Hour), c.now.Add(2*365*24*time.Hour)))
	}
	if c.responder {
		tmpl := &x509.Certificate{
			SerialNumber: randomSerial(),
			NotBefore:    c.now.Add(-time.Hour),
			NotAfter:     c.now.Add(365 * 24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
		}
		if c.responderEKU {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}
		} else {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		}
		p.Responder = p.authority("responder", "dnsfront test OCSP responder", p.Issuer, tmpl)
	}
	p.Leaf = p.IssueLeaf("leaf", opts...)
	return p
}

func (p *TestPKI) authority(file, cn string, parent *Authority, tmpl *x509.Certificate) *Authority {
	p.t.Helper()
	key, err := newKey(ECDSA)
	if err != nil {
		p.t.Fatalf("devpki: %v", err)
	}
	tmpl.Subject.CommonName = cn
	var pc *x509.Certificate
	pk := key
	if parent != nil {
		pc, pk = parent.Cert, parent.Key
	}
	cert, err := sign(tmpl, pc, key.Public(), pk)
	if err != nil {
		p.t.Fatalf("%v", err)
	}
	a := &Authority{Cert: cert, Key: key, CertFile: filepath.Join(p.Dir, file+".pem"), KeyFile: filepath.Join(p.Dir, file+".key")}
	if err := writeCertKey(a.CertFile, a.KeyFile, []*x509.Certificate{cert}, key); err != nil {
		p.t.Fatalf("%v", err)
	}
	return a
}

// IssueLeaf issues another leaf from Issuer and writes name.chain.pem and
// name.key. Options other than the leaf ones (URLs, Must-Staple, RSA,
// key, names, serial, validity) are ignored.
func (p *TestPKI) IssueLeaf(name string, opts ...Option) *Leaf {
	p.t.Helper()
	c := config{leaf: leafSpec{names: Names, notBefore: p.Now.Add(-time.Hour), notAfter: p.Now.Add(90 * 24 * time.Hour)}}
	for _, o := range opts {
		o(&c)
	}
	key := c.leafKey
	if key == nil {
		var err error
		if key, err = newKey(c.leaf.keyType); err != nil {
			p.t.Fatalf("devpki: %v", err)
		}
	}
	cert, err := sign(leafTemplate(c.leaf), p.Issuer.Cert, key.Public(), p.Issuer.Key)
	if err != nil {
		p.t.Fatalf("%v", err)
	}
	l := &Leaf{Cert: cert, Key: key, Chain: []*x509.Certificate{cert, p.Issuer.Cert},
		ChainFile: filepath.Join(p.Dir, name+".chain.pem"), KeyFile: filepath.Join(p.Dir, name+".key")}
	if err := writeCertKey(l.ChainFile, l.KeyFile, l.Chain, key); err != nil {
		p.t.Fatalf("%v", err)
	}
	return l
}

// TLSCertificate is the leaf and its chain for a tls.Config, without a
// staple.
func (l *Leaf) TLSCertificate() tls.Certificate {
	c := tls.Certificate{PrivateKey: l.Key, Leaf: l.Cert}
	for _, x := range l.Chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}

// RootPool is a pool of the root CA alone, for clients that verify the
// test PKI's leaves.
func (p *TestPKI) RootPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.Root.Cert)
	return pool
}

// Response describes a response to mint. Zero times default to
// thisUpdate = Now-1m and nextUpdate = Now+7d.
type Response struct {
	Status     int // ocsp.StatusGood, StatusRevoked or StatusUnknown
	ThisUpdate time.Time
	NextUpdate time.Time
	RevokedAt  time.Time
	Reason     int
	// Signer signs the response; nil means the delegated Responder when
	// there is one (embedded in the response), else Issuer.
	Signer *Authority
	// Serial overrides the certificate's serial in the CertID.
	Serial *big.Int
}

// Mint signs a response about cert. It does not validate it: this is how
// tests make bad ones.
func (p *TestPKI) Mint(cert *x509.Certificate, r Response) []byte {
	p.t.Helper()
	if r.ThisUpdate.IsZero() {
		r.ThisUpdate = p.Now.Add(-time.Minute)
	}
	if r.NextUpdate.IsZero() {
		r.NextUpdate = p.Now.Add(7 * 24 * time.Hour)
	}
	signer := r.Signer
	if signer == nil {
		signer = p.Responder
	}
	if signer == nil {
		signer = p.Issuer
	}
	tmpl := xocsp.Response{
		Status: r.Status, SerialNumber: cert.SerialNumber, ThisUpdate: r.ThisUpdate, NextUpdate: r.NextUpdate,
		RevokedAt: r.RevokedAt, RevocationReason: r.Reason, IssuerHash: crypto.SHA256,
	}
	if r.Serial != nil {
		tmpl.SerialNumber = r.Serial
	}
	if r.Status == ocsp.StatusRevoked && tmpl.RevokedAt.IsZero() {
		tmpl.RevokedAt = p.Now.Add(-time.Hour)
	}
	if signer != p.Issuer {
		tmpl.Certificate = signer.Cert
	}
	der, err := xocsp.CreateResponse(p.Issuer.Cert, signer.Cert, tmpl, signer.Key)
	if err != nil {
		p.t.Fatalf("devpki: mint: %v", err)
	}
	return der
}

// Good is a good response for the first leaf, valid from Now-1m for 7 days.
func (p *TestPKI) Good() []byte { return p.Mint(p.Leaf.Cert, Response{Status: ocsp.StatusGood}) }

// Revoked says the first leaf was revoked an hour ago for keyCompromise.
func (p *TestPKI) Revoked() []byte {
	return p.Mint(p.Leaf.Cert, Response{Status: ocsp.StatusRevoked, Reason: 1})
}

// Unknown is an "unknown" response for the first leaf.
func (p *TestPKI) Unknown() []byte { return p.Mint(p.Leaf.Cert, Response{Status: ocsp.StatusUnknown}) }

// Expired is a good response whose window ended an hour before Now.
func (p *TestPKI) Expired() []byte {
	return p.Mint(p.Leaf.Cert, Response{Status: ocsp.StatusGood,
		ThisUpdate: p.Now.Add(-8 * 24 * time.Hour), NextUpdate: p.Now.Add(-time.Hour)})
}

// ForOtherCert is a good response about another leaf of the same issuer.
func (p *TestPKI) ForOtherCert() []byte {
	other := p.IssueLeaf("other")
	return p.Mint(other.Cert, Response{Status: ocsp.StatusGood})
}

// BadlySigned is a good response for the first leaf signed by a CA that
// looks like the issuer (same subject) but has another key.
func (p *TestPKI) BadlySigned() []byte {
	p.t.Helper()
	key, err := newKey(ECDSA)
	if err != nil {
		p.t.Fatalf("devpki: %v", err)
	}
	tmpl := caTemplate("", p.Now.Add(-time.Hour), p.Now.Add(24*time.Hour))
	tmpl.Subject = p.Issuer.Cert.Subject
	impostor, err := sign(tmpl, nil, key.Public(), key)
	if err != nil {
		p.t.Fatalf("%v", err)
	}
	// CertID from the real issuer, signature from the impostor.
	der, err := xocsp.CreateResponse(p.Issuer.Cert, impostor, xocsp.Response{
		Status: ocsp.StatusGood, SerialNumber: p.Leaf.Cert.SerialNumber, IssuerHash: crypto.SHA256,
		ThisUpdate: p.Now.Add(-time.Minute), NextUpdate: p.Now.Add(7 * 24 * time.Hour),
	}, key)
	if err != nil {
		p.t.Fatalf("devpki: mint: %v", err)
	}
	return der
}

// WriteFile writes data to name inside Dir and returns the path.
func (p *TestPKI) WriteFile(name string, data []byte) string {
	p.t.Helper()
	path := filepath.Join(p.Dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		p.t.Fatalf("devpki: %v", err)
	}
	return path
}
