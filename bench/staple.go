package bench

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/crypto/ocsp"
)

// stapleSkew is how far in the future a staple's thisUpdate may be and still
// count as valid: the clocks of a responder and of this client differ a
// little, and OCSP responders commonly backdate by minutes for that reason.
const stapleSkew = 5 * time.Minute

// stapleChecker validates the OCSP responses servers staple. Every handshake
// of a run usually carries the same staple for the same leaf, and an ECDSA or
// RSA signature check per handshake would take CPU from the server sharing
// the machine, so parsed responses are cached by (staple, leaf, issuer);
// the time window is checked again on every use. Safe for concurrent use.
type stapleChecker struct {
	roots []*x509.Certificate // from the CA file: candidate issuers

	mu    sync.Mutex
	cache map[string]stapleVerdict
}

type stapleVerdict struct {
	resp *ocsp.Response
	err  error
}

// check returns nil when staple is a good OCSP response for the served leaf
// chain[0], signed by its issuer (from the chain or the CA file) or by a
// responder the issuer delegated to, inside its validity window at now.
func (c *stapleChecker) check(staple []byte, chain []*x509.Certificate, now time.Time) error {
	if len(staple) == 0 {
		return errNoStaple
	}
	if len(chain) == 0 {
		return errors.New("no peer certificate")
	}
	leaf := chain[0]
	var key []byte
	key = append(key, staple...)
	key = append(key, leaf.Raw...)
	if len(chain) > 1 {
		key = append(key, chain[1].Raw...)
	}
	c.mu.Lock()
	v, ok := c.cache[string(key)]
	c.mu.Unlock()
	if !ok {
		v.resp, v.err = c.parse(staple, chain)
		c.mu.Lock()
		if c.cache == nil {
			c.cache = make(map[string]stapleVerdict)
		}
		if len(c.cache) > 64 { // staples rotate rarely; never grow without bound
			clear(c.cache)
		}
		c.cache[string(key)] = v
		c.mu.Unlock()
	}
	if v.err != nil {
		return v.err
	}
	r := v.resp
	if r.ThisUpdate.After(now.Add(stapleSkew)) {
		return fmt.Errorf("staple thisUpdate %s is in the future", r.ThisUpdate.Format(time.RFC3339))
	}
	if !r.NextUpdate.IsZero() && !now.Before(r.NextUpdate) {
		return fmt.Errorf("staple expired at nextUpdate %s", r.NextUpdate.Format(time.RFC3339))
	}
	return nil
}

var errNoStaple = errors.New("no staple")

func (c *stapleChecker) parse(staple []byte, chain []*x509.Certificate) (*ocsp.Response, error) {
	leaf := chain[0]
	issuer := c.issuerOf(chain)
	if issuer == nil {
		return nil, fmt.Errorf("no issuer for %s (serial 0x%x) in the peer chain or the CA file", leaf.Subject, leaf.SerialNumber)
	}
	// ParseResponseForCert picks the single response for leaf's serial and
	// checks the signature against issuer, or against an embedded responder
	// certificate which it checks was signed by issuer.
	r, err := ocsp.ParseResponseForCert(staple, leaf, issuer)
	if err != nil {
		return nil, fmt.Errorf("staple for serial 0x%x: %w", leaf.SerialNumber, err)
	}
	if r.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		return nil, fmt.Errorf("staple is for serial 0x%x, certificate has 0x%x", r.SerialNumber, leaf.SerialNumber)
	}
	if r.Certificate != nil && !bytes.Equal(r.Certificate.Raw, issuer.Raw) && !hasOCSPSigning(r.Certificate) {
		return nil, fmt.Errorf("staple signed by %s, which is not the issuer and lacks the OCSPSigning usage", r.Certificate.Subject)
	}
	switch r.Status {
	case ocsp.Good:
	case ocsp.Revoked:
		return nil, fmt.Errorf("staple says serial 0x%x is revoked (reason %d) since %s", leaf.SerialNumber, r.RevocationReason, r.RevokedAt.Format(time.RFC3339))
	default:
		return nil, fmt.Errorf("staple status for serial 0x%x is unknown", leaf.SerialNumber)
	}
	return r, nil
}

func hasOCSPSigning(c *x509.Certificate) bool {
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageOCSPSigning {
			return true
		}
	}
	return false
}

// issuerOf finds the certificate that signed the leaf: the next certificate
// of the peer's chain if it did, else a certificate from the CA file.
func (c *stapleChecker) issuerOf(chain []*x509.Certificate) *x509.Certificate {
	leaf := chain[0]
	candidates := append(append([]*x509.Certificate(nil), chain[1:]...), c.roots...)
	for _, cand := range candidates {
		if bytes.Equal(cand.RawSubject, leaf.RawIssuer) && leaf.CheckSignatureFrom(cand) == nil {
			return cand
		}
	}
	return nil
}
