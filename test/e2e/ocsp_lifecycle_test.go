package e2e

import (
	"bytes"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/dnsfront/dnsfront/internal/testutil"
	"github.com/dnsfront/dnsfront/ocsp"
)

// stapleWait bounds how long a test waits for the server's OCSP manager to act on a
// change (a fetch from a loopback responder takes milliseconds).
const stapleWait = 20 * time.Second

// fetchSetup is a test PKI whose leaf's AIA OCSP URL points at a Go responder on
// loopback (not listening until Start).
type fetchSetup struct {
	pki  *devpki.TestPKI
	resp *Responder
	be   *Backend
	data DoTData
}

func newFetchSetup(t *testing.T, opts ...devpki.Option) *fetchSetup {
	t.Helper()
	r := NewResponder(t)
	p := devpki.NewTestPKI(t, t.TempDir(), append([]devpki.Option{devpki.WithOCSPURL(r.URL)}, opts...)...)
	r.SetIssuer(p.Issuer)
	be := StartTestBackend(t)
	c := CertOf(p.Leaf)
	c.Fetch = true
	return &fetchSetup{pki: p, resp: r, be: be, data: DoT(be.Addr, c)}
}

func certLabel(l *devpki.Leaf) string { return `cert="` + l.ChainFile + `"` }

// stapleGood is the WaitOCSP condition of a certificate served with a good staple.
func stapleGood(s OCSPStatus) bool { return s.Status == ocsp.StateGood }

// startCached starts dnsfront fetching its staple from a running responder into a
// cache_dir, waits until the staple is served and cached, and returns the cache's files.
func startCached(t *testing.T) (*fetchSetup, *Dnsfront, []string) {
	t.Helper()
	f := newFetchSetup(t)
	f.data.CacheDir = filepath.Join(t.TempDir(), "ocsp-cache")
	f.resp.Start()
	d := Start(t, DoTConfig, f.data)
	d.WaitOCSP(f.pki.Leaf.ChainFile, stapleWait, stapleGood)
	return f, d, cacheFiles(t, f.data.CacheDir, 15*time.Second)
}

// linesWith returns the lines of log that contain every one of substrs.
func linesWith(log string, substrs ...string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if !slices.ContainsFunc(substrs, func(s string) bool { return !strings.Contains(l, s) }) {
			out = append(out, l)
		}
	}
	return out
}

// TestOCSPFetchStaples: `ocsp: {fetch: true}` and no file: the server asks the AIA
// responder in the background, reports the staple in /api/v1/ocsp and metrics, and
// s_client gets it.
func TestOCSPFetchStaples(t *testing.T) {
	t.Parallel()
	f := newFetchSetup(t)
	f.resp.Start()
	d := Start(t, DoTConfig, f.data)
	st := d.WaitOCSP(f.pki.Leaf.ChainFile, stapleWait, stapleGood)
	if st.Source != ocsp.SourceFetch || st.Responder != f.resp.URL || st.Serial != ocsp.FormatSerial(f.pki.Leaf.Cert.SerialNumber) {
		t.Errorf("/api/v1/ocsp = %+v; want source fetch, responder %s, serial %s", st, f.resp.URL, ocsp.FormatSerial(f.pki.Leaf.Cert.SerialNumber))
	}
	SClientStatus(t, d.Addr("dot"), "dns.test").RequireStaple(t, f.pki.Leaf.Cert)
	if f.resp.Requests() < 1 {
		t.Error("the responder saw no request")
	}
	if v, ok := metricSum(d.Metrics(), "dnsfront_ocsp_staple_present", certLabel(f.pki.Leaf)); !ok || v != 1 {
		t.Errorf("dnsfront_ocsp_staple_present = %v (present %v), want 1", v, ok)
	}
	if v, ok := metricSum(d.Metrics(), "dnsfront_ocsp_staple_next_update_seconds", certLabel(f.pki.Leaf)); !ok || v < 3000 || v > 3600 {
		t.Errorf("dnsfront_ocsp_staple_next_update_seconds = %v (present %v), want about 3600", v, ok)
	}
	if v, ok := metricSum(d.Metrics(), "dnsfront_ocsp_update_attempts_total", `source="fetch"`, `result="ok"`); !ok || v < 1 {
		t.Errorf(`dnsfront_ocsp_update_attempts_total{source="fetch",result="ok"} = %v (present %v), want >= 1`, v, ok)
	}
	if !strings.Contains(d.Log(), `msg="ocsp: update"`) {
		t.Error("no structured log line for the update attempt")
	}
}

