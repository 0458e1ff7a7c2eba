package devpki

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/dnsfront/dnsfront/ocsp"
)

// Names are the names and addresses of the development leaves.
var Names = []string{"dns.test", "localhost", "127.0.0.1", "::1"}

// Lifetimes of the development PKI and when Ensure renews its parts.
const (
	caLifetime      = 10 * 365 * 24 * time.Hour
	leafLifetime    = 365 * 24 * time.Hour
	leafRenewBefore = 30 * 24 * time.Hour
	// StapleValidity is the window of the minted responses: a week, like
	// the public CAs' responders.
	StapleValidity = 7 * 24 * time.Hour
	// StapleRenewBefore: Ensure re-mints a response that ends within a day,
	// so a dev server restarted daily never starts with a dying staple.
	StapleRenewBefore = 24 * time.Hour
)

// Paths are the files of a development PKI. Chains hold the leaf then the CA.
type Paths struct {
	CACert, CAKey                   string
	ECDSAChain, ECDSAKey, ECDSAOCSP string
	RSAChain, RSAKey, RSAOCSP       string
}

func pathsIn(dir string) *Paths {
	j := func(n string) string { return filepath.Join(dir, n) }
	return &Paths{
		CACert: j("ca.pem"), CAKey: j("ca.key"),
		ECDSAChain: j("ecdsa.chain.pem"), ECDSAKey: j("ecdsa.key"), ECDSAOCSP: j("ecdsa.ocsp"),
		RSAChain: j("rsa.chain.pem"), RSAKey: j("rsa.key"), RSAOCSP: j("rsa.ocsp"),
	}
}

// Ensure creates, or reuses while it is still valid at now, a development
// PKI in dir: a CA (ECDSA P-256), an ECDSA P-256 leaf and an RSA-2048 leaf
// for Names, and a good OCSP response for each leaf minted by ocsp.Generate.
// A CA that fails to load or would not outlive a new leaf is replaced
// (and so are the leaves it signed); a leaf that expires within 30 days is re-issued;
// a response that ends within StapleRenewBefore is re-minted. Files are
// written atomically; keys are 0600.
func Ensure(dir string, now time.Time) (*Paths, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("devpki: %w", err)
	}
	p := pathsIn(dir)
	ca, caKey, err := loadCA(p, now)
	if err != nil {
		tmpl := caTemplate("dnsfront development CA", now.Add(-time.Hour), now.Add(caLifetime))
		if caKey, err = newKey(ECDSA); err != nil {
			return nil, fmt.Errorf("devpki: %w", err)
		}
		if ca, err = sign(tmpl, nil, caKey.Public(), caKey); err != nil {
			return nil, err
		}
		if err := writeCertKey(p.CACert, p.CAKey, []*x509.Certificate{ca}, caKey); err != nil {
			return nil, err
		}
	}
	for _, l := range []struct {
		kt                 KeyType
		chain, key, staple string
	}{{ECDSA, p.ECDSAChain, p.ECDSAKey, p.ECDSAOCSP}, {RSA, p.RSAChain, p.RSAKey, p.RSAOCSP}} {
		leaf, err := ensureLeaf(l.kt, l.chain, l.key, ca, caKey, now)
		if err != nil {
			return nil, err
		}
		s, err := ocsp.LoadFile(l.staple, leaf, ca, now)
		if err == nil && s.NextUpdate.Sub(now) > StapleRenewBefore {
			continue
		}
		der, err := ocsp.Generate(leaf, ca, caKey, now, now.Add(StapleValidity))
		if err != nil {
			return nil, err
		}
		if err := ocsp.WriteFileAtomic(l.staple, der, 0o644); err != nil {
			return nil, fmt.Errorf("devpki: %w", err)
		}
	}
	return p, nil
}

func loadCA(p *Paths, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	ca, err := ocsp.ReadCertFile(p.CACert)
	if err != nil {
		return nil, nil, err
	}
	key, err := ocsp.ReadKeyFile(p.CAKey)
	if err != nil {
		return nil, nil, err
	}
	if !ca.IsCA || now.Before(ca.NotBefore) || now.Add(leafLifetime).After(ca.NotAfter) {
		return nil, nil, errors.New("devpki: CA not valid long enough")
	}
	if !keyMatches(key, ca) {
		return nil, nil, errors.New("devpki: CA key does not match")
	}
	return ca, key, nil
}

// keyMatches says whether key is the private key of cert.
func keyMatches(key crypto.Signer, cert *x509.Certificate) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	k, ok := key.Public().(equaler)
	return ok && k.Equal(cert.PublicKey)
}

// ensureLeaf reuses the leaf in chainFile when the CA signed it, keyFile
// holds its key (the two files are written one after the other, so a crash
// can leave a new key beside the old certificate), it covers Names and it
// stays valid for leafRenewBefore; otherwise it issues one.
func ensureLeaf(kt KeyType, chainFile, keyFile string, ca *x509.Certificate, caKey crypto.Signer, now time.Time) (*x509.Certificate, error) {
	if leaf, ok := reusableLeaf(chainFile, keyFile, ca, now); ok {
		return leaf, nil
	}
	key, err := newKey(kt)
	if err != nil {
		return nil, fmt.Errorf("devpki: %w", err)
	}
	leaf, err := sign(leafTemplate(leafSpec{names: Names, keyType: kt, notBefore: now.Add(-time.Hour),
		notAfter: now.Add(leafLifetime)}), ca, key.Public(), caKey)
	if err != nil {
		return nil, err
	}
	if err := writeCertKey(chainFile, keyFile, []*x509.Certificate{leaf, ca}, key); err != nil {
		return nil, err
	}
	return leaf, nil
}

func reusableLeaf(chainFile, keyFile string, ca *x509.Certificate, now time.Time) (*x509.Certificate, bool) {
	chain, err := ocsp.ReadChainFile(chainFile)
	if err != nil {
		return nil, false
	}
	leaf := chain[0]
	key, err := ocsp.ReadKeyFile(keyFile)
	if err != nil || !keyMatches(key, leaf) || leaf.CheckSignatureFrom(ca) != nil ||
		now.Before(leaf.NotBefore) || leaf.NotAfter.Sub(now) <= leafRenewBefore {
		return nil, false
	}
	for _, n := range Names {
		if leaf.VerifyHostname(n) != nil {
			return nil, false
		}
	}
	return leaf, true
}

func writeCertKey(certFile, keyFile string, chain []*x509.Certificate, key crypto.Signer) error {
	kp, err := ocsp.EncodeKeyPEM(key)
	if err != nil {
		return fmt.Errorf("devpki: %s: %v", keyFile, err)
	}
	if err := ocsp.WriteFileAtomic(keyFile, kp, 0o600); err != nil {
		return fmt.Errorf("devpki: %w", err)
	}
	if err := ocsp.WriteFileAtomic(certFile, ocsp.EncodeCertsPEM(chain...), 0o644); err != nil {
		return fmt.Errorf("devpki: %w", err)
	}
	return nil
}
