package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// brokenConfig has a typo'd key on line 2.
const brokenConfig = `binds:
  - listen_adress: "127.0.0.1:5353"
backends:
  - address: "127.0.0.1:53"
`

// answerA returns the first A record dnsfront answers for www.example.test.
func answerA(t *testing.T, addr string) string {
	t.Helper()
	r := MustExchange(t, "udp", addr, NewQuery("www.example.test", dns.TypeA))
	if a := AnswerStrings(r); len(a) > 0 {
		return a[0]
	}
	return "rcode " + dns.RcodeToString[r.Rcode]
}

func twoBackends(t *testing.T) (*Backend, *Backend) {
	a := StartBackend(t, BackendOptions{Records: []string{"www.example.test. 60 IN A 192.0.2.10"}})
	b := StartBackend(t, BackendOptions{Records: []string{"www.example.test. 60 IN A 192.0.2.20"}})
	return a, b
}

// TestReloadSIGHUP: SIGHUP applies a changed backend address; a broken file on SIGHUP is
// rejected with its position in the log and the previous state keeps serving.
func TestReloadSIGHUP(t *testing.T) {
	t.Parallel()
	a, b := twoBackends(t)
	d := startFE(t, do53FE(a.Addr))
	addr := d.Addr("dns")
	if got := answerA(t, addr); got != "192.0.2.10" {
		t.Fatalf("before reload: %s, want 192.0.2.10 from backend A", got)
	}

	d.Rewrite(do53FE(b.Addr).YAML(), nil)
	reload(t, d)
	// The new state is published before "reloaded" is logged: no polling needed.
	if got := answerA(t, addr); got != "192.0.2.20" {
		t.Errorf("after SIGHUP: %s, want 192.0.2.20 from backend B", got)
	}
	nA := a.Count("")

	d.WriteRaw(brokenConfig)
	logLen := len(d.Log())
	d.Signal(syscall.SIGHUP)
	if !d.WaitLog("reload rejected", logLen, 10*time.Second) {
		t.Fatal("a broken file on SIGHUP was not reported as rejected in the log")
	}
	if l := d.Log()[logLen:]; !strings.Contains(l, d.Config+":2:5") || !strings.Contains(l, "listen_adress") {
		t.Errorf("the rejection does not say where and why:\n%s", l)
	}
	for range 5 {
		if got := answerA(t, addr); got != "192.0.2.20" {
			t.Errorf("after a rejected reload: %s, want 192.0.2.20 from backend B", got)
		}
	}
	if n := a.Count(""); n != nA {
		t.Errorf("backend A got %d queries after it was removed", n-nA)
	}
	if v := d.WaitMetric("dnsfront_reload_failures_total", 10*time.Second, func(v float64) bool { return v >= 1 }); v != 1 {
		t.Errorf("dnsfront_reload_failures_total = %v, want 1", v)
	}
	if v := d.Metric("dnsfront_reloads_total"); v != 1 {
		t.Errorf("dnsfront_reloads_total = %v, want 1", v)
	}
}

// TestReloadAPI: POST /api/v1/reload applies a good file with 200 and rejects a broken
// one with 422 and the error, leaving the previous state serving.
func TestReloadAPI(t *testing.T) {
	t.Parallel()
	a, b := twoBackends(t)
	d := startFE(t, do53FE(a.Addr))
	addr := d.Addr("dns")

	d.Rewrite(do53FE(b.Addr).YAML(), nil)
	code, body := d.Post("/api/v1/reload")
	if code != http.StatusOK || !strings.Contains(body, `"ok"`) {
		t.Fatalf("reload of a good file: %d %s", code, body)
	}
	// The new state is published before the API answers: no polling needed.
	if got := answerA(t, addr); got != "192.0.2.20" {
		t.Errorf("after API reload: %s, want 192.0.2.20", got)
	}
	backends, _ := d.Status()["backends"].([]any)
	if len(backends) != 1 || !strings.Contains(toString(backends[0]), b.Addr) {
		t.Errorf("status backends = %v, want only %s", backends, b.Addr)
	}

	d.WriteRaw(brokenConfig)
	code, body = d.Post("/api/v1/reload")
	if code != http.StatusUnprocessableEntity {
		t.Errorf("reload of a broken file: status %d, want 422; body %s", code, body)
	}
	if !strings.Contains(body, "2:5") || !strings.Contains(body, "listen_adress") {
		t.Errorf("422 body does not carry the error with its position: %s", body)
	}
	if got := answerA(t, addr); got != "192.0.2.20" {
		t.Errorf("after a rejected API reload: %s, want 192.0.2.20", got)
	}

	// A change of listeners is applied by a reload (listeners_test.go has the details).
	d.Rewrite(strings.Replace(do53FE(a.Addr).YAML(), `{{port "dns"}}`, `{{port "other"}}`, 1), nil)
	if code, body = d.Post("/api/v1/reload"); code != http.StatusOK {
		t.Errorf("reload that changes binds: %d %s; want 200", code, body)
	}
	if got := answerA(t, d.Addr("other")); got != "192.0.2.10" {
		t.Errorf("after a listener change, the new listener (backend a): %s, want 192.0.2.10", got)
	}
}

func toString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