// TestOCSPResponderDownThenRefresh: with the responder down at start the listener
// serves without a staple and the failure is reported; once the responder is up, POST
// /api/v1/ocsp/refresh gets the staple without waiting for the back-off.
func TestOCSPResponderDownThenRefresh(t *testing.T) {
	t.Parallel()
	f := newFetchSetup(t)
	d := Start(t, DoTConfig, f.data)
	st := d.WaitOCSP(f.pki.Leaf.ChainFile, stapleWait, func(s OCSPStatus) bool { return s.Failures >= 1 })
	if st.Status != ocsp.StateNone || st.LastResult != ocsp.ResultHTTPError || st.LastError == "" {
		t.Errorf("/api/v1/ocsp with the responder down = %+v; want status none, last_result http_error and the error", st)
	}
	SClientStatus(t, d.Addr("dot"), "dns.test").RequireNoStaple(t)
	if v, ok := metricSum(d.Metrics(), "dnsfront_ocsp_update_failures_total", `source="fetch"`, `result="http_error"`); !ok || v < 1 {
		t.Errorf(`dnsfront_ocsp_update_failures_total{source="fetch",result="http_error"} = %v (present %v)`, v, ok)
	}
	if !strings.Contains(d.Log(), `msg="ocsp: update failed"`) {
		t.Error("the failed attempt was not logged")
	}

	f.resp.Start()
	code, body := d.Post("/api/v1/ocsp/refresh")
	if code != http.StatusAccepted {
		t.Fatalf("POST /api/v1/ocsp/refresh: %d %s", code, body)
	}
	st = d.WaitOCSP(f.pki.Leaf.ChainFile, stapleWait, stapleGood)
	if st.Failures != 0 {
		t.Errorf("failures after a success = %d, want 0", st.Failures)
	}
	SClientStatus(t, d.Addr("dot"), "dns.test").RequireStaple(t, f.pki.Leaf.Cert)
}

// TestOCSPRevoked: the responder says revoked: nothing is stapled, status and metric say
// revoked, and an error-level line gives the serial and the reason.
func TestOCSPRevoked(t *testing.T) {
	t.Parallel()
	f := newFetchSetup(t)
	f.resp.SetStatus(xocsp.Revoked)
	f.resp.Start()
	d := Start(t, DoTConfig, f.data)
	st := d.WaitOCSP(f.pki.Leaf.ChainFile, stapleWait, func(s OCSPStatus) bool { return s.Status == ocsp.StateRevoked })
	if st.Reason == "" {
		t.Errorf("/api/v1/ocsp = %+v: no revocation reason", st)
	}
	SClientStatus(t, d.Addr("dot"), "dns.test").RequireNoStaple(t)
	if v, ok := metricSum(d.Metrics(), "dnsfront_ocsp_certificate_revoked", certLabel(f.pki.Leaf)); !ok || v != 1 {
		t.Errorf("dnsfront_ocsp_certificate_revoked = %v (present %v), want 1", v, ok)
	}
	if v, ok := metricSum(d.Metrics(), "dnsfront_ocsp_staple_present", certLabel(f.pki.Leaf)); !ok || v != 0 {
		t.Errorf("dnsfront_ocsp_staple_present = %v (present %v), want 0", v, ok)
	}
	serial := ocsp.FormatSerial(f.pki.Leaf.Cert.SerialNumber)
	if !slices.ContainsFunc(linesWith(d.Log(), "level=ERROR", "revoked", serial), func(l string) bool {
		return strings.Contains(strings.ToLower(l), "keycompromise")
	}) {
		t.Errorf("no error-level log line with serial %s and reason keyCompromise:\n%s", serial, d.Log())
	}
}

