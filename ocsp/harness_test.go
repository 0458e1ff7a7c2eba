package ocsp_test

import (
	"bytes"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/dnsfront/dnsfront/internal/testutil"
	"github.com/dnsfront/dnsfront/ocsp"
)

// fakeClock is an ocsp.Clock whose time moves only when a test says so.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	clk *fakeClock
	at  time.Time
	c   chan time.Time
	off bool
}

func newFakeClock(now time.Time) *fakeClock { return &fakeClock{now: now} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) ocsp.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{clk: c, at: c.now.Add(d), c: make(chan time.Time, 1)}
	if d <= 0 {
		t.c <- c.now
		t.off = true
		return t
	}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.clk.mu.Lock()
	defer t.clk.mu.Unlock()
	was := !t.off
	t.off = true
	return was
}

// Set moves the clock to now and fires the timers that are due.
func (c *fakeClock) Set(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = now
	live := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.off:
		case !t.at.After(now):
			t.off = true
			t.c <- now
		default:
			live = append(live, t)
		}
	}
	c.timers = live
}

func (c *fakeClock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// waitTimer waits until a worker sleeps on a timer that fires at `at`.
func (c *fakeClock) waitTimer(t *testing.T, at time.Time) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, "a timer set for "+at.String(), func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, tm := range c.timers {
			if !tm.off && tm.at.Equal(at) {
				return true
			}
		}
		return false
	})
}

// publications records what the Manager publishes.
type publications struct {
	mu     sync.Mutex
	last   map[string]*ocsp.Staple
	events chan pubEvent
}

type pubEvent struct {
	id string
	s  *ocsp.Staple
}

func newPublications() *publications {
	return &publications{last: map[string]*ocsp.Staple{}, events: make(chan pubEvent, 100)}
}

func (p *publications) publish(id string, s *ocsp.Staple) {
	p.mu.Lock()
	p.last[id] = s
	p.mu.Unlock()
	p.events <- pubEvent{id, s}
}

func (p *publications) get(id string) *ocsp.Staple {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last[id]
}

// next waits for the next publication.
func (p *publications) next(t *testing.T) pubEvent {
	t.Helper()
	select {
	case e := <-p.events:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("nothing published within 10s")
		return pubEvent{}
	}
}

// none checks that nothing is published for a short while.
func (p *publications) none(t *testing.T, wait time.Duration) {
	t.Helper()
	select {
	case e := <-p.events:
		t.Fatalf("unexpected publication for %s: %+v", e.id, e.s)
	case <-time.After(wait):
	}
}

// responder is a Go OCSP responder on 127.0.0.1 built on x/crypto/ocsp.
type responder struct {
	t   *testing.T
	srv *httptest.Server
	clk *fakeClock
	pki *devpki.TestPKI

	mu       sync.Mutex
	mode     string // good, revoked, unknown, trylater, 500, garbage, slow, wrong
	window   time.Duration
	requests []string // methods
	issuerN  int
	served   chan struct{}
	release  chan struct{} // closed when the test ends: a slow responder answers then
}

func newResponder(t *testing.T, clk *fakeClock) *responder {
	r := &responder{t: t, clk: clk, mode: "good", window: 4 * 24 * time.Hour, served: make(chan struct{}, 100),
		release: make(chan struct{})}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	t.Cleanup(func() { close(r.release) }) // runs first: no handler holds up Close
	return r
}

func (r *responder) URL() string       { return r.srv.URL + "/ocsp" }
func (r *responder) IssuerURL() string { return r.srv.URL + "/issuer.der" }

func (r *responder) setMode(mode string) {
	r.mu.Lock()
	r.mode = mode
	r.mu.Unlock()
}

func (r *responder) methods() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.requests...)
}

