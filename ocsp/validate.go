package ocsp

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"

	xocsp "golang.org/x/crypto/ocsp"
)

// Skew is how far the validator lets the responder's clock run ahead of ours
// and how early it considers a response expired. Responders stamp thisUpdate
// with their own clock and some do not backdate it: a server whose clock lags
// by a minute or two would otherwise reject every fresh response. On the
// other side, a client whose clock runs ahead of ours would reject a staple in
// its last minutes, so we stop accepting (and serving) it Skew before its
// nextUpdate. Five minutes is the tolerance Kerberos and most TLS clients use.
const Skew = 5 * time.Minute

// Certificate statuses of a response, as in RFC 6960 (and x/crypto/ocsp).
const (
	StatusGood    = xocsp.Good
	StatusRevoked = xocsp.Revoked
	StatusUnknown = xocsp.Unknown
)

// Sentinel errors that errors.Is recognises in what Validate, LoadFile and
// the Manager return.
var (
	ErrRevoked      = errors.New("ocsp: certificate is revoked")
	ErrUnknown      = errors.New("ocsp: responder does not know the certificate")
	ErrTryLater     = errors.New("ocsp: responder asks to try later")
	ErrExpired      = errors.New("ocsp: response is expired")
	ErrNotYetValid  = errors.New("ocsp: response is not yet valid")
	ErrWrongCert    = errors.New("ocsp: response is for another certificate")
	ErrBadSignature = errors.New("ocsp: bad response signature")
	ErrMalformed    = errors.New("ocsp: malformed response")
	ErrEmpty        = errors.New("ocsp: empty response")
)

// Staple is a validated OCSP response, ready to be stapled. It is immutable
// once returned: share it between goroutines freely.
type Staple struct {
	DER        []byte
	Serial     *big.Int
	Status     int // StatusGood for every Staple Validate returns
	ThisUpdate time.Time
	NextUpdate time.Time
	ProducedAt time.Time
	// Signer is the subject of the certificate that signed the response:
	// the issuer, or the delegated responder when Delegated is true.
	Signer    string
	Delegated bool
	// IssuerHash is the hash of the CertID (SHA-1 or SHA-256 in practice).
	IssuerHash crypto.Hash
	// Unverified is true for a response whose signature could not be
	// checked because the issuer is unknown (ValidateUnverified): Signer is
	// then empty.
	Unverified bool
}

// Expiry is the instant the staple stops being served: nextUpdate less Skew,
// the same bound Validate applies to a new response.
func (s *Staple) Expiry() time.Time { return s.NextUpdate.Add(-Skew) }

// RevokedError reports a revoked certificate. errors.Is(err, ErrRevoked)
// holds for it.
type RevokedError struct {
	Serial    *big.Int
	RevokedAt time.Time
	Reason    int // RFC 5280 CRLReason
}

func (e *RevokedError) Error() string {
	return fmt.Sprintf("ocsp: certificate serial %s revoked at %s, reason %s",
		FormatSerial(e.Serial), e.RevokedAt.UTC().Format(time.RFC3339), ReasonString(e.Reason))
}

// Is makes errors.Is(err, ErrRevoked) true.
func (e *RevokedError) Is(target error) bool { return target == ErrRevoked }

// ResponseStatusError is a response whose responseStatus is not successful.
// errors.Is(err, ErrTryLater) holds when the status is tryLater.
type ResponseStatusError struct {
	Status xocsp.ResponseStatus
}

func (e *ResponseStatusError) Error() string {
	return fmt.Sprintf("ocsp: response status %s (%d)", e.Status, int(e.Status))
}

// Is makes errors.Is(err, ErrTryLater) true for tryLater.
func (e *ResponseStatusError) Is(target error) bool {
	return target == ErrTryLater && e.Status == xocsp.TryLater
}

// reasonNames are RFC 5280 section 5.3.1 CRLReason values.
var reasonNames = map[int]string{
	0: "unspecified", 1: "keyCompromise", 2: "cACompromise", 3: "affiliationChanged",
	4: "superseded", 5: "cessationOfOperation", 6: "certificateHold",
	8: "removeFromCRL", 9: "privilegeWithdrawn", 10: "aACompromise",
}