// TestOCSPWarmCacheRestart: a staple fetched into cache_dir survives a restart: the
// first handshake after the port opens is stapled, with the responder down.
func TestOCSPWarmCacheRestart(t *testing.T) {
	t.Parallel()
	f, d, files := startCached(t)
	d.Stop()
	f.resp.Stop()

	d2 := Start(t, DoTConfig, f.data)
	// Right after "dnsfront started": no waiting for any background work.
	SClientStatus(t, d2.Addr("dot"), "dns.test").RequireStaple(t, f.pki.Leaf.Cert)
	st := d2.OCSP()
	if len(st) != 1 || st[0].Status != ocsp.StateGood || st[0].Source != ocsp.SourceCache {
		t.Errorf("/api/v1/ocsp after a warm restart = %+v; want good from cache", st)
	}
	if after := cacheFiles(t, f.data.CacheDir, 0); strings.Join(after, ",") != strings.Join(files, ",") {
		t.Errorf("cache files changed across the restart: %v → %v", files, after)
	}
}

// cacheFiles lists the cache files of dir (not the temporary files of a write in
// progress), waiting up to timeout for at least one.
func cacheFiles(t *testing.T, dir string, timeout time.Duration) []string {
	t.Helper()
	var out []string
	list := func() bool {
		out = out[:0]
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			// Atomic writes go through a hidden temporary file first.
			if !strings.HasPrefix(e.Name(), ".") {
				out = append(out, e.Name())
			}
		}
		return len(out) > 0
	}
	if !testutil.Poll(timeout, list) {
		t.Fatalf("cache_dir %s holds no file", dir)
	}
	return out
}

// TestOCSPReloadKeepsCache: with the responder gone, a reload keeps stapling the cached
// response, both with the same configuration and with one that names the responder
// explicitly (the same certificate, its staple still valid).
func TestOCSPReloadKeepsCache(t *testing.T) {
	t.Parallel()
	f, d, files := startCached(t)
	cached, err := os.ReadFile(filepath.Join(f.data.CacheDir, files[0]))
	if err != nil {
		t.Fatal(err)
	}
	f.resp.Stop()

	t.Run("same config", func(t *testing.T) {
		reload(t, d)
		SClientStatus(t, d.Addr("dot"), "dns.test").RequireStaple(t, f.pki.Leaf.Cert)
		b, err := os.ReadFile(filepath.Join(f.data.CacheDir, files[0]))
		if err != nil || !bytes.Equal(b, cached) {
			t.Errorf("the cache file changed or vanished across a reload: %v", err)
		}
	})
	t.Run("responder named", func(t *testing.T) {
		data := f.data
		data.Certs = []DoTCert{data.Certs[0]}
		data.Certs[0].Responder = f.resp.URL
		d.Rewrite(DoTConfig, data)
		reload(t, d)
		SClientStatus(t, d.Addr("dot"), "dns.test").RequireStaple(t, f.pki.Leaf.Cert)
		if st := d.OCSP(); len(st) != 1 || st[0].Status != ocsp.StateGood {
			t.Errorf("/api/v1/ocsp after the reload = %+v; want good", st)
		}
	})
}

// TestOCSPUnwritableCacheDir: a cache_dir that cannot be created (its parent is a file)
// does not stop stapling; the failed write is logged.
func TestOCSPUnwritableCacheDir(t *testing.T) {
	t.Parallel()
	f := newFetchSetup(t)
	parent := filepath.Join(t.TempDir(), "not-a-dir")
	WriteFile(t, parent, []byte("a file"))
	f.data.CacheDir = filepath.Join(parent, "ocsp")
	f.resp.Start()
	d := Start(t, DoTConfig, f.data)
	d.WaitOCSP(f.pki.Leaf.ChainFile, stapleWait, stapleGood)
	SClientStatus(t, d.Addr("dot"), "dns.test").RequireStaple(t, f.pki.Leaf.Cert)
	if !d.WaitLog("cache write failed", 0, 10*time.Second) {
		t.Errorf("the failed cache write was not logged:\n%s", d.Log())
	}
}

