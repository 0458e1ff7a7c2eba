package bench

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// windows runs a load for d, and again for 4d and 16d while nothing succeeded: on a
// loaded machine a short window may close before the first handshake or answer does
// (those that end after it are not counted), and a longer one then gets some. What the
// tests check of the results holds for any window.
func windows(t *testing.T, d time.Duration, run func(time.Duration) (*Report, error)) (*Report, error) {
	t.Helper()
	for i := 0; ; i++ {
		r, err := run(d)
		if err != nil || r.Results.OK > 0 || i == 2 {
			return r, err
		}
		t.Logf("nothing completed within %v on this machine; again with %v", d, 4*d)
		d *= 4
	}
}

func runHS(t *testing.T, o HandshakeOptions) *Report {
	t.Helper()
	if o.Duration == 0 {
		o.Duration = 300 * time.Millisecond
	}
	if o.Concurrency == 0 {
		o.Concurrency = 4
	}
	r, err := windows(t, o.Duration, func(d time.Duration) (*Report, error) {
		o.Duration = d
		return RunHandshake(context.Background(), o)
	})
	if err != nil {
		t.Fatalf("RunHandshake: %v", err)
	}
	if r.Results.OK == 0 {
		t.Fatalf("no handshake succeeded: errors %v", r.Results.ErrorsByKind)
	}
	if r.Results.Errors != 0 {
		t.Errorf("errors: %v", r.Results.ErrorsByKind)
	}
	return r
}

func TestHandshakeStaple(t *testing.T) {
	pki := newTestPKI(t)
	h := &dnsHandler{}
	stapled := startDoT(t, h, pki.leaf, pki.leafStaple)
	bare := startDoT(t, h, pki.leaf, nil)
	foreign := startDoT(t, h, pki.leaf, pki.otherStaple)
	for _, version := range []string{"1.3", "1.2"} {
		t.Run(version, func(t *testing.T) {
			tlsOpts := TLSOptions{SNI: "dns.test", CAFile: pki.caFile, Version: version}

			r := runHS(t, HandshakeOptions{Target: stapled, TLS: tlsOpts})
			res := r.Results
			if res.StapleFrac != 1.0 || res.StapleValid != res.OK || res.FullHandshake != res.OK {
				t.Errorf("stapled server: fraction %v, valid %d, full %d, ok %d, error %q", res.StapleFrac, res.StapleValid, res.FullHandshake, res.OK, res.StapleError)
			}
			if res.Latency.P50US <= 0 || res.Latency.P99US < res.Latency.P50US || res.Rate <= 0 {
				t.Errorf("latency %+v rate %v", res.Latency, res.Rate)
			}
			if r.Params.TLSVersion != version {
				t.Errorf("params TLS version %q", r.Params.TLSVersion)
			}

			r = runHS(t, HandshakeOptions{Target: bare, TLS: tlsOpts})
			if res := r.Results; res.StapleFrac != 0 || res.StapleMissing != res.OK {
				t.Errorf("server without staple: fraction %v, missing %d of %d", res.StapleFrac, res.StapleMissing, res.OK)
			}

			r = runHS(t, HandshakeOptions{Target: foreign, TLS: tlsOpts})
			if res := r.Results; res.StapleFrac != 0 || res.StapleInvalid != res.OK || !strings.Contains(res.StapleError, "0x1a2b") {
				t.Errorf("staple for another certificate: fraction %v, invalid %d of %d, error %q", res.StapleFrac, res.StapleInvalid, res.OK, res.StapleError)
			}
		})
	}
}

func TestHandshakeStapleIssuerFromCAFile(t *testing.T) {
	pki := newTestPKI(t)
	leafOnly := pki.leaf
	leafOnly.Certificate = leafOnly.Certificate[:1] // the server sends no issuer
	addr := startDoT(t, &dnsHandler{}, leafOnly, pki.leafStaple)
	r := runHS(t, HandshakeOptions{Target: addr, TLS: TLSOptions{SNI: "dns.test", CAFile: pki.caFile}})
	if r.Results.StapleFrac != 1 {
		t.Errorf("fraction %v, error %q", r.Results.StapleFrac, r.Results.StapleError)
	}
	// Without a CA file and without an issuer in the chain, the staple
	// cannot be checked, so it is not counted as valid.
	r = runHS(t, HandshakeOptions{Target: addr, TLS: TLSOptions{SNI: "dns.test"}})
	if r.Results.StapleFrac != 0 || !strings.Contains(r.Results.StapleError, "no issuer") {
		t.Errorf("no issuer: fraction %v, error %q", r.Results.StapleFrac, r.Results.StapleError)
	}
}

