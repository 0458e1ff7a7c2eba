package ocsp_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/dnsfront/dnsfront/ocsp"
)

func TestManagerFetchesWithoutFile(t *testing.T) {
	e := newEnv(t)
	m := e.start()
	if err := m.Set([]ocsp.CertSource{e.source()}); err != nil {
		t.Fatal(err)
	}
	if ev := e.pubs.next(t); ev.id != "leaf" || ev.s != nil {
		t.Fatalf("first publication %+v, want nil (nothing yet)", ev)
	}
	ev := e.pubs.next(t)
	if ev.s == nil || ev.s.Serial.Cmp(e.pki.Leaf.Cert.SerialNumber) != 0 {
		t.Fatalf("fetched staple %+v", ev.s)
	}
	st := e.waitStatus("good", func(s ocsp.CertStatus) bool { return s.Successes == 1 })
	if st.Status != ocsp.StateGood || st.Source != ocsp.SourceFetch || st.LastResult != ocsp.ResultOK || st.Responder != e.resp.URL() {
		t.Errorf("status %+v", st)
	}
	waitFile(t, filepath.Join(e.opts.CacheDir, "leaf.der"), ev.s.DER)
	if got := e.resp.methods(); len(got) != 1 || got[0] != "GET" {
		t.Errorf("requests %v, want one GET", got)
	}
	e.waitLog("result=ok", "cert=leaf.chain.pem", "source=fetch", "successes=1", "next_attempt=")
	mt := gather(t, m)
	if mt["dnsfront_ocsp_staple_present"] != 1 || mt["dnsfront_ocsp_update_attempts_total{result=ok,source=fetch}"] != 1 {
		t.Errorf("metrics %v", mt)
	}
	if d := mt["dnsfront_ocsp_staple_next_update_seconds"]; d < 3*24*3600 || d > 4*24*3600 {
		t.Errorf("seconds until nextUpdate %v, want about 4 days", d)
	}
}

func TestManagerRefreshAtScheduledTime(t *testing.T) {
	e := newEnv(t)
	m := e.start()
	m.Set([]ocsp.CertSource{e.source()})
	e.pubs.next(t) // nil
	first := e.pubs.next(t).s
	st := e.waitStatus("scheduled", func(s ocsp.CertStatus) bool { return s.Successes == 1 })
	// The window ends at the staple's expiry (nextUpdate less Skew): from
	// nextUpdate, the middle would be 2.5 minutes late and the test would
	// fail whenever the jitter is that small.
	window := first.Expiry().Sub(first.ThisUpdate)
	lo, hi := first.ThisUpdate.Add(window/2), first.ThisUpdate.Add(window/2+window/10)
	if st.NextRefresh.Before(lo) || st.NextRefresh.After(hi) {
		t.Fatalf("next refresh %s outside the middle of the window [%s, %s]", st.NextRefresh, lo, hi)
	}
	// One second early: nothing happens.
	e.clk.waitTimer(t, *st.NextRefresh)
	e.clk.Set(st.NextRefresh.Add(-time.Second))
	e.pubs.none(t, 50*time.Millisecond)
	if n := len(e.resp.methods()); n != 1 {
		t.Fatalf("%d requests before the refresh time", n)
	}
	e.clk.Set(*st.NextRefresh)
	second := e.pubs.next(t).s
	if second == nil || !second.ThisUpdate.After(first.ThisUpdate) {
		t.Fatalf("refresh published %+v after %+v", second, first)
	}
	e.waitStatus("two successes", func(s ocsp.CertStatus) bool { return s.Successes == 2 })
}