// TestOCSPMustStapleWithoutStaple: a Must-Staple certificate whose responder is down is
// reported loudly (error log, status, metric); once a staple arrives the metric clears.
func TestOCSPMustStapleWithoutStaple(t *testing.T) {
	t.Parallel()
	f := newFetchSetup(t, devpki.WithMustStaple())
	d := Start(t, DoTConfig, f.data)
	st := d.WaitOCSP(f.pki.Leaf.ChainFile, stapleWait, func(s OCSPStatus) bool { return s.Failures >= 1 })
	if !st.MustStaple || st.Status != ocsp.StateNone {
		t.Errorf("/api/v1/ocsp = %+v; want must_staple true, status none", st)
	}
	if v, ok := metricSum(d.Metrics(), "dnsfront_ocsp_must_staple_without_staple", certLabel(f.pki.Leaf)); !ok || v != 1 {
		t.Errorf("dnsfront_ocsp_must_staple_without_staple = %v (present %v), want 1", v, ok)
	}
	if len(linesWith(d.Log(), "level=ERROR", "must-staple", f.pki.Leaf.ChainFile)) == 0 {
		t.Errorf("no error-level must-staple line naming the certificate:\n%s", d.Log())
	}
	SClientStatus(t, d.Addr("dot"), "dns.test").RequireNoStaple(t)

	f.resp.Start()
	d.Post("/api/v1/ocsp/refresh")
	d.WaitOCSP(f.pki.Leaf.ChainFile, stapleWait, stapleGood)
	if v, _ := metricSum(d.Metrics(), "dnsfront_ocsp_must_staple_without_staple", certLabel(f.pki.Leaf)); v != 0 {
		t.Errorf("dnsfront_ocsp_must_staple_without_staple = %v with a staple, want 0", v)
	}
	SClientStatus(t, d.Addr("dot"), "dns.test").RequireStaple(t, f.pki.Leaf.Cert)
}

