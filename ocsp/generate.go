package ocsp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	xocsp "golang.org/x/crypto/ocsp"
)

// Generate mints an OCSP response saying leaf is good from thisUpdate to
// nextUpdate, signed directly by the issuing CA's key (no delegated
// responder), with SHA-256 CertID hashes. It is dnsdist's
// generateOCSPResponse; the Manager's generate source and the dev PKI use it.
func Generate(leaf, issuer *x509.Certificate, signer crypto.Signer, thisUpdate, nextUpdate time.Time) ([]byte, error) {
	if leaf == nil || issuer == nil || signer == nil {
		return nil, errors.New("ocsp: generate needs the certificate, its issuer and the issuer's key")
	}
	if !nextUpdate.After(thisUpdate) {
		return nil, fmt.Errorf("ocsp: generate: nextUpdate %s is not after thisUpdate %s", ts(nextUpdate), ts(thisUpdate))
	}
	if err := leaf.CheckSignatureFrom(issuer); err != nil {
		return nil, fmt.Errorf("ocsp: generate: certificate %q (serial %s) was not issued by %q: %v",
			leaf.Subject.String(), FormatSerial(leaf.SerialNumber), issuer.Subject.String(), err)
	}
	if !samePublicKey(signer.Public(), issuer.PublicKey) {
		return nil, fmt.Errorf("ocsp: generate: key does not match CA certificate %q", issuer.Subject.String())
	}
	der, err := xocsp.CreateResponse(issuer, issuer, xocsp.Response{
		Status:       xocsp.Good,
		SerialNumber: leaf.SerialNumber,
		ThisUpdate:   thisUpdate,
		NextUpdate:   nextUpdate,
		IssuerHash:   crypto.SHA256,
	}, signer)
	if err != nil {
		return nil, fmt.Errorf("ocsp: generate: %v", err)
	}
	return der, nil
}

func samePublicKey(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	ea, ok := a.(equaler)
	return ok && ea.Equal(b)
}

// WriteFileAtomic writes data to path so that readers see either the old
// file or the whole new one: a temporary file in the same directory (rename
// is atomic only within a file system), fsync, rename, then fsync of the
// directory so the rename survives a crash.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // best effort: some file systems refuse to sync a directory
		d.Close()
	}
	return nil
}

// ReadChainFile reads a PEM file of certificates. The first one is the leaf,
// the rest (if any) its chain, as in a server's certificate file.
func ReadChainFile(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ocsp: %w", err)
	}
	var chain []*x509.Certificate
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("ocsp: %s: certificate %d: %v", path, len(chain)+1, err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("ocsp: %s: no PEM CERTIFICATE block", path)
	}
	return chain, nil
}

// ReadCertFile returns the first certificate of a PEM file.
func ReadCertFile(path string) (*x509.Certificate, error) {
	chain, err := ReadChainFile(path)
	if err != nil {
		return nil, err
	}
	return chain[0], nil
}

// ReadKeyFile reads a PEM private key: PKCS#8, SEC 1 EC or PKCS#1 RSA.
func ReadKeyFile(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ocsp: %w", err)
	}
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, fmt.Errorf("ocsp: %s: no PEM private key block", path)
		}
		var key any
		switch b.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		default:
			continue // EC PARAMETERS and the like
		}
		if err != nil {
			return nil, fmt.Errorf("ocsp: %s: %s: %v", path, b.Type, err)
		}
		switch k := key.(type) {
		case *ecdsa.PrivateKey, *rsa.PrivateKey, ed25519.PrivateKey:
			return k.(crypto.Signer), nil
		default:
			return nil, fmt.Errorf("ocsp: %s: unsupported key type %T", path, key)
		}
	}
}

// EncodeKeyPEM encodes a private key as PKCS#8 PEM.
func EncodeKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// EncodeCertsPEM encodes certificates as concatenated PEM blocks.
func EncodeCertsPEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// GenerateFiles is the file-level form of Generate used by
// `dnsfront ocsp generate` and the dev PKI: the first certificate of
// certFile, the CA of caCertFile and caKeyFile, written atomically to out.
func GenerateFiles(certFile, caCertFile, caKeyFile, out string, thisUpdate, nextUpdate time.Time) (*Staple, error) {
	leaf, err := ReadCertFile(certFile)
	if err != nil {
		return nil, err
	}
	ca, err := ReadCertFile(caCertFile)
	if err != nil {
		return nil, err
	}
	key, err := ReadKeyFile(caKeyFile)
	if err != nil {
		return nil, err
	}
	der, err := Generate(leaf, ca, key, thisUpdate, nextUpdate)
	if err != nil {
		return nil, fmt.Errorf("%w (certificate %s, CA %s, key %s)", err, certFile, caCertFile, caKeyFile)
	}
	// Checked as of thisUpdate-Skew so that a window shorter than Skew (a
	// test's few minutes) still passes the signature and CertID checks.
	s, err := Validate(der, leaf, ca, thisUpdate.Add(-Skew))
	if err != nil {
		return nil, fmt.Errorf("ocsp: generated response does not validate: %w", err)
	}
	if err := WriteFileAtomic(out, der, 0o644); err != nil {
		return nil, fmt.Errorf("ocsp: %w", err)
	}
	return s, nil
}