func TestManagerFailuresKeepStapleAndBackOff(t *testing.T) {
	for _, c := range []struct{ mode, result string }{
		{"down", ocsp.ResultHTTPError},
		{"slow", ocsp.ResultTimeout},
		{"500", ocsp.ResultHTTPError},
		{"garbage", ocsp.ResultInvalid},
		{"trylater", ocsp.ResultTryLater},
		{"unknown", ocsp.ResultUnknown},
		{"wrong", ocsp.ResultInvalid},
	} {
		t.Run(c.mode, func(t *testing.T) {
			e := newEnv(t)
			// A staple from a file, past its midpoint so that a refresh is due
			// at once.
			file := e.pki.WriteFile("leaf.ocsp", e.pki.Mint(e.pki.Leaf.Cert, devpki.Response{Status: ocsp.StatusGood,
				ThisUpdate: e.clk.Now().Add(-3 * 24 * time.Hour), NextUpdate: e.clk.Now().Add(2 * time.Hour)}))
			src := e.source()
			src.Files = []string{file}
			e.resp.setMode(c.mode)
			if c.mode == "slow" {
				e.opts.RequestTimeout = 200 * time.Millisecond
			}
			if c.mode == "down" {
				e.resp.srv.Close()
			}
			m := e.start()
			if err := m.Set([]ocsp.CertSource{src}); err != nil {
				t.Fatal(err)
			}
			if ev := e.pubs.next(t); ev.s == nil {
				t.Fatal("file staple not published by Set")
			}
			before := e.clk.Now()
			st := e.waitStatus("one failure", func(s ocsp.CertStatus) bool { return s.Failures == 1 })
			if st.LastResult != c.result || st.Status != ocsp.StateGood || st.Source != ocsp.SourceFile || st.LastError == "" {
				t.Errorf("status %+v, want result %s with the file staple kept", st, c.result)
			}
			// First retry: MinRefreshDelay with half of it jittered.
			if d := st.NextRefresh.Sub(before); d < 30*time.Second || d > time.Minute {
				t.Errorf("first retry in %s, want 30s..1m", d)
			}
			e.clk.waitTimer(t, *st.NextRefresh)
			e.clk.Set(*st.NextRefresh)
			now := e.clk.Now()
			st = e.waitStatus("two failures", func(s ocsp.CertStatus) bool { return s.Failures == 2 })
			if d := st.NextRefresh.Sub(now); d < time.Minute || d > 2*time.Minute {
				t.Errorf("second retry in %s, want 1m..2m (doubled)", d)
			}
			e.pubs.none(t, 20*time.Millisecond)
			if e.pubs.get("leaf") == nil {
				t.Error("staple dropped after a failure")
			}
			e.waitLog("result=" + c.result)
		})
	}
}

func TestManagerRevoked(t *testing.T) {
	e := newEnv(t, devpki.WithMustStaple())
	file := e.pki.WriteFile("leaf.ocsp", e.pki.Mint(e.pki.Leaf.Cert, devpki.Response{Status: ocsp.StatusGood,
		ThisUpdate: e.clk.Now().Add(-3 * 24 * time.Hour), NextUpdate: e.clk.Now().Add(2 * time.Hour)}))
	src := e.source()
	src.Files = []string{file}
	e.resp.setMode("revoked")
	m := e.start()
	m.Set([]ocsp.CertSource{src})
	if e.pubs.next(t).s == nil {
		t.Fatal("file staple not published")
	}
	if ev := e.pubs.next(t); ev.s != nil {
		t.Fatalf("revoked certificate still stapled: %+v", ev.s)
	}
	st := e.waitStatus("revoked", func(s ocsp.CertStatus) bool { return s.Status == ocsp.StateRevoked })
	if st.Reason != "keyCompromise" || st.RevokedAt == nil || !st.MustStaple || st.LastResult != ocsp.ResultRevoked {
		t.Errorf("status %+v", st)
	}
	e.waitLog("level=ERROR", "reason=keyCompromise", "serial=0x"+e.pki.Leaf.Cert.SerialNumber.Text(16))
	metrics := gather(t, m)
	for _, name := range []string{"dnsfront_ocsp_certificate_revoked", "dnsfront_ocsp_must_staple_without_staple"} {
		if v := metrics[name]; v != 1 {
			t.Errorf("%s = %v, want 1", name, v)
		}
	}
	if v := metrics["dnsfront_ocsp_update_failures_total{result=revoked,source=fetch}"]; v != 1 {
		t.Errorf("failures_total = %v: %v", v, metrics)
	}
}

