package tlsframe

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// testPKI is a CA that issues leaves and signs OCSP responses for them.
type testPKI struct {
	ca     *x509.Certificate
	caKey  crypto.Signer
	caPEM  []byte
	pool   *x509.CertPool
	serial int64
	mu     sync.Mutex
}

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

// testRSAKey is generated once per test binary: RSA key generation under
// the race detector is slow, and the tests need only one.
func testRSAKey(t testing.TB) *rsa.PrivateKey {
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
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tlsframe test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &testPKI{ca: ca, caKey: key, caPEM: pemBlock("CERTIFICATE", der), pool: pool, serial: 0x1000}
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// issued is a leaf with its PEM chain (leaf, CA) and key.
type issued struct {
	leaf     *x509.Certificate
	chainPEM []byte
	keyPEM   []byte
}

func (p *testPKI) issue(t testing.TB, cn string, rsaLeaf bool, names ...string) issued {
	t.Helper()
	var key crypto.Signer
	if rsaLeaf {
		key = testRSAKey(t)
	} else {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key = k
	}
	p.mu.Lock()
	p.serial++
	serial := p.serial
	p.mu.Unlock()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	tmpl.DNSNames = append(tmpl.DNSNames, names...)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, key.Public(), p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	chain := append(pemBlock("CERTIFICATE", der), p.caPEM...)
	return issued{leaf: leaf, chainPEM: chain, keyPEM: pemBlock("PRIVATE KEY", kder)}
}

// staple is a real OCSP response, status good, signed by the CA.
func (p *testPKI) staple(t testing.TB, leaf *x509.Certificate) []byte {
	t.Helper()
	now := time.Now()
	der, err := ocsp.CreateResponse(p.ca, p.ca, ocsp.Response{
		Status:       ocsp.Good,
		SerialNumber: leaf.SerialNumber,
		ThisUpdate:   now.Add(-time.Minute),
		NextUpdate:   now.Add(time.Hour),
	}, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
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
