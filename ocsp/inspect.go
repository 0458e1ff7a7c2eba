package ocsp

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"

	xocsp "golang.org/x/crypto/ocsp"
)

// Check is one verdict of Inspect.
type Check struct {
	Name    string
	OK      bool
	Skipped bool // lacking the certificate or the issuer
	Detail  string
}

// Report describes a response for `dnsfront ocsp inspect`. Fields other
// than Checks and Err are zero when the response does not parse that far.
type Report struct {
	ResponseStatus string
	CertStatus     string
	Serial         *big.Int
	ThisUpdate     time.Time
	NextUpdate     time.Time
	ProducedAt     time.Time
	RevokedAt      time.Time
	Reason         string
	Signer         string // responder ID or embedded signer certificate
	HashAlgorithm  string
	Checks         []Check
	// Err is nil when the response is usable: with leaf and issuer it is
	// exactly Validate's verdict, with leaf alone ValidateUnverified's, so
	// inspect never disagrees with the server.
	Err error
	// Unverified: usable, but with leaf alone the signature was not checked
	// (the server staples it with status "signature not verified: issuer
	// unknown").
	Unverified bool
}

// Inspect runs the checks of Validate one by one and reports each, so that
// an operator sees every problem of a response, not only the first. leaf
// and issuer may be nil: the checks that need them are reported as skipped
// and the response is judged on the rest.
func Inspect(der []byte, leaf, issuer *x509.Certificate, now time.Time) *Report {
	r := &Report{}
	add := func(name string, err error, okDetail string) bool {
		c := Check{Name: name, OK: err == nil, Detail: okDetail}
		if err != nil {
			c.Detail = err.Error()
			if r.Err == nil {
				r.Err = err
			}
		}
		r.Checks = append(r.Checks, c)
		return err == nil
	}
	skip := func(name, why string) {
		r.Checks = append(r.Checks, Check{Name: name, OK: true, Skipped: true, Detail: why})
	}
	if len(der) == 0 {
		add("parses", ErrEmpty, "")
		return r
	}
	single, err := rawSingleResponse(der)
	var rse *ResponseStatusError
	if errors.As(err, &rse) {
		r.ResponseStatus = fmt.Sprintf("%s (%d)", rse.Status, int(rse.Status))
		add("parses", nil, "DER")
		add("response status successful", err, "")
		return r
	}
	r.ResponseStatus = "successful (0)"
	if !add("parses", err, "DER, one basic response") {
		return r
	}
	resp, err := xocsp.ParseResponse(der, nil)
	if !add("single response parses", err, "one SingleResponse") {
		return r
	}
	r.Serial, r.ThisUpdate, r.NextUpdate, r.ProducedAt = resp.SerialNumber, resp.ThisUpdate, resp.NextUpdate, resp.ProducedAt
	r.HashAlgorithm = resp.IssuerHash.String()
	switch resp.Status {
	case xocsp.Good:
		r.CertStatus = "good"
	case xocsp.Revoked:
		r.CertStatus, r.RevokedAt, r.Reason = "revoked", resp.RevokedAt, ReasonString(resp.RevocationReason)
	default:
		r.CertStatus = "unknown"
	}
	switch {
	case resp.Certificate != nil:
		r.Signer = resp.Certificate.Subject.String() + " (embedded certificate)"
	case resp.RawResponderName != nil:
		r.Signer = "responder name " + rdnString(resp.RawResponderName)
	default:
		r.Signer = fmt.Sprintf("responder key hash %x", resp.ResponderKeyHash)
	}
	if leaf != nil {
		add("serial matches certificate", checkSerial(single, leaf), FormatSerial(leaf.SerialNumber))
	} else {
		skip("serial matches certificate", "no --cert")
	}
	if leaf != nil && issuer == nil {
		// As the server does for a leaf-only configuration.
		if issuer = IssuerFromResponse(der, leaf); issuer != nil {
			add("issuer found", nil, "embedded in the response: "+issuer.Subject.String())
		}
	}
	if issuer != nil {
		add("issuer name and key hashes", checkIssuerHashes(single, resp.IssuerHash, issuer), issuer.Subject.String())
		signer, delegated, err := checkSigner(resp, issuer, now)
		detail := "by the issuer " + signer
		if delegated {
			detail = "by delegated responder " + signer
			r.Signer = signer + " (delegated responder)"
		} else if err == nil {
			r.Signer = signer + " (issuer)"
		}
		add("signature", err, detail)
	} else if leaf != nil {
		add("issuer name hash", checkIssuerName(single, resp.IssuerHash, leaf), "the certificate's issuer "+leaf.Issuer.String())
		compared, err := checkKeyHashAKI(single, resp.IssuerHash, leaf)
		if compared {
			add("issuer key hash", err, fmt.Sprintf("the certificate's authority key identifier %x", leaf.AuthorityKeyId))
		} else {
			skip("issuer key hash", fmt.Sprintf("not comparable with the certificate's authority key identifier (%s CertID)", resp.IssuerHash))
		}
		skip("signature", ErrIssuerUnknown+" (pass --issuer)")
	} else {
		skip("issuer name and key hashes", "no issuer")
		skip("signature", "no issuer")
	}
	add("certificate status good", checkStatus(resp), "good")
	add("thisUpdate <= now + skew", checkThisUpdate(resp, now), ts(resp.ThisUpdate))
	add("now + skew < nextUpdate", checkNextUpdate(resp, now), fmt.Sprintf("%s (in %s)", ts(resp.NextUpdate), resp.NextUpdate.Sub(now).Round(time.Second)))
	if leaf != nil && issuer != nil {
		// The authoritative verdict: whatever the checks above say, usable
		// means Validate accepts it.
		_, r.Err = Validate(der, leaf, issuer, now)
	} else if leaf != nil {
		_, r.Err = ValidateUnverified(der, leaf, now)
		r.Unverified = r.Err == nil
	}
	return r
}

func rdnString(raw []byte) string {
	var rdn pkix.RDNSequence
	if rest, err := asn1.Unmarshal(raw, &rdn); err != nil || len(rest) > 0 {
		return fmt.Sprintf("%x", raw)
	}
	var n pkix.Name
	n.FillFromRDNSequence(&rdn)
	return n.String()
}