func TestManagerDropsStapleAtNextUpdate(t *testing.T) {
	e := newEnv(t)
	next := e.clk.Now().Add(time.Hour)
	file := e.pki.WriteFile("leaf.ocsp", e.pki.Mint(e.pki.Leaf.Cert, devpki.Response{Status: ocsp.StatusGood,
		ThisUpdate: e.clk.Now().Add(-time.Hour), NextUpdate: next}))
	m := e.start()
	// Files only: nothing can refresh it.
	m.Set([]ocsp.CertSource{{ID: "leaf", Chain: e.pki.Leaf.Chain, Files: []string{file}}})
	s := e.pubs.next(t).s
	if s == nil {
		t.Fatal("not published")
	}
	e.clk.waitTimer(t, s.Expiry())
	e.clk.Set(s.Expiry().Add(-time.Second))
	e.pubs.none(t, 30*time.Millisecond)
	e.clk.Set(s.Expiry())
	if ev := e.pubs.next(t); ev.s != nil {
		t.Fatalf("expired staple still published: %+v", ev.s)
	}
	if st := e.status(); st.Status != ocsp.StateNone {
		t.Errorf("status %+v", st)
	}
	e.waitLog("no longer served")
}

func TestManagerWarmCacheStaplesFromSet(t *testing.T) {
	e := newEnv(t)
	m := e.start()
	m.Set([]ocsp.CertSource{e.source()})
	e.pubs.next(t)
	fetched := e.pubs.next(t).s
	waitFile(t, filepath.Join(e.opts.CacheDir, "leaf.der"), fetched.DER)
	m.Close()

	// Restart with the responder down: the cache alone staples, and it does
	// so before Set returns.
	e.resp.srv.Close()
	pubs := newPublications()
	m2 := ocsp.NewManager(e.opts, pubs.publish)
	defer m2.Close()
	if err := m2.Set([]ocsp.CertSource{e.source()}); err != nil {
		t.Fatal(err)
	}
	if s := pubs.get("leaf"); s == nil || string(s.DER) != string(fetched.DER) || m2.Staple("leaf") != s {
		t.Fatalf("no cached staple right after Set: %+v", s)
	}
	st := m2.Status()[0]
	if st.Source != ocsp.SourceCache || st.Status != ocsp.StateGood {
		t.Errorf("status %+v", st)
	}
	// The cached staple is past nothing: the next fetch waits for its midpoint.
	if st.NextRefresh == nil || st.NextRefresh.Sub(e.clk.Now()) < time.Hour {
		t.Errorf("next refresh %v: a warm cache must not cause an immediate fetch", st.NextRefresh)
	}
}

func TestManagerCorruptCacheIsRemoved(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.opts.CacheDir, "leaf.der")
	os.WriteFile(path, e.pki.Expired(), 0o644)
	m := e.start()
	m.Set([]ocsp.CertSource{e.source()})
	if ev := e.pubs.next(t); ev.s != nil {
		t.Fatalf("expired cache stapled: %+v", ev.s)
	}
	ev := e.pubs.next(t)
	if ev.s == nil {
		t.Fatal("no fetch after a bad cache")
	}
	if !strings.Contains(e.logs.String(), "ignoring cached response") {
		t.Errorf("bad cache not logged:\n%s", e.logs)
	}
	waitFile(t, path, ev.s.DER)
}

func TestManagerReloadKeepsState(t *testing.T) {
	e := newEnv(t)
	m := e.start()
	m.Set([]ocsp.CertSource{e.source()})
	e.pubs.next(t)
	s := e.pubs.next(t).s
	before := e.waitStatus("fetched", func(st ocsp.CertStatus) bool { return st.Successes == 1 })
	other := e.pki.IssueLeaf("second")
	for i := 0; i < 3; i++ {
		if err := m.Set([]ocsp.CertSource{e.source(), {ID: "second", Chain: other.Chain}}); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.pubs.get("leaf"); got != s {
		t.Errorf("reload changed the staple")
	}
	st := m.Status()[0]
	if st.Successes != 1 || !st.NextRefresh.Equal(*before.NextRefresh) || st.Source != ocsp.SourceFetch {
		t.Errorf("state after reload %+v, before %+v", st, before)
	}
	if n := len(e.resp.methods()); n != 1 {
		t.Errorf("%d requests: reloads must not fetch again", n)
	}
	// Removing a certificate unpublishes it.
	m.Set([]ocsp.CertSource{{ID: "second", Chain: other.Chain}})
	deadline := time.After(10 * time.Second)
	for e.pubs.get("leaf") != nil {
		select {
		case <-e.pubs.events:
		case <-deadline:
			t.Fatal("removed certificate still published")
		}
	}
}

func TestManagerUnwritableCacheStillPublishes(t *testing.T) {
	e := newEnv(t)
	blocker := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocker, nil, 0o644)
	e.opts.CacheDir = filepath.Join(blocker, "cache") // a directory under a file
	m := e.start()
	m.Set([]ocsp.CertSource{e.source()})
	e.pubs.next(t)
	if ev := e.pubs.next(t); ev.s == nil {
		t.Fatal("not published")
	}
	e.waitLog("cache write failed")
}