func (r *responder) serve(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path == "/issuer.der" {
		r.mu.Lock()
		r.issuerN++
		r.mu.Unlock()
		w.Write(r.pki.Issuer.Cert.Raw)
		return
	}
	var der []byte
	switch req.Method {
	case http.MethodPost:
		der, _ = io.ReadAll(req.Body)
	case http.MethodGet:
		enc := strings.TrimPrefix(req.URL.EscapedPath(), "/ocsp/")
		s, err := url.PathUnescape(enc)
		if err == nil {
			der, err = base64.StdEncoding.DecodeString(s)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	ocspReq, err := xocsp.ParseRequest(der)
	if err != nil {
		w.Write(xocsp.MalformedRequestErrorResponse)
		return
	}
	r.mu.Lock()
	mode, window := r.mode, r.window
	r.requests = append(r.requests, req.Method)
	r.mu.Unlock()
	defer func() { r.served <- struct{}{} }()
	now := r.clk.Now()
	p := r.pki
	resp := devpki.Response{Status: ocsp.StatusGood, ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(window)}
	if ocspReq.SerialNumber.Cmp(p.Leaf.Cert.SerialNumber) != 0 {
		resp.Status = ocsp.StatusUnknown
	}
	switch mode {
	case "revoked":
		resp.Status, resp.RevokedAt, resp.Reason = ocsp.StatusRevoked, now.Add(-time.Hour), 1
	case "unknown":
		resp.Status = ocsp.StatusUnknown
	case "trylater":
		w.Write(xocsp.TryLaterErrorResponse)
		return
	case "500":
		http.Error(w, "boom", http.StatusInternalServerError)
		return
	case "garbage":
		w.Write([]byte("<html>not ocsp</html>"))
		return
	case "slow":
		// Nothing until the client gives up or the test ends: the request
		// times out however late the Manager's worker runs.
		select {
		case <-req.Context().Done():
		case <-r.release:
		}
		return
	case "wrong":
		other := p.IssueLeaf("other")
		w.Write(p.Mint(other.Cert, resp))
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	w.Write(p.Mint(p.Leaf.Cert, resp))
}

// syncBuffer is a log sink safe for the Manager's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is one Manager under test with its PKI, responder and clock.
type env struct {
	t    *testing.T
	clk  *fakeClock
	pki  *devpki.TestPKI
	resp *responder
	pubs *publications
	logs *syncBuffer
	m    *ocsp.Manager
	opts ocsp.Options
}

func newEnv(t *testing.T, pkiOpts ...devpki.Option) *env {
	start := time.Now().Truncate(time.Second)
	clk := newFakeClock(start)
	e := &env{t: t, clk: clk, pubs: newPublications(), logs: &syncBuffer{}}
	e.resp = newResponder(t, clk)
	pkiOpts = append([]devpki.Option{devpki.WithNow(start), devpki.WithOCSPURL(e.resp.URL())}, pkiOpts...)
	e.pki = devpki.NewTestPKI(t, t.TempDir(), pkiOpts...)
	e.resp.pki = e.pki
	e.opts = ocsp.Options{
		CacheDir:        t.TempDir(),
		MinRefreshDelay: time.Minute,
		MaxRefreshDelay: 30 * 24 * time.Hour,
		BackoffCap:      time.Hour,
		// Generous: on a loaded machine a good answer must never become a
		// timeout, whose retry waits for the fake clock and so never comes.
		// The test of timeouts sets a short one against the slow responder.
		RequestTimeout: 5 * time.Second,
		Logger:         slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Clock:          clk,
	}
	return e
}

func (e *env) start() *ocsp.Manager {
	e.m = ocsp.NewManager(e.opts, e.pubs.publish)
	e.t.Cleanup(func() { e.m.Close() })
	return e.m
}

func (e *env) source() ocsp.CertSource {
	return ocsp.CertSource{ID: "leaf", Name: "leaf.chain.pem", Chain: e.pki.Leaf.Chain, Fetch: true}
}

func (e *env) status() ocsp.CertStatus {
	e.t.Helper()
	st := e.m.Status()
	if len(st) != 1 {
		e.t.Fatalf("status has %d entries", len(st))
	}
	return st[0]
}

// waitStatus waits until the certificate's status satisfies ok.
func (e *env) waitStatus(what string, ok func(ocsp.CertStatus) bool) ocsp.CertStatus {
	e.t.Helper()
	var st ocsp.CertStatus
	if !testutil.Poll(10*time.Second, func() bool { st = e.status(); return ok(st) }) {
		e.t.Fatalf("status never reached %s: %+v", what, st)
	}
	return st
}

// waitLog waits until the log holds every one of subs (a worker logs after
// it publishes and updates its status).
func (e *env) waitLog(subs ...string) string {
	e.t.Helper()
	var logs, missing string
	if !testutil.Poll(10*time.Second, func() bool {
		logs, missing = e.logs.String(), ""
		for _, s := range subs {
			if !strings.Contains(logs, s) {
				missing = s
			}
		}
		return missing == ""
	}) {
		e.t.Fatalf("log lacks %q:\n%s", missing, logs)
	}
	return logs
}

func testLogger(w *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// waitFile waits until path holds want (the cache is written after the
// staple is published).
func waitFile(t *testing.T, path string, want []byte) {
	t.Helper()
	var got []byte
	var err error
	if !testutil.Poll(10*time.Second, func() bool {
		got, err = os.ReadFile(path)
		return err == nil && bytes.Equal(got, want)
	}) {
		t.Fatalf("%s never held the expected %d bytes (err %v, %d bytes)", path, len(want), err, len(got))
	}
}