// ReasonString names an RFC 5280 revocation reason.
func ReasonString(reason int) string {
	if s, ok := reasonNames[reason]; ok {
		return s
	}
	return fmt.Sprintf("reason(%d)", reason)
}

// FormatSerial renders a serial the way errors and logs show it: 0x1a2b.
func FormatSerial(n *big.Int) string {
	if n == nil {
		return "<nil>"
	}
	return "0x" + n.Text(16)
}

// The parts of RFC 6960's BasicOCSPResponse that x/crypto/ocsp parses but
// does not expose: the number of SingleResponses and the CertID hashes.
type rawResponse struct {
	Status   asn1.Enumerated
	Response struct {
		ResponseType asn1.ObjectIdentifier
		Response     []byte
	} `asn1:"explicit,tag:0,optional"`
}

type rawBasic struct {
	TBS struct {
		Raw         asn1.RawContent
		Version     int `asn1:"optional,explicit,default:0,tag:0"`
		ResponderID asn1.RawValue
		ProducedAt  time.Time `asn1:"generalized"`
		Responses   []rawSingle
	}
	SignatureAlgorithm pkix.AlgorithmIdentifier
	Signature          asn1.BitString
	Certificates       []asn1.RawValue `asn1:"explicit,tag:0,optional"`
}

type rawSingle struct {
	CertID struct {
		HashAlgorithm pkix.AlgorithmIdentifier
		NameHash      []byte
		IssuerKeyHash []byte
		SerialNumber  *big.Int
	}
	// certStatus, thisUpdate, nextUpdate and extensions follow; encoding/asn1
	// ignores the elements a struct does not name, and x/crypto parses them.
}

var oidOCSPBasic = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 1}

// rawSingleResponse returns the one SingleResponse's CertID, or an error
// when the response holds none or several.
// parseForLeaf parses der, checks that its single response is for leaf's
// serial, and returns the raw single response and x/crypto's parse of it.
// Parsing with no issuer makes x/crypto check only the signature of an
// embedded certificate over the response: who signed is for the caller.
func parseForLeaf(der []byte, leaf *x509.Certificate) (*rawSingle, *xocsp.Response, error) {
	single, err := rawSingleResponse(der)
	if err != nil {
		return nil, nil, err
	}
	if err := checkSerial(single, leaf); err != nil {
		return nil, nil, err
	}
	resp, err := xocsp.ParseResponse(der, nil)
	if err != nil {
		var pe xocsp.ParseError
		if errors.As(err, &pe) && bytes.Contains([]byte(pe), []byte("signature")) {
			return nil, nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
		}
		return nil, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return single, resp, nil
}

func rawSingleResponse(der []byte) (*rawSingle, error) {
	var outer rawResponse
	if rest, err := asn1.Unmarshal(der, &outer); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	} else if len(rest) > 0 {
		return nil, fmt.Errorf("%w: %d bytes of trailing data", ErrMalformed, len(rest))
	}
	if outer.Status != 0 {
		return nil, &ResponseStatusError{Status: xocsp.ResponseStatus(outer.Status)}
	}
	if !outer.Response.ResponseType.Equal(oidOCSPBasic) {
		return nil, fmt.Errorf("%w: response type %v is not id-pkix-ocsp-basic", ErrMalformed, outer.Response.ResponseType)
	}
	var basic rawBasic
	if _, err := asn1.Unmarshal(outer.Response.Response, &basic); err != nil {
		return nil, fmt.Errorf("%w: basic response: %v", ErrMalformed, err)
	}
	if n := len(basic.TBS.Responses); n != 1 {
		return nil, fmt.Errorf("%w: %d single responses, want exactly 1", ErrMalformed, n)
	}
	return &basic.TBS.Responses[0], nil
}