func TestManagerDelegatedResponder(t *testing.T) {
	t.Run("with EKU", func(t *testing.T) {
		e := newEnv(t, devpki.WithIntermediate(), devpki.WithDelegatedResponder(true))
		e.start().Set([]ocsp.CertSource{e.source()})
		e.pubs.next(t)
		if s := e.pubs.next(t).s; s == nil || !s.Delegated {
			t.Fatalf("delegated response not stapled: %+v", s)
		}
	})
	t.Run("without EKU", func(t *testing.T) {
		e := newEnv(t, devpki.WithDelegatedResponder(false))
		e.start().Set([]ocsp.CertSource{e.source()})
		e.pubs.next(t)
		st := e.waitStatus("failure", func(s ocsp.CertStatus) bool { return s.Failures == 1 })
		if st.LastResult != ocsp.ResultInvalid || !strings.Contains(st.LastError, "OCSPSigning") {
			t.Errorf("status %+v", st)
		}
	})
}

func TestManagerIssuerFromAIA(t *testing.T) {
	e := newEnv(t)
	e.pki = devpki.NewTestPKI(t, t.TempDir(), devpki.WithNow(e.clk.Now()), devpki.WithOCSPURL(e.resp.URL()),
		devpki.WithIssuerURL(e.resp.IssuerURL()))
	e.resp.pki = e.pki
	src := e.source()
	src.Chain = src.Chain[:1] // the leaf alone
	m := e.start()
	m.Set([]ocsp.CertSource{src})
	e.pubs.next(t)
	if s := e.pubs.next(t).s; s == nil {
		t.Fatal("no staple with the issuer from caIssuers")
	}
	st := e.waitStatus("fetched", func(s ocsp.CertStatus) bool { return s.Successes == 1 })
	e.clk.waitTimer(t, *st.NextRefresh)
	e.clk.Set(*st.NextRefresh)
	e.waitStatus("refreshed", func(s ocsp.CertStatus) bool { return s.Successes == 2 })
	e.resp.mu.Lock()
	n := e.resp.issuerN
	e.resp.mu.Unlock()
	if n != 1 {
		t.Errorf("issuer fetched %d times, want once", n)
	}
}

func TestManagerNoResponderURL(t *testing.T) {
	e := newEnv(t)
	e.pki = devpki.NewTestPKI(t, t.TempDir(), devpki.WithNow(e.clk.Now()))
	m := e.start()
	for i := 0; i < 2; i++ {
		if err := m.Set([]ocsp.CertSource{e.source()}); err != nil {
			t.Fatal(err)
		}
	}
	st := e.status()
	if st.Status != ocsp.StateNotApplicable || st.StatusDetail != ocsp.DetailNotApplicable || st.NextRefresh != nil || st.LastResult != "" {
		t.Errorf("status %+v", st)
	}
	logs := e.logs.String()
	if strings.Count(logs, "no OCSP responder URL") != 1 || !strings.Contains(logs, "level=INFO") ||
		strings.Contains(logs, "level=ERROR") || strings.Contains(logs, "level=WARN") {
		t.Errorf("want one info line and no warning:\n%s", logs)
	}
	mt := gather(t, m)
	if mt["dnsfront_ocsp_not_applicable"] != 1 || mt["dnsfront_ocsp_staple_present"] != 0 || mt["dnsfront_ocsp_consecutive_failures"] != 0 {
		t.Errorf("metrics %v", mt)
	}
}

