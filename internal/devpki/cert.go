package devpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"net"
	"time"

	"github.com/dnsfront/dnsfront/ocsp"
)

// KeyType selects a leaf key algorithm.
type KeyType int

const (
	ECDSA KeyType = iota // ECDSA P-256
	RSA                  // RSA 2048
)

func newKey(kt KeyType) (crypto.Signer, error) {
	if kt == RSA {
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n.Add(n, big.NewInt(1))
}

// mustStapleExtension is TLS Feature = SEQUENCE { INTEGER 5 }.
func mustStapleExtension() pkix.Extension {
	v, _ := asn1.Marshal([]int{5})
	return pkix.Extension{Id: ocsp.OIDTLSFeature, Value: v}
}

func caTemplate(cn string, notBefore, notAfter time.Time) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"dnsfront development"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
}

// leafSpec is what a leaf certificate carries besides its key.
type leafSpec struct {
	names      []string // DNS names and IP addresses
	serial     *big.Int
	ocspURL    string
	issuerURL  string
	mustStaple bool
	notBefore  time.Time
	notAfter   time.Time
	keyType    KeyType
}

func leafTemplate(s leafSpec) *x509.Certificate {
	t := &x509.Certificate{
		SerialNumber: s.serial,
		NotBefore:    s.notBefore,
		NotAfter:     s.notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if t.SerialNumber == nil {
		t.SerialNumber = randomSerial()
	}
	if s.keyType == RSA {
		t.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	for _, n := range s.names {
		if ip := net.ParseIP(n); ip != nil {
			t.IPAddresses = append(t.IPAddresses, ip)
		} else {
			t.DNSNames = append(t.DNSNames, n)
		}
	}
	if len(s.names) > 0 {
		t.Subject.CommonName = s.names[0]
	}
	if s.ocspURL != "" {
		t.OCSPServer = []string{s.ocspURL}
	}
	if s.issuerURL != "" {
		t.IssuingCertificateURL = []string{s.issuerURL}
	}
	if s.mustStaple {
		t.ExtraExtensions = append(t.ExtraExtensions, mustStapleExtension())
	}
	return t
}

// sign issues template with parent's key and returns the parsed result.
func sign(template, parent *x509.Certificate, pub crypto.PublicKey, parentKey crypto.Signer) (*x509.Certificate, error) {
	if parent == nil {
		parent = template
	}
	der, err := x509.CreateCertificate(rand.Reader, template, parent, pub, parentKey)
	if err != nil {
		return nil, fmt.Errorf("devpki: create certificate %q: %v", template.Subject.CommonName, err)
	}
	return x509.ParseCertificate(der)
}