// Validate checks that der is an OCSP response that may be stapled to leaf
// at time now: it parses, its responseStatus is successful, it holds exactly
// one SingleResponse, for leaf's serial and issuer (name and key hashes), it
// is signed by issuer or by a delegated responder certificate that issuer
// signed and that carries the OCSPSigning extended key usage, the status is
// good, and thisUpdate <= now+Skew < nextUpdate.
//
// A nextUpdate later than the certificate's NotAfter is accepted: short-lived
// certificates routinely get responses that outlive them. A response without
// nextUpdate is rejected: RFC 6960 section 4.2.2.1 says it means "newer
// information is always available", so it cannot be cached, and a staple
// without an end could be served forever.
//
// Errors match the sentinels with errors.Is (ErrRevoked, ErrUnknown,
// ErrTryLater, ErrExpired, ErrWrongCert, ErrBadSignature, ErrMalformed, ...);
// a revoked certificate yields a *RevokedError with the time and reason.
func Validate(der []byte, leaf, issuer *x509.Certificate, now time.Time) (*Staple, error) {
	if len(der) == 0 {
		return nil, ErrEmpty
	}
	if leaf == nil || issuer == nil {
		return nil, errors.New("ocsp: validate needs the certificate and its issuer")
	}
	// The chain to the issuer is checked below, with the EKU x/crypto does
	// not look at.
	single, resp, err := parseForLeaf(der, leaf)
	if err != nil {
		return nil, err
	}
	if err := checkIssuerHashes(single, resp.IssuerHash, issuer); err != nil {
		return nil, err
	}
	signer, delegated, err := checkSigner(resp, issuer, now)
	if err != nil {
		return nil, err
	}
	st, err := stapleIfCurrent(der, leaf, resp, now)
	if err != nil {
		return nil, err
	}
	st.Signer, st.Delegated = signer, delegated
	return st, nil
}

// stapleIfCurrent checks that resp says good and that now is inside its window, and
// returns the Staple it makes.
func stapleIfCurrent(der []byte, leaf *x509.Certificate, resp *xocsp.Response, now time.Time) (*Staple, error) {
	if err := checkStatus(resp); err != nil {
		return nil, err
	}
	// nextUpdate first: a window that ends before it starts is malformed,
	// whatever the clock says.
	if err := checkNextUpdate(resp, now); err != nil {
		return nil, err
	}
	if err := checkThisUpdate(resp, now); err != nil {
		return nil, err
	}
	return &Staple{
		DER:        der,
		Serial:     new(big.Int).Set(leaf.SerialNumber),
		Status:     resp.Status,
		ThisUpdate: resp.ThisUpdate,
		NextUpdate: resp.NextUpdate,
		ProducedAt: resp.ProducedAt,
		IssuerHash: resp.IssuerHash,
	}, nil
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// checkSerial compares the CertID's serial with the certificate's.
func checkSerial(single *rawSingle, leaf *x509.Certificate) error {
	if single.CertID.SerialNumber == nil || single.CertID.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		return fmt.Errorf("%w: response is for serial %s, certificate has %s",
			ErrWrongCert, FormatSerial(single.CertID.SerialNumber), FormatSerial(leaf.SerialNumber))
	}
	return nil
}

// checkStatus accepts only good: a *RevokedError for revoked, ErrUnknown
// otherwise.
func checkStatus(resp *xocsp.Response) error {
	switch resp.Status {
	case xocsp.Good:
		return nil
	case xocsp.Revoked:
		return &RevokedError{Serial: resp.SerialNumber, RevokedAt: resp.RevokedAt, Reason: resp.RevocationReason}
	default:
		return fmt.Errorf("%w: status unknown for serial %s", ErrUnknown, FormatSerial(resp.SerialNumber))
	}
}

// checkThisUpdate rejects a response from the future, beyond Skew.
func checkThisUpdate(resp *xocsp.Response, now time.Time) error {
	if resp.ThisUpdate.After(now.Add(Skew)) {
		return fmt.Errorf("%w: thisUpdate %s is in the future (now %s)", ErrNotYetValid, ts(resp.ThisUpdate), ts(now))
	}
	return nil
}

// checkNextUpdate requires a nextUpdate after thisUpdate, and more than
// Skew away.
func checkNextUpdate(resp *xocsp.Response, now time.Time) error {
	if resp.NextUpdate.IsZero() {
		return fmt.Errorf("%w: response has no nextUpdate and cannot be cached", ErrMalformed)
	}
	if !resp.NextUpdate.After(resp.ThisUpdate) {
		return fmt.Errorf("%w: nextUpdate %s is not after thisUpdate %s", ErrMalformed, ts(resp.NextUpdate), ts(resp.ThisUpdate))
	}
	if !now.Add(Skew).Before(resp.NextUpdate) {
		return fmt.Errorf("%w: nextUpdate %s has passed (now %s, skew %s)", ErrExpired, ts(resp.NextUpdate), ts(now), Skew)
	}
	return nil
}