func TestManagerMustStapleWithoutStaple(t *testing.T) {
	e := newEnv(t, devpki.WithMustStaple())
	e.resp.setMode("500")
	m := e.start()
	m.Set([]ocsp.CertSource{e.source()})
	st := e.waitStatus("failure", func(s ocsp.CertStatus) bool { return s.Failures == 1 })
	if !st.MustStaple || st.Status != ocsp.StateNone {
		t.Errorf("status %+v", st)
	}
	e.waitLog("must-staple certificate has no valid staple")
	mt := gather(t, m)
	if mt["dnsfront_ocsp_must_staple_without_staple"] != 1 || mt["dnsfront_ocsp_staple_present"] != 0 {
		t.Errorf("metrics %v", mt)
	}
}

func TestManagerGenerateSource(t *testing.T) {
	e := newEnv(t)
	m := e.start()
	src := ocsp.CertSource{ID: "dev", Chain: e.pki.Leaf.Chain[:1], Generate: &ocsp.GenerateSpec{
		CACertFile: e.pki.Issuer.CertFile, CAKeyFile: e.pki.Issuer.KeyFile, Validity: 24 * time.Hour}}
	if err := m.Set([]ocsp.CertSource{src}); err != nil {
		t.Fatal(err)
	}
	first := e.pubs.get("dev")
	if first == nil {
		t.Fatal("generate source did not staple from Set")
	}
	e.pubs.next(t)
	st := m.Status()[0]
	if st.Source != ocsp.SourceGenerate || st.NextRefresh == nil {
		t.Fatalf("status %+v", st)
	}
	// The window ends at the staple's expiry (nextUpdate less Skew), not at
	// nextUpdate: the middle of 24h would fail whenever the jitter is small.
	window := first.Expiry().Sub(first.ThisUpdate)
	if d := st.NextRefresh.Sub(first.ThisUpdate); d < window/2 || d >= window/2+window/10 {
		t.Errorf("re-mint planned after %s, want the middle of the %s window plus up to a tenth of it", d, window)
	}
	e.clk.waitTimer(t, *st.NextRefresh)
	e.clk.Set(*st.NextRefresh)
	second := e.pubs.next(t).s
	if second == nil || !second.ThisUpdate.After(first.ThisUpdate) {
		t.Fatalf("no re-mint: %+v", second)
	}
	if len(e.resp.methods()) != 0 {
		t.Error("generate source went to the network")
	}
	// A CA that did not issue the certificate is a configuration error.
	other := devpki.NewTestPKI(t, t.TempDir())
	bad := src
	bad.Generate = &ocsp.GenerateSpec{CACertFile: other.Issuer.CertFile, CAKeyFile: other.Issuer.KeyFile}
	if err := m.Set([]ocsp.CertSource{bad}); err == nil || !strings.Contains(err.Error(), other.Issuer.CertFile) {
		t.Errorf("err = %v", err)
	}
	if e.pubs.get("dev") == nil {
		t.Error("a failed Set changed the published staple")
	}
}

func TestManagerFileVsFetchFresherWins(t *testing.T) {
	e := newEnv(t)
	// A file fresher than anything the responder gives (thisUpdate in the
	// future within skew): the fetched response does not replace it.
	file := e.pki.WriteFile("leaf.ocsp", e.pki.Mint(e.pki.Leaf.Cert, devpki.Response{Status: ocsp.StatusGood,
		ThisUpdate: e.clk.Now().Add(time.Minute), NextUpdate: e.clk.Now().Add(time.Hour)}))
	src := e.source()
	src.Files = []string{file}
	m := e.start()
	m.Set([]ocsp.CertSource{src})
	fileStaple := e.pubs.next(t).s
	// The file's window is short: refresh due at its midpoint.
	st := e.status()
	e.clk.waitTimer(t, *st.NextRefresh)
	e.clk.Set(*st.NextRefresh)
	fetched := e.pubs.next(t).s
	if fetched == fileStaple || fetched.ThisUpdate.Before(fileStaple.ThisUpdate) {
		t.Fatalf("fetched %+v, file %+v", fetched, fileStaple)
	}
	if st := e.waitStatus("fetch", func(s ocsp.CertStatus) bool { return s.Successes == 1 }); st.Source != ocsp.SourceFetch {
		t.Errorf("status %+v", st)
	}
}

