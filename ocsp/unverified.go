package ocsp

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	xocsp "golang.org/x/crypto/ocsp"
)

// ErrIssuerUnknown is the status detail of a staple served with its
// signature unchecked, as the status API and the CLI show it.
const ErrIssuerUnknown = "signature not verified: issuer unknown"

// ValidateUnverified checks of der everything that needs no issuer key, for
// a certificate whose issuer cannot be found (a dnsdist configuration points
// at the leaf alone): it parses and is successful, holds exactly one
// SingleResponse, for leaf's serial, whose issuerNameHash is the hash of
// leaf's issuer name, whose issuerKeyHash matches leaf's Authority Key
// Identifier where the two can be compared (see checkKeyHashAKI), with
// status good and thisUpdate <= now+Skew < nextUpdate. The returned Staple
// has Unverified set. A response for another certificate fails here as it
// does in Validate; only the signature is left unchecked (clients check it).
func ValidateUnverified(der []byte, leaf *x509.Certificate, now time.Time) (*Staple, error) {
	if len(der) == 0 {
		return nil, ErrEmpty
	}
	if leaf == nil {
		return nil, errors.New("ocsp: validate needs the certificate")
	}
	// The embedded certificate's signature that parseForLeaf checks proves
	// nothing about the issuer here.
	single, resp, err := parseForLeaf(der, leaf)
	if err != nil {
		return nil, err
	}
	if err := checkIssuerName(single, resp.IssuerHash, leaf); err != nil {
		return nil, err
	}
	if _, err := checkKeyHashAKI(single, resp.IssuerHash, leaf); err != nil {
		return nil, err
	}
	st, err := stapleIfCurrent(der, leaf, resp, now)
	if err != nil {
		return nil, err
	}
	st.Unverified = true
	return st, nil
}

// checkIssuerName compares the CertID's issuerNameHash with the hash of the
// issuer name the certificate carries (its RawIssuer is the issuer's
// RawSubject, byte for byte, in any certificate that chains).
func checkIssuerName(single *rawSingle, h crypto.Hash, leaf *x509.Certificate) error {
	if !h.Available() {
		return fmt.Errorf("%w: CertID hash %v not available", ErrMalformed, h)
	}
	if !bytes.Equal(hashOf(h, leaf.RawIssuer), single.CertID.NameHash) {
		return fmt.Errorf("%w: issuer name hash does not match the certificate's issuer %q",
			ErrWrongCert, leaf.Issuer.String())
	}
	return nil
}

// checkKeyHashAKI compares the CertID's issuerKeyHash (the hash of the
// issuer's public key) with the certificate's Authority Key Identifier, the
// issuer's own key identifier. It reports whether they could be compared.
//
//   - Equal: RFC 5280 method 1 (SHA-1 of the key) with a SHA-1 CertID, the
//     pairing of public CAs, openssl-made CAs and `openssl ocsp`.
//   - The AKI is the leftmost 160 bits of a longer CertID hash: RFC 7093
//     methods 1-3 (Go 1.25 and later derive key identifiers this way).
//   - A SHA-1 CertID and a 20-byte AKI that differ: another issuer key. A CA
//     that derives 20-byte identifiers otherwise (RFC 7093 with Go 1.25 or
//     later) cannot be told apart from that; its operator sets issuer:.
//   - Anything else (no AKI, a SHA-256 CertID with a SHA-1 AKI, a full
//     SHA-256 of the whole key info): not comparable, not a failure.
func checkKeyHashAKI(single *rawSingle, h crypto.Hash, leaf *x509.Certificate) (bool, error) {
	kh, aki := single.CertID.IssuerKeyHash, leaf.AuthorityKeyId
	switch {
	case len(aki) == 0:
		return false, nil
	case bytes.Equal(kh, aki):
		return true, nil
	case len(aki) == 20 && len(kh) > 20 && bytes.Equal(kh[:20], aki):
		return true, nil
	case h == crypto.SHA1 && len(aki) == 20:
		return true, fmt.Errorf("%w: issuer key hash %x does not match the certificate's authority key identifier %x "+
			"(a response for another issuer key, or a CA that does not derive key identifiers with SHA-1: set issuer:)",
			ErrWrongCert, kh, aki)
	default:
		return false, nil
	}
}

// LoadFileUnverified reads a DER OCSP response from path for a leaf whose
// issuer is unknown: it is checked with Validate when the response embeds
// the issuer (IssuerFromResponse), else with ValidateUnverified. Its errors
// start with the file name.
func LoadFileUnverified(path string, leaf *x509.Certificate, now time.Time) (*Staple, error) {
	der, err := readResponseFile(path)
	if err != nil {
		return nil, err
	}
	var s *Staple
	if issuer := IssuerFromResponse(der, leaf); issuer != nil {
		s, err = Validate(der, leaf, issuer, now)
	} else {
		s, err = ValidateUnverified(der, leaf, now)
	}
	if err != nil {
		return nil, &FileError{Path: path, Err: err}
	}
	return s, nil
}

func readResponseFile(path string) ([]byte, error) {
	der, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ocsp: %w", err)
	}
	if len(der) == 0 {
		return nil, fmt.Errorf("ocsp: %s: %w: file is empty", path, ErrEmpty)
	}
	return der, nil
}

// IssuerFromFiles returns the first certificate in files (PEM, any number
// of certificates each) that issued leaf, or nil. Files that do not load
// are skipped: they are candidates, and the configuration key that names
// them reports its own errors. read caches files across calls (nil: none).
func IssuerFromFiles(leaf *x509.Certificate, files []string, read map[string][]*x509.Certificate) *x509.Certificate {
	for _, f := range files {
		certs, ok := read[f]
		if !ok {
			certs, _ = ReadChainFile(f)
			if read != nil {
				read[f] = certs
			}
		}
		for _, c := range certs {
			if c.IsCA && bytes.Equal(c.RawSubject, leaf.RawIssuer) && leaf.CheckSignatureFrom(c) == nil {
				return c
			}
		}
	}
	return nil
}

// IssuerFromResponse returns the certificate embedded in der when it is the
// issuer of leaf (it signed leaf and carries leaf's issuer name), or nil.
// `openssl ocsp` run as a responder with the CA as signer embeds it, so a
// leaf-only configuration whose files come from such a responder is fully
// checked: the embedded certificate is trusted for what its key proves
// (that it signed the leaf), not for being there.
func IssuerFromResponse(der []byte, leaf *x509.Certificate) *x509.Certificate {
	resp, err := xocsp.ParseResponse(der, nil)
	if err != nil || resp.Certificate == nil {
		return nil
	}
	c := resp.Certificate
	if !c.IsCA || !bytes.Equal(c.RawSubject, leaf.RawIssuer) || leaf.CheckSignatureFrom(c) != nil {
		return nil
	}
	return c
}

// unverifiedHint is how the warning about an unverified staple tells the
// operator to fix it.
func unverifiedHint(leaf *x509.Certificate) string {
	var b strings.Builder
	fmt.Fprintf(&b, "set issuer: to the certificate of %q", leaf.Issuer.String())
	b.WriteString(" (or append it to the certificate file) so that the response's signature is checked")
	return b.String()
}