// checkIssuerHashes compares the CertID's issuer name and key hashes with
// the ones computed from issuer: a serial alone is only unique per CA.
func checkIssuerHashes(single *rawSingle, h crypto.Hash, issuer *x509.Certificate) error {
	if !h.Available() {
		return fmt.Errorf("%w: CertID hash %v not available", ErrMalformed, h)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(issuer.RawSubjectPublicKeyInfo, &spki); err != nil {
		return fmt.Errorf("ocsp: issuer public key: %v", err)
	}
	if !bytes.Equal(hashOf(h, issuer.RawSubject), single.CertID.NameHash) {
		return fmt.Errorf("%w: issuer name hash does not match %q", ErrWrongCert, issuer.Subject.String())
	}
	hk := h.New()
	hk.Write(spki.PublicKey.RightAlign())
	if !bytes.Equal(hk.Sum(nil), single.CertID.IssuerKeyHash) {
		return fmt.Errorf("%w: issuer key hash does not match %q", ErrWrongCert, issuer.Subject.String())
	}
	return nil
}

func hashOf(h crypto.Hash, b []byte) []byte {
	hn := h.New()
	hn.Write(b)
	return hn.Sum(nil)
}

// checkSigner accepts a response signed by the issuer itself, or by an
// embedded delegated responder certificate (RFC 6960 section 4.2.2.2) that
// the issuer signed, that carries id-kp-OCSPSigning and is valid now.
func checkSigner(resp *xocsp.Response, issuer *x509.Certificate, now time.Time) (string, bool, error) {
	rc := resp.Certificate
	if rc == nil || bytes.Equal(rc.Raw, issuer.Raw) {
		if err := resp.CheckSignatureFrom(issuer); err != nil {
			return "", false, fmt.Errorf("%w: not signed by issuer %q: %v", ErrBadSignature, issuer.Subject.String(), err)
		}
		return issuer.Subject.String(), false, nil
	}
	// ParseResponse already verified the response signature with rc's key.
	if err := rc.CheckSignatureFrom(issuer); err != nil {
		return "", false, fmt.Errorf("%w: responder certificate %q is not signed by issuer %q: %v",
			ErrBadSignature, rc.Subject.String(), issuer.Subject.String(), err)
	}
	hasEKU := false
	for _, u := range rc.ExtKeyUsage {
		if u == x509.ExtKeyUsageOCSPSigning {
			hasEKU = true
		}
	}
	if !hasEKU {
		return "", false, fmt.Errorf("%w: responder certificate %q lacks the OCSPSigning extended key usage",
			ErrBadSignature, rc.Subject.String())
	}
	if now.Before(rc.NotBefore) || now.After(rc.NotAfter) {
		return "", false, fmt.Errorf("%w: responder certificate %q is not valid at %s (valid %s to %s)",
			ErrBadSignature, rc.Subject.String(), ts(now), ts(rc.NotBefore), ts(rc.NotAfter))
	}
	return rc.Subject.String(), true, nil
}

// LoadFile reads a DER OCSP response from path and validates it with
// Validate. Its errors start with the file name.
func LoadFile(path string, leaf, issuer *x509.Certificate, now time.Time) (*Staple, error) {
	der, err := readResponseFile(path)
	if err != nil {
		return nil, err
	}
	s, err := Validate(der, leaf, issuer, now)
	if err != nil {
		return nil, &FileError{Path: path, Err: err}
	}
	return s, nil
}

// FileError names the file an error came from. Unwrap gives the validation
// error, so errors.Is works through it.
type FileError struct {
	Path string
	Err  error
}

func (e *FileError) Error() string {
	msg := e.Err.Error()
	const prefix = "ocsp: "
	if len(msg) > len(prefix) && msg[:len(prefix)] == prefix {
		msg = msg[len(prefix):]
	}
	return prefix + e.Path + ": " + msg
}

func (e *FileError) Unwrap() error { return e.Err }
