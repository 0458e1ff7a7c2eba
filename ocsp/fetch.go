package ocsp

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	xocsp "golang.org/x/crypto/ocsp"
)

// Attempt results, as they appear in logs, status and metrics.
const (
	ResultOK          = "ok"
	ResultHTTPError   = "http_error" // connection failed or non-200 answer
	ResultTimeout     = "timeout"
	ResultInvalid     = "invalid" // unparsable, badly signed, other certificate, expired
	ResultRevoked     = "revoked"
	ResultUnknown     = "unknown"
	ResultTryLater    = "try_later"
	ResultIssuerError = "issuer_error" // the issuer could not be fetched (AIA caIssuers)
	ResultError       = "error"        // a local failure (minting)
)

// getLimit is RFC 6960 Appendix A.1's bound: requests whose base64 encoding
// is under 255 bytes may use GET, which lets CDNs in front of responders
// cache the answer; larger ones must be POSTed.
const getLimit = 255

// fetchError carries the result class of a failed HTTP exchange.
type fetchError struct {
	result string
	err    error
}

func (e *fetchError) Error() string { return e.err.Error() }
func (e *fetchError) Unwrap() error { return e.err }

// Classify maps an error from Validate, Fetch or the generate source to an
// attempt result (ResultOK for nil).
func Classify(err error) string {
	var fe *fetchError
	switch {
	case err == nil:
		return ResultOK
	case errors.As(err, &fe):
		return fe.result
	case errors.Is(err, ErrRevoked):
		return ResultRevoked
	case errors.Is(err, ErrUnknown):
		return ResultUnknown
	case errors.Is(err, ErrTryLater):
		return ResultTryLater
	case errors.Is(err, context.DeadlineExceeded):
		return ResultTimeout
	default:
		return ResultInvalid
	}
}

// ResponderURL is override when set, else the certificate's first AIA OCSP
// URL, or "" when it has none.
func ResponderURL(leaf *x509.Certificate, override string) string {
	if override != "" {
		return override
	}
	if len(leaf.OCSPServer) > 0 {
		return leaf.OCSPServer[0]
	}
	return ""
}

// Fetch asks the responder at responderURL about leaf and returns the raw
// response body, unvalidated (pass it to Validate). Small requests use GET,
// others POST. The CertID uses SHA-1: RFC 5019 section 2.1.1 makes it the one
// hash every responder supports, and public CAs' responders reject others.
// maxSize caps the body; ctx carries the timeout.
func Fetch(ctx context.Context, client *http.Client, responderURL string, leaf, issuer *x509.Certificate, maxSize int64) ([]byte, error) {
	reqDER, err := xocsp.CreateRequest(leaf, issuer, &xocsp.RequestOptions{Hash: crypto.SHA1})
	if err != nil {
		return nil, fmt.Errorf("ocsp: request for serial %s: %v", FormatSerial(leaf.SerialNumber), err)
	}
	return post(ctx, client, responderURL, reqDER, maxSize)
}

// post sends an encoded request, by GET when it is small enough.
func post(ctx context.Context, client *http.Client, responderURL string, reqDER []byte, maxSize int64) ([]byte, error) {
	var req *http.Request
	var err error
	if b64 := base64.StdEncoding.EncodeToString(reqDER); len(b64) < getLimit {
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, getURL(responderURL, b64), nil)
	} else {
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, responderURL, bytes.NewReader(reqDER))
		if err == nil {
			req.Header.Set("Content-Type", "application/ocsp-request")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("ocsp: responder %q: %v", responderURL, err)
	}
	req.Header.Set("Accept", "application/ocsp-response")
	return httpBody(client, req, maxSize)
}

// getURL appends the URL-encoded base64 request to the responder URL
// (RFC 6960 Appendix A.1). '+', '/' and '=' are escaped: a raw '/' would be
// taken for a path separator.
func getURL(base, b64 string) string {
	esc := strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(b64)
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	return base + esc
}

func httpBody(client *http.Client, req *http.Request, maxSize int64) ([]byte, error) {
	peer := req.URL.Redacted()
	resp, err := client.Do(req)
	if err != nil {
		return nil, transportError(peer, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096)) // lets the connection be reused
		return nil, &fetchError{ResultHTTPError, fmt.Errorf("ocsp: %s %s: HTTP %s", req.Method, peer, resp.Status)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxSize+1))
	if err != nil {
		return nil, transportError(peer, err)
	}
	if int64(len(body)) > maxSize {
		return nil, &fetchError{ResultInvalid, fmt.Errorf("ocsp: %s %s: response larger than %d bytes", req.Method, peer, maxSize)}
	}
	return body, nil
}

func transportError(peer string, err error) error {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return &fetchError{ResultTimeout, fmt.Errorf("ocsp: %s: timeout: %v", peer, err)}
	}
	return &fetchError{ResultHTTPError, fmt.Errorf("ocsp: %s: %v", peer, err)}
}

// FetchIssuer downloads the issuer of leaf from its AIA caIssuers URL (DER,
// or PEM from some CAs) and checks that it signed leaf.
func FetchIssuer(ctx context.Context, client *http.Client, leaf *x509.Certificate, maxSize int64) (*x509.Certificate, error) {
	if len(leaf.IssuingCertificateURL) == 0 {
		return nil, &fetchError{ResultIssuerError, fmt.Errorf("ocsp: certificate %q: chain lacks the issuer and there is no AIA caIssuers URL", leaf.Subject.String())}
	}
	u := leaf.IssuingCertificateURL[0]
	if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") {
		return nil, &fetchError{ResultIssuerError, fmt.Errorf("ocsp: caIssuers URL %q is not HTTP", u)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, &fetchError{ResultIssuerError, fmt.Errorf("ocsp: caIssuers %q: %v", u, err)}
	}
	body, err := httpBody(client, req, maxSize)
	if err != nil {
		return nil, &fetchError{ResultIssuerError, fmt.Errorf("issuer: %w", err)}
	}
	if b, _ := pem.Decode(body); b != nil {
		body = b.Bytes
	}
	issuer, err := x509.ParseCertificate(body)
	if err != nil {
		return nil, &fetchError{ResultIssuerError, fmt.Errorf("ocsp: caIssuers %s: %v", u, err)}
	}
	if err := leaf.CheckSignatureFrom(issuer); err != nil {
		return nil, &fetchError{ResultIssuerError, fmt.Errorf("ocsp: caIssuers %s: %q did not sign %q: %v", u,
			issuer.Subject.String(), leaf.Subject.String(), err)}
	}
	return issuer, nil
}

// newHTTPClient builds the client the Manager fetches with. proxy "" means
// the environment's HTTP_PROXY/HTTPS_PROXY/NO_PROXY.
func newHTTPClient(proxy string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if proxy != "" {
		pu, err := url.Parse(proxy)
		if err != nil || pu.Host == "" {
			return nil, fmt.Errorf("ocsp: http_proxy %q is not a URL", proxy)
		}
		tr.Proxy = http.ProxyURL(pu)
	}
	return &http.Client{Transport: tr}, nil
}
