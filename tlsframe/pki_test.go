package tlsframe

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/dnsfront/dnsfront/ocsp"
)

// testPKI is the module's test PKI (devpki.TestPKI) with what these tests
// read from it in memory: the root's PEM and a pool that trusts it.
type testPKI struct {
	*devpki.TestPKI
	caPEM []byte
	pool  *x509.CertPool
}

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

// testRSAKey is generated once per test binary: RSA key generation under
// the race detector is slow, and the tests need only one.
func testRSAKey() *rsa.PrivateKey {
	rsaOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		rsaKey = k
	})
	return rsaKey
}

func newPKI(t testing.TB) *testPKI {
	t.Helper()
	p := devpki.NewTestPKI(t, t.TempDir())
	caPEM, err := os.ReadFile(p.Root.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	return &testPKI{TestPKI: p, caPEM: caPEM, pool: p.RootPool()}
}

// issued is a leaf with its PEM chain (leaf, CA) and key.
type issued struct {
	leaf     *x509.Certificate
	chainPEM []byte
	keyPEM   []byte
}

// issue issues a leaf whose subject CN is cn, for cn, names and 127.0.0.1.
func (p *testPKI) issue(t testing.TB, cn string, rsaLeaf bool, names ...string) issued {
	t.Helper()
	opts := []devpki.Option{devpki.WithNames(append(append([]string{cn}, names...), "127.0.0.1")...)}
	if rsaLeaf {
		opts = append(opts, devpki.WithKey(testRSAKey()))
	}
	l := p.IssueLeaf(cn, opts...)
	chainPEM, err := os.ReadFile(l.ChainFile)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(l.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	return issued{leaf: l.Cert, chainPEM: chainPEM, keyPEM: keyPEM}
}

// staple is a real OCSP response, status good, signed by the CA.
func (p *testPKI) staple(t testing.TB, leaf *x509.Certificate) []byte {
	t.Helper()
	return p.Mint(leaf, devpki.Response{Status: ocsp.StatusGood, ThisUpdate: time.Now().Add(-time.Minute),
		NextUpdate: time.Now().Add(time.Hour)})
}

func (i issued) spec(staple []byte) CertSpec {
	return CertSpec{ChainFile: i.leaf.Subject.CommonName + ".pem", KeyFile: i.leaf.Subject.CommonName + ".key",
		ChainPEM: i.chainPEM, KeyPEM: i.keyPEM, OCSPStaple: staple}
}

// writeFiles stores the chain and key under dir for tests that load files.
func (i issued) writeFiles(t testing.TB, dir string) CertSpec {
	t.Helper()
	cf := filepath.Join(dir, i.leaf.Subject.CommonName+".pem")
	kf := filepath.Join(dir, i.leaf.Subject.CommonName+".key")
	if err := os.WriteFile(cf, i.chainPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kf, i.keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return CertSpec{ChainFile: cf, KeyFile: kf}
}

func x509Pool(caPEM []byte) *x509.CertPool {
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(caPEM)
	return p
}