// TestOCSPCLI: `dnsfront ocsp generate|inspect|fetch|status` against files checked by
// openssl, the Go responder and a running server.
func TestOCSPCLI(t *testing.T) {
	t.Parallel()
	if !hasOCSPCLI(t) {
		out, _ := RunCLI(t, "--help")
		t.Fatalf("`dnsfront ocsp` is missing from `dnsfront --help` (cmd/dnsfront/commands.go extraCommands does not add newOCSPCmd()):\n%s", out)
	}
	f := newFetchSetup(t)
	p := f.pki
	dir := p.Dir

	t.Run("generate", func(t *testing.T) {
		out := filepath.Join(dir, "gen.ocsp")
		before := time.Now()
		res, code := RunCLI(t, "ocsp", "generate", "--cert", p.Leaf.ChainFile, "--ca-cert", p.Issuer.CertFile,
			"--ca-key", p.Issuer.KeyFile, "--out", out, "--days", "1", "--minutes", "30")
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, res)
		}
		s, err := ocsp.LoadFile(out, p.Leaf.Cert, p.Issuer.Cert, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		want := before.Add(24*time.Hour + 30*time.Minute)
		if d := s.NextUpdate.Sub(want); d < -2*time.Second || d > 5*time.Second {
			t.Errorf("nextUpdate %s, want about %s", s.NextUpdate, want)
		}
		// openssl agrees: the signature verifies against the CA and the status is good.
		res = runTool(t, "openssl", "ocsp", "-sha256", "-respin", out, "-issuer", p.Issuer.CertFile, "-cert", p.Leaf.ChainFile,
			"-CAfile", p.Root.CertFile)
		if !strings.Contains(res, "Response verify OK") || !strings.Contains(res, ": good") {
			t.Errorf("openssl ocsp on the generated response:\n%s", res)
		}
		// Missing flags and a CA that did not issue the certificate: non-zero, with the reason.
		if res, code := RunCLI(t, "ocsp", "generate", "--cert", p.Leaf.ChainFile, "--out", out); code == 0 {
			t.Errorf("generate without --ca-cert/--ca-key succeeded:\n%s", res)
		}
		stranger := devpki.NewTestPKI(t, t.TempDir())
		res, code = RunCLI(t, "ocsp", "generate", "--cert", p.Leaf.ChainFile, "--ca-cert", stranger.Root.CertFile,
			"--ca-key", stranger.Root.KeyFile, "--out", filepath.Join(dir, "never.ocsp"))
		if code == 0 || !strings.Contains(res, "not issued by") {
			t.Errorf("generate with a CA that did not issue the certificate: exit %d:\n%s", code, res)
		}
		if _, err := os.Stat(filepath.Join(dir, "never.ocsp")); err == nil {
			t.Error("a failed generate wrote its output file")
		}
	})

	t.Run("inspect", func(t *testing.T) {
		good := p.WriteFile("good.ocsp", p.Good())
		res, code := RunCLI(t, "ocsp", "inspect", good, "--cert", p.Leaf.ChainFile)
		if code != 0 || !strings.Contains(res, "good") || !strings.Contains(res, ocsp.FormatSerial(p.Leaf.Cert.SerialNumber)) ||
			!strings.Contains(res, "Verdict:") || strings.Contains(res, "NOT usable") {
			t.Errorf("inspect of a good response: exit %d:\n%s", code, res)
		}
		for name, der := range map[string][]byte{"revoked": p.Revoked(), "expired": p.Expired(), "other": p.ForOtherCert(),
			"badsig": p.BadlySigned()} {
			file := p.WriteFile(name+".ocsp", der)
			res, code := RunCLI(t, "ocsp", "inspect", file, "--cert", p.Leaf.ChainFile)
			if code == 0 || !strings.Contains(res, "NOT usable") || !strings.Contains(res, "FAIL") {
				t.Errorf("inspect of a %s response: exit %d (want non-zero):\n%s", name, code, res)
			}
		}
	})

	t.Run("fetch", func(t *testing.T) {
		out := filepath.Join(dir, "fetched.ocsp")
		if res, code := RunCLI(t, "ocsp", "fetch", "--cert", p.Leaf.ChainFile, "--out", out, "--timeout", "2s"); code == 0 {
			t.Errorf("fetch with the responder down succeeded:\n%s", res)
		}
		f.resp.Start()
		defer f.resp.Stop()
		res, code := RunCLI(t, "ocsp", "fetch", "--cert", p.Leaf.ChainFile, "--out", out)
		if code != 0 {
			t.Fatalf("fetch: exit %d:\n%s", code, res)
		}
		if _, err := ocsp.LoadFile(out, p.Leaf.Cert, p.Issuer.Cert, time.Now()); err != nil {
			t.Errorf("fetched file: %v", err)
		}
		f.resp.SetStatus(xocsp.Revoked)
		defer f.resp.SetStatus(xocsp.Good)
		revokedOut := filepath.Join(dir, "fetched-revoked.ocsp")
		if res, code := RunCLI(t, "ocsp", "fetch", "--cert", p.Leaf.ChainFile, "--out", revokedOut); code == 0 || !strings.Contains(res, "revoked") {
			t.Errorf("fetch of a revoked status: exit %d:\n%s", code, res)
		}
		if _, err := os.Stat(revokedOut); err == nil {
			t.Error("fetch wrote a revoked response")
		}
	})

	t.Run("status", func(t *testing.T) {
		f.resp.Start()
		defer f.resp.Stop()
		d := Start(t, DoTConfig, f.data)
		d.WaitOCSP(p.Leaf.ChainFile, stapleWait, stapleGood)
		res, code := RunCLI(t, "ocsp", "status", "--admin", d.AdminURL())
		if code != 0 || !strings.Contains(res, ocsp.FormatSerial(p.Leaf.Cert.SerialNumber)) || !strings.Contains(res, "good") ||
			!strings.Contains(res, "fetch") {
			t.Errorf("ocsp status: exit %d:\n%s", code, res)
		}
		res, code = RunCLI(t, "ocsp", "status", "--admin", d.AdminURL(), "--json")
		if code != 0 || !strings.Contains(res, `"status": "good"`) {
			t.Errorf("ocsp status --json: exit %d:\n%s", code, res)
		}
	})
}