func TestHandshakeResume(t *testing.T) {
	pki := newTestPKI(t)
	addr := startDoT(t, &dnsHandler{}, pki.leaf, pki.leafStaple)
	for _, version := range []string{"1.3", "1.2"} {
		t.Run(version, func(t *testing.T) {
			r := runHS(t, HandshakeOptions{Target: addr, Resume: true,
				TLS: TLSOptions{SNI: "dns.test", CAFile: pki.caFile, Version: version}})
			if res := r.Results; res.Resumed != res.OK {
				t.Errorf("resumed %d of %d", res.Resumed, res.OK)
			}
			r = runHS(t, HandshakeOptions{Target: addr, TLS: TLSOptions{SNI: "dns.test", CAFile: pki.caFile, Version: version}})
			if res := r.Results; res.Resumed != 0 {
				t.Errorf("without --resume: resumed %d of %d", res.Resumed, res.OK)
			}
		})
	}
}

func TestHandshakeCurves(t *testing.T) {
	pki := newTestPKI(t)
	addr := startDoT(t, &dnsHandler{}, pki.leaf, pki.leafStaple)
	for _, c := range []string{"X25519", "X25519MLKEM768", "P-256"} {
		r := runHS(t, HandshakeOptions{Target: addr, Duration: 100 * time.Millisecond,
			TLS: TLSOptions{SNI: "dns.test", CAFile: pki.caFile, Curves: []string{c}}})
		if r.Params.Curves[0] != c {
			t.Errorf("params curves %v", r.Params.Curves)
		}
	}
	if _, _, err := clientTLS(TLSOptions{Curves: []string{"X448"}}, "dns.test"); err == nil {
		t.Error("unknown curve accepted")
	}
}

func TestHandshakeQuery(t *testing.T) {
	pki := newTestPKI(t)
	good := startDoT(t, &dnsHandler{}, pki.leaf, pki.leafStaple)
	r := runHS(t, HandshakeOptions{Target: good, Query: "www.dnsfront.test",
		TLS: TLSOptions{SNI: "dns.test", CAFile: pki.caFile}})
	if r.Params.Query != "www.dnsfront.test" {
		t.Errorf("params query %q", r.Params.Query)
	}

	// A server answering with the wrong ID fails every handshake+query, and
	// the very first one makes the run refuse to start.
	bad := startDoT(t, &dnsHandler{wrongID: true}, pki.leaf, pki.leafStaple)
	_, err := RunHandshake(context.Background(), HandshakeOptions{Target: bad, Query: "www.dnsfront.test",
		Duration: 100 * time.Millisecond, TLS: TLSOptions{SNI: "dns.test", CAFile: pki.caFile}})
	if err == nil || !strings.Contains(err.Error(), "wrong id") {
		t.Errorf("wrong-ID server: err %v", err)
	}
}

func TestHandshakeVerifyFails(t *testing.T) {
	pki := newTestPKI(t)
	addr := startDoT(t, &dnsHandler{}, pki.leaf, pki.leafStaple)
	_, err := RunHandshake(context.Background(), HandshakeOptions{Target: addr, Duration: 100 * time.Millisecond,
		TLS: TLSOptions{SNI: "wrong.test", CAFile: pki.caFile}})
	if err == nil || !strings.Contains(err.Error(), "wrong.test") {
		t.Errorf("wrong SNI verified: %v", err)
	}
}

func TestHandshakeServerCPU(t *testing.T) {
	pki := newTestPKI(t)
	addr := startDoT(t, &dnsHandler{}, pki.leaf, pki.leafStaple)
	// The server runs in this process, so its PID is ours.
	r := runHS(t, HandshakeOptions{Target: addr, RunInfo: RunInfo{ServerPID: os.Getpid()}, Duration: 500 * time.Millisecond,
		TLS: TLSOptions{SNI: "dns.test", CAFile: pki.caFile}})
	res := r.Results
	if res.ServerCPUError != "" || res.ServerCPUSeconds <= 0 || res.ServerCPUPerOpUS <= 0 || res.RatePerServerCore <= 0 {
		t.Errorf("server CPU: %+v", res)
	}
	if res.ClientCPUSeconds <= 0 || res.ClientCPUPerOpUS <= 0 {
		t.Errorf("client CPU: %v s, %v µs/op", res.ClientCPUSeconds, res.ClientCPUPerOpUS)
	}
}
