package e2e

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/dnsfront/dnsfront/ocsp"
)

// TestOCSPNotApplicable: a certificate without an OCSP URL (Let's Encrypt's since 2025)
// with `fetch: true` and no other source is served bare and reported "not applicable" in
// the API, the CLI and the metrics, with one info line and no warning, across reloads.
func TestOCSPNotApplicable(t *testing.T) {
	t.Parallel()
	p := devpki.NewTestPKI(t, t.TempDir()) // no AIA OCSP URL
	be := StartTestBackend(t)
	c := CertOf(p.Leaf)
	c.Fetch = true
	d := Start(t, DoTConfig, DoT(be.Addr, c))

	SClientStatus(t, d.Addr("dot"), "dns.test", "-CAfile", p.Root.CertFile).RequireNoStaple(t)
	st := d.OCSP()
	if len(st) != 1 || st[0].Status != ocsp.StateNotApplicable || st[0].LastResult != "" || st[0].Failures != 0 {
		t.Fatalf("GET /api/v1/ocsp: %+v", st)
	}
	var raw []ocsp.CertStatus
	getJSON(t, d.AdminURL()+"/api/v1/ocsp", &raw)
	if len(raw) != 1 || !strings.HasPrefix(raw[0].StatusDetail, "not applicable") {
		t.Errorf("status_detail: %+v", raw)
	}
	out, err := exec.Command(Binary(t), "ocsp", "status", "--admin", d.AdminURL()).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "not applicable") {
		t.Errorf("dnsfront ocsp status: %v\n%s", err, out)
	}
	found := false
	for series, v := range d.Metrics() {
		if strings.HasPrefix(series, "dnsfront_ocsp_not_applicable{") && strings.Contains(series, p.Leaf.ChainFile) {
			found = true
			if v != 1 {
				t.Errorf("%s = %v", series, v)
			}
		}
	}
	if !found {
		t.Error("no dnsfront_ocsp_not_applicable series for the certificate")
	}

	for i := 0; i < 2; i++ {
		if code, body := d.Post("/api/v1/reload"); code != 200 {
			t.Fatalf("reload: %d %s", code, body)
		}
	}
	infos := 0
	for _, l := range strings.Split(d.Log(), "\n") {
		if !strings.Contains(l, "ocsp") {
			continue
		}
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
			t.Errorf("a certificate without OCSP URL looks like a failure: %s", l)
		}
		if strings.Contains(l, "no OCSP responder URL") {
			infos++
			if !strings.Contains(l, "level=INFO") {
				t.Errorf("not at info: %s", l)
			}
		}
	}
	if infos != 1 {
		t.Errorf("%d info lines about the missing URL, want 1:\n%s", infos, d.Log())
	}
	if st := d.OCSP(); len(st) != 1 || st[0].Status != ocsp.StateNotApplicable {
		t.Errorf("after reloads: %+v", st)
	}
}
