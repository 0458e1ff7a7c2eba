package e2e

import (
	"crypto"
	"encoding/base64"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/dnsfront/dnsfront/internal/testutil"
)

// DoTConfig serves one DoT bind on {{port "dot"}} with the certificates of DoTData, the
// admin API on {{port "admin"}} and one backend forced up.
const DoTConfig = `
general:
  event_loops: 2
  log_level: info
acl: ["127.0.0.0/8", "::1/128"]
binds:
  - listen_address: "127.0.0.1:{{port "dot"}}"
    protocol: DoT
    tls:
      certificates:
{{- range .Certs}}
        - certificate: "{{.Chain}}"
          key: "{{.Key}}"
{{- if .Fetch}}
          ocsp: { fetch: true{{if .Responder}}, responder: "{{.Responder}}"{{end}} }
{{- end}}
{{- end}}
{{- if .TicketKeyFile}}
      ticket_key_file: "{{.TicketKeyFile}}"
{{- end}}
{{- if .OCSPFiles}}
      ocsp_response_files: [{{range $i, $f := .OCSPFiles}}{{if $i}}, {{end}}"{{$f}}"{{end}}]
{{- end}}
      minimum_version: "tls1.2"
backends:
  - address: "{{.Backend}}"
    name: b1
    health_checks:
      mode: up
{{- if or .CacheDir .MinRefreshDelay .RequestTimeout}}
ocsp:
{{- if .CacheDir}}
  cache_dir: "{{.CacheDir}}"
{{- end}}
{{- if .MinRefreshDelay}}
  min_refresh_delay: "{{.MinRefreshDelay}}"
{{- end}}
{{- if .RequestTimeout}}
  request_timeout: "{{.RequestTimeout}}"
{{- end}}
{{- end}}
webserver:
  listen_addresses: ["127.0.0.1:{{port "admin"}}"]
`

// DoTCert is one entry of a DoT bind's certificates.
type DoTCert struct {
	Chain, Key string
	Fetch      bool
	Responder  string
}

// DoTData fills DoTConfig.
type DoTData struct {
	Backend         string
	Certs           []DoTCert
	OCSPFiles       []string
	CacheDir        string
	MinRefreshDelay string
	RequestTimeout  string
	TicketKeyFile   string
}

// testAnswer is the address every DoT test backend answers for testName.
const (
	testName   = "www.dnsfront.test"
	testAnswer = "192.0.2.1"
)

// StartTestBackend starts a backend authoritative for testName (A testAnswer).
func StartTestBackend(t testing.TB) *Backend {
	t.Helper()
	return StartBackend(t, BackendOptions{Records: []string{testName + ". 60 IN A " + testAnswer}})
}

// DoT returns DoTData for one backend and the given certificates.
func DoT(backend string, certs ...DoTCert) DoTData {
	return DoTData{Backend: backend, Certs: certs}
}

// CertOf turns a devpki leaf into a DoT certificate entry.
func CertOf(l *devpki.Leaf) DoTCert { return DoTCert{Chain: l.ChainFile, Key: l.KeyFile} }

// OCSPStatus is one certificate of GET /api/v1/ocsp.
type OCSPStatus struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Subject    string     `json:"subject"`
	Serial     string     `json:"serial"`
	Source     string     `json:"source"`
	Status     string     `json:"status"`
	Responder  string     `json:"responder"`
	NextUpdate *time.Time `json:"next_update"`
	LastResult string     `json:"last_result"`
	LastError  string     `json:"last_error"`
	Failures   int        `json:"failures"`
	Successes  int        `json:"successes"`
	MustStaple bool       `json:"must_staple"`
	Reason     string     `json:"revocation_reason"`
}

// OCSP returns GET /api/v1/ocsp.
func (d *Dnsfront) OCSP() []OCSPStatus {
	d.t.Helper()
	var out []OCSPStatus
	getJSON(d.t, d.AdminURL()+"/api/v1/ocsp", &out)
	return out
}

// WaitOCSP polls GET /api/v1/ocsp until cond holds for the entry whose name is the
// certificate file name (or the only entry when name is ""), and returns it; after
// timeout it fails the test with the last entry seen.
func (d *Dnsfront) WaitOCSP(name string, timeout time.Duration, cond func(OCSPStatus) bool) OCSPStatus {
	d.t.Helper()
	var last OCSPStatus
	found := false
	if !testutil.Poll(timeout, func() bool {
		last, found = OCSPStatus{}, false
		for _, s := range d.OCSP() {
			if name == "" || s.Name == name {
				last, found = s, true
				break
			}
		}
		return found && cond(last)
	}) {
		d.t.Fatalf("GET /api/v1/ocsp: condition not met within %v for %q; last %+v (found %v)", timeout, name, last, found)
	}
	return last
}

// Responder is an OCSP responder on 127.0.0.1 built on golang.org/x/crypto/ocsp. Its URL
// is fixed at creation (certificates carry it in their AIA extension) and it answers
// only between Start and Stop: before, a fetch gets "connection refused".
type Responder struct {
	t    testing.TB
	URL  string
	addr string

	mu       sync.Mutex
	issuer   *devpki.Authority
	status   int // xocsp.Good, Revoked, Unknown
	mode     ResponderMode
	validity time.Duration // nextUpdate - thisUpdate
	requests int
	// issuerRequests counts GETs of the issuer certificate (AIA caIssuers).
	issuerRequests int
	srv            *http.Server
	done           chan struct{}
}