// TestOCSPResponderFailuresKeepStaple: once a good staple is served, a responder that
// answers 500, garbage, tryLater, unknown, a response for another certificate or too
// slowly makes the refresh fail with that result while the staple stays served.
func TestOCSPResponderFailuresKeepStaple(t *testing.T) {
	t.Parallel()
	cases := []struct {
		mode   ResponderMode
		status int
		result string
	}{
		{Mode500, xocsp.Good, ocsp.ResultHTTPError},
		{ModeGarbage, xocsp.Good, ocsp.ResultInvalid},
		{ModeTryLater, xocsp.Good, ocsp.ResultTryLater},
		{ModeOK, xocsp.Unknown, ocsp.ResultUnknown},
		{ModeWrongCert, xocsp.Good, ocsp.ResultInvalid},
		{ModeSlow, xocsp.Good, ocsp.ResultTimeout},
	}
	for _, tc := range cases {
		name := string(tc.mode)
		if name == "" {
			name = "unknown"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFetchSetup(t)
			// Far above a loaded machine's answer, below the slow responder's 3 s.
			f.data.RequestTimeout = "2s"
			f.resp.Start()
			d := Start(t, DoTConfig, f.data)
			d.WaitOCSP(f.pki.Leaf.ChainFile, stapleWait, stapleGood)

			f.resp.SetMode(tc.mode)
			f.resp.SetStatus(tc.status)
			if code, body := d.Post("/api/v1/ocsp/refresh"); code != http.StatusAccepted {
				t.Fatalf("POST /api/v1/ocsp/refresh: %d %s", code, body)
			}
			st := d.WaitOCSP(f.pki.Leaf.ChainFile, stapleWait, func(s OCSPStatus) bool { return s.Failures >= 1 })
			if st.LastResult != tc.result || st.Status != ocsp.StateGood || st.LastError == "" {
				t.Errorf("/api/v1/ocsp = %+v; want last_result %s with the staple kept (status good) and the error", st, tc.result)
			}
			SClientStatus(t, d.Addr("dot"), "dns.test").RequireStaple(t, f.pki.Leaf.Cert)
			if v, ok := metricSum(d.Metrics(), "dnsfront_ocsp_update_failures_total", `source="fetch"`, `result="`+tc.result+`"`); !ok || v < 1 {
				t.Errorf(`dnsfront_ocsp_update_failures_total{source="fetch",result="%s"} = %v (present %v)`, tc.result, v, ok)
			}
			if !strings.Contains(d.Log(), "staple_kept=true") {
				t.Errorf("the failure's log line does not say the staple was kept:\n%s", d.Log())
			}
		})
	}
}