// gather scrapes the collector into name{labels} → value, and also name
// alone for single-series metrics.
func gather(t *testing.T, m *ocsp.Manager) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(m.Collector()); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			v := value(mt)
			out[mf.GetName()] = v
			var labels []string
			for _, l := range mt.GetLabel() {
				if l.GetName() == "result" || l.GetName() == "source" {
					labels = append(labels, l.GetName()+"="+l.GetValue())
				}
			}
			if len(labels) > 0 {
				out[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = v
			}
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	if g := m.GetGauge(); g != nil {
		return g.GetValue()
	}
	return m.GetCounter().GetValue()
}

func TestManagerSchedulesByCertificateExpiry(t *testing.T) {
	e := newEnv(t)
	now := e.clk.Now()
	// The certificate ends in two days, the responses in four: plan by the
	// certificate.
	e.pki = devpki.NewTestPKI(t, t.TempDir(), devpki.WithNow(now), devpki.WithOCSPURL(e.resp.URL()),
		devpki.WithLeafValidity(now.Add(-time.Hour), now.Add(48*time.Hour)))
	e.resp.pki = e.pki
	e.start().Set([]ocsp.CertSource{e.source()})
	e.pubs.next(t)
	s := e.pubs.next(t).s
	if s == nil || !s.NextUpdate.After(e.pki.Leaf.Cert.NotAfter) {
		t.Fatalf("response ending after the certificate not accepted: %+v", s)
	}
	st := e.waitStatus("scheduled", func(s ocsp.CertStatus) bool { return s.Successes == 1 })
	// The middle of [thisUpdate, notAfter], plus up to a tenth of it: the
	// response's thisUpdate is a minute before now, so a bound at now+24h
	// would fail whenever the jitter is under 30 seconds.
	window := e.pki.Leaf.Cert.NotAfter.Sub(s.ThisUpdate)
	lo, hi := s.ThisUpdate.Add(window/2), s.ThisUpdate.Add(window/2+window/10)
	if st.NextRefresh.Before(lo) || st.NextRefresh.After(hi) {
		t.Errorf("refresh at %s, want the middle of the certificate's remaining two days [%s, %s]", st.NextRefresh, lo, hi)
	}
}

// Prepare reads and checks without publishing or changing anything; a failed Prepare
// leaves the served staple alone; Commit installs what Prepare read, and cannot fail.
func TestManagerPrepareThenCommit(t *testing.T) {
	e := newEnv(t)
	now := e.clk.Now()
	mint := func(name string, this time.Time) string {
		return e.pki.WriteFile(name, e.pki.Mint(e.pki.Leaf.Cert, devpki.Response{Status: ocsp.StatusGood,
			ThisUpdate: this, NextUpdate: now.Add(48 * time.Hour)}))
	}
	older, newer := mint("old.ocsp", now.Add(-2*time.Hour)), mint("new.ocsp", now.Add(-time.Hour))
	m := e.start()
	if err := m.Set([]ocsp.CertSource{{ID: "leaf", Chain: e.pki.Leaf.Chain, Files: []string{older}}}); err != nil {
		t.Fatal(err)
	}
	first := e.pubs.next(t).s

	other := devpki.NewTestPKI(t, t.TempDir())
	_, err := m.Prepare([]ocsp.CertSource{{ID: "leaf", Name: "leaf.pem", Chain: e.pki.Leaf.Chain, Files: []string{newer},
		Generate: &ocsp.GenerateSpec{CACertFile: other.Issuer.CertFile, CAKeyFile: other.Issuer.KeyFile}}})
	var se *ocsp.SourceError
	if !errors.As(err, &se) || se.Index != 0 || se.Name != "leaf.pem" {
		t.Fatalf("err = %v, want a SourceError for certificate 1 (leaf.pem)", err)
	}
	p, err := m.Prepare([]ocsp.CertSource{{ID: "leaf", Chain: e.pki.Leaf.Chain, Files: []string{newer}}})
	if err != nil {
		t.Fatal(err)
	}
	e.pubs.none(t, 20*time.Millisecond)
	if got := m.Staple("leaf"); got != first {
		t.Fatal("Prepare changed the staple held")
	}
	m.Commit(p)
	if got := e.pubs.next(t).s; got == nil || !got.ThisUpdate.Equal(now.Add(-time.Hour).Truncate(time.Second)) {
		t.Fatalf("after Commit published %+v, want the newer file's response", got)
	}
}