// NewResponder reserves a loopback port for a responder; it does not listen yet.
func NewResponder(t testing.TB) *Responder {
	t.Helper()
	port, err := FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	r := &Responder{t: t, addr: addr, URL: "http://" + addr + "/", status: xocsp.Good, validity: time.Hour}
	t.Cleanup(r.Stop)
	return r
}

// SetIssuer sets the CA that signs the responses (the leaves' issuer).
func (r *Responder) SetIssuer(a *devpki.Authority) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.issuer = a
}

// SetStatus chooses the certificate status of later responses.
func (r *Responder) SetStatus(status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status = status
}

// ResponderMode is how a Responder misbehaves.
type ResponderMode string

// Responder modes besides the default (a valid response with the status of SetStatus).
const (
	ModeOK        ResponderMode = ""
	Mode500       ResponderMode = "500"        // HTTP 500
	ModeGarbage   ResponderMode = "garbage"    // 200 with bytes that are not a response
	ModeTryLater  ResponderMode = "try_later"  // OCSPResponseStatus tryLater
	ModeWrongCert ResponderMode = "wrong_cert" // a good response about another serial
	ModeSlow      ResponderMode = "slow"       // answers after 3 s (or never, if the client gives up first)
)

// SetMode chooses how later requests are answered.
func (r *Responder) SetMode(m ResponderMode) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mode = m
}

// Requests counts the OCSP requests answered so far.
func (r *Responder) Requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

// Start listens on the responder's port.
func (r *Responder) Start() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.srv != nil {
		return
	}
	var ln net.Listener
	var err error
	// The port was free when reserved and may linger briefly after a Stop.
	if !testutil.Poll(10*time.Second, func() bool {
		ln, err = net.Listen("tcp", r.addr)
		return err == nil
	}) {
		r.t.Fatalf("OCSP responder: %v", err)
	}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 5 * time.Second}
	r.done = make(chan struct{})
	srv, done := r.srv, r.done
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.t.Logf("OCSP responder: %v", err)
		}
	}()
}

// Stop closes the listener and every connection: later fetches are refused.
func (r *Responder) Stop() {
	r.mu.Lock()
	srv, done := r.srv, r.done
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
		<-done
	}
}

// IssuerURL is where the responder serves the issuer's certificate (DER), for a leaf's
// AIA caIssuers extension.
func (r *Responder) IssuerURL() string { return r.URL + "issuer.der" }

// IssuerRequests counts the GETs of IssuerURL.
func (r *Responder) IssuerRequests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.issuerRequests
}

func (r *Responder) serve(w http.ResponseWriter, req *http.Request) {
	if req.Method == http.MethodGet && req.URL.Path == "/issuer.der" {
		r.mu.Lock()
		issuer := r.issuer
		r.issuerRequests++
		r.mu.Unlock()
		if issuer == nil {
			http.NotFound(w, req)
			return
		}
		w.Header().Set("Content-Type", "application/pkix-cert")
		_, _ = w.Write(issuer.Cert.Raw)
		return
	}
	var der []byte
	switch req.Method {
	case http.MethodPost:
		b, err := io.ReadAll(io.LimitReader(req.Body, 64<<10))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		der = b
	case http.MethodGet:
		// RFC 6960 Appendix A.1: GET {url}/{url-encoding of base-64 encoding of the DER}.
		p, err := url.PathUnescape(strings.TrimPrefix(req.URL.EscapedPath(), "/"))
		if err == nil {
			der, err = base64.StdEncoding.DecodeString(p)
		}
		if err != nil {
			http.Error(w, "bad GET request", http.StatusBadRequest)
			return
		}
	default:
		http.Error(w, "method", http.StatusMethodNotAllowed)
		return
	}
	ocspReq, err := xocsp.ParseRequest(der)
	if err != nil {
		w.Header().Set("Content-Type", "application/ocsp-response")
		_, _ = w.Write(xocsp.MalformedRequestErrorResponse)
		return
	}
	r.mu.Lock()
	issuer, status, validity, mode := r.issuer, r.status, r.validity, r.mode
	r.requests++
	r.mu.Unlock()
	if issuer == nil {
		http.Error(w, "no issuer", http.StatusInternalServerError)
		return
	}
	serial := new(big.Int).Set(ocspReq.SerialNumber)
	switch mode {
	case Mode500:
		http.Error(w, "responder failure", http.StatusInternalServerError)
		return
	case ModeGarbage:
		w.Header().Set("Content-Type", "application/ocsp-response")
		_, _ = w.Write([]byte("this is not an OCSP response"))
		return
	case ModeTryLater:
		w.Header().Set("Content-Type", "application/ocsp-response")
		_, _ = w.Write(xocsp.TryLaterErrorResponse)
		return
	case ModeWrongCert:
		serial.Add(serial, big.NewInt(1))
	case ModeSlow:
		select {
		case <-req.Context().Done():
			return
		case <-time.After(3 * time.Second):
		}
	}
	now := time.Now()
	tmpl := xocsp.Response{
		Status:       status,
		SerialNumber: serial,
		ThisUpdate:   now.Add(-time.Minute),
		NextUpdate:   now.Add(validity),
		IssuerHash:   crypto.SHA256,
	}
	if status == xocsp.Revoked {
		tmpl.RevokedAt, tmpl.RevocationReason = now.Add(-time.Hour), xocsp.KeyCompromise
	}
	resp, err := xocsp.CreateResponse(issuer.Cert, issuer.Cert, tmpl, issuer.Key)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	_, _ = w.Write(resp)
}