// TestOCSPStapleDroppedAtNextUpdate: a staple loaded from a file stops being served when
// its nextUpdate (less the clock skew allowance) comes, and that is logged and shown.
func TestOCSPStapleDroppedAtNextUpdate(t *testing.T) {
	t.Parallel()
	p := devpki.NewTestPKI(t, t.TempDir())
	// Valid now, unusable in 8 s (time enough to start and handshake on a loaded
	// machine): the validator allows ocsp.Skew of clock difference.
	end := time.Now().Add(ocsp.Skew + 8*time.Second)
	file := p.WriteFile("short.ocsp", p.Mint(p.Leaf.Cert, devpki.Response{Status: ocsp.StatusGood,
		ThisUpdate: time.Now().Add(-time.Hour), NextUpdate: end}))
	be := StartTestBackend(t)
	data := DoT(be.Addr, CertOf(p.Leaf))
	data.OCSPFiles = []string{file}
	d := Start(t, DoTConfig, data)
	SClientStatus(t, d.Addr("dot"), "dns.test").RequireStaple(t, p.Leaf.Cert)

	if !d.WaitLog("no longer served", 0, time.Until(end.Add(-ocsp.Skew))+10*time.Second) {
		t.Fatalf("the staple's end was not logged:\n%s", d.Log())
	}
	SClientStatus(t, d.Addr("dot"), "dns.test").RequireNoStaple(t)
	if st := d.OCSP(); len(st) != 1 || st[0].Status != ocsp.StateNone {
		t.Errorf("/api/v1/ocsp = %+v; want status none", st)
	}
	if v, ok := metricSum(d.Metrics(), "dnsfront_ocsp_staple_present", certLabel(p.Leaf)); !ok || v != 0 {
		t.Errorf("dnsfront_ocsp_staple_present = %v (present %v), want 0", v, ok)
	}
}

// TestOCSPIssuerFromAIA: the chain file holds the leaf alone; the server fetches the
// issuer once from the AIA caIssuers URL, then the staple.
func TestOCSPIssuerFromAIA(t *testing.T) {
	t.Parallel()
	r := NewResponder(t)
	p := devpki.NewTestPKI(t, t.TempDir(), devpki.WithOCSPURL(r.URL), devpki.WithIssuerURL(r.IssuerURL()))
	r.SetIssuer(p.Issuer)
	r.Start()
	leafOnly := p.WriteFile("leaf-only.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.Leaf.Cert.Raw}))
	be := StartTestBackend(t)
	d := Start(t, DoTConfig, DoT(be.Addr, DoTCert{Chain: leafOnly, Key: p.Leaf.KeyFile, Fetch: true}))
	d.WaitOCSP(leafOnly, stapleWait, stapleGood)
	SClientStatus(t, d.Addr("dot"), "dns.test").RequireStaple(t, p.Leaf.Cert)
	d.Post("/api/v1/ocsp/refresh")
	d.WaitOCSP(leafOnly, stapleWait, func(s OCSPStatus) bool { return s.Successes >= 2 })
	if n := r.IssuerRequests(); n != 1 {
		t.Errorf("the issuer was fetched %d times, want once", n)
	}
}

// TestOCSPCorruptCacheIgnored: a corrupt file in cache_dir is ignored (and removed) at
// start, the staple is fetched and written back valid.
func TestOCSPCorruptCacheIgnored(t *testing.T) {
	t.Parallel()
	f, d, files := startCached(t)
	d.Stop()
	path := filepath.Join(f.data.CacheDir, files[0])
	WriteFile(t, path, []byte("corrupt"))
	f.resp.Stop()

	d2 := Start(t, DoTConfig, f.data)
	SClientStatus(t, d2.Addr("dot"), "dns.test").RequireNoStaple(t)
	if !strings.Contains(d2.Log(), "ignoring cached response") {
		t.Errorf("the corrupt cache file was not reported:\n%s", d2.Log())
	}
	if _, err := os.Stat(path); err == nil {
		if b, _ := os.ReadFile(path); string(b) == "corrupt" {
			t.Error("the corrupt cache file was not removed")
		}
	}
	f.resp.Start()
	d2.Post("/api/v1/ocsp/refresh")
	d2.WaitOCSP(f.pki.Leaf.ChainFile, stapleWait, stapleGood)
	var err error
	if !testutil.Poll(15*time.Second, func() bool {
		_, err = ocsp.LoadFile(path, f.pki.Leaf.Cert, f.pki.Issuer.Cert, time.Now())
		return err == nil
	}) {
		t.Fatalf("the cache was not rewritten with a valid response: %v", err)
	}
}
