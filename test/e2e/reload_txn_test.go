package e2e

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/internal/devpki"
)

// twoTicketBinds serves two DoT binds, each with its own ticket key file.
const twoTicketBinds = `
general:
  event_loops: 2
  log_level: info
acl: ["127.0.0.0/8"]
binds:
{{- range $i, $f := .Files}}
  - listen_address: "127.0.0.1:{{port (printf "dot%d" $i)}}"
    protocol: DoT
    tls:
      certificates: [{certificate: "{{$.Chain}}", key: "{{$.Key}}"}]
      ticket_key_file: "{{$f}}"
{{- end}}
backends:
  - address: "{{.Backend}}"
    name: b1
    health_checks: {mode: up}
webserver:
  listen_addresses: ["127.0.0.1:{{port "admin"}}"]
`

type ticketBindsData struct {
	Chain, Key, Backend string
	Files               []string
}

// TestFailedReloadKeepsTicketKeys: a reload whose second bind names a ticket key file
// that does not load is rejected, naming the file and the key, and changes nothing: the
// first bind, whose new key file is fine, keeps its keys, so a session saved before
// still resumes. Today's reload read the key files bind by bind and replaced the first
// ring before failing on the second. Once the bad file is fixed, the reload applies the
// first bind's new keys, and the old session no longer resumes: the check is sharp.
func TestFailedReloadKeepsTicketKeys(t *testing.T) {
	t.Parallel()
	p := devpki.NewTestPKI(t, t.TempDir())
	be := StartTestBackend(t)
	answer := net.ParseIP(testAnswer)
	key := func(name string, size int) string {
		f := filepath.Join(p.Dir, name)
		WriteFile(t, f, randomBytes(t, size))
		return f
	}
	data := ticketBindsData{Chain: p.Leaf.ChainFile, Key: p.Leaf.KeyFile, Backend: be.Addr,
		Files: []string{key("a.key", 80), key("b.key", 80)}}
	d := Start(t, twoTicketBinds, data)
	addr := d.Addr("dot0")

	sess := filepath.Join(t.TempDir(), "sess.pem")
	first := StartSClient(t, "-connect", addr, "-servername", "dns.test", "-tls1_3", "-sess_out", sess)
	first.WaitFor("Verify return code")
	first.Query(testName, 1, answer) // TLS 1.3 tickets come after the handshake
	if out := first.Finish(); !strings.Contains(out, "New, ") {
		t.Fatalf("first connection not new:\n%s", out)
	}
	resumes := func() bool {
		t.Helper()
		s := StartSClient(t, "-connect", addr, "-servername", "dns.test", "-tls1_3", "-sess_in", sess)
		s.WaitFor("Verify return code")
		s.Query(testName, 2, answer)
		return strings.Contains(s.Finish(), "Reused, ")
	}
	if !resumes() {
		t.Fatal("no resumption before any reload")
	}

	// The first bind moves to a new, valid key file; the second to one of the wrong size.
	bad := key("bad.key", 79)
	next := data
	next.Files = []string{key("a2.key", 80), bad}
	d.Rewrite(twoTicketBinds, next)
	// Several attempts: the old code's outcome depended on map order.
	for range 4 {
		mark := len(d.Log())
		d.Signal(syscall.SIGHUP)
		if !d.WaitLog("reload rejected", mark, 10*time.Second) {
			t.Fatalf("a ticket key file of 79 bytes was not rejected:\n%s", d.Log()[mark:])
		}
		l := d.Log()[mark:]
		if !strings.Contains(l, bad) || !strings.Contains(l, "binds[1].tls.ticket_key_file") {
			t.Errorf("the rejection does not name %s and binds[1].tls.ticket_key_file:\n%s", bad, l)
		}
	}
	if !resumes() {
		t.Fatal("a rejected reload changed the first bind's ticket keys: the session saved before no longer resumes")
	}

	next.Files[1] = key("b2.key", 80)
	d.Rewrite(twoTicketBinds, next)
	reload(t, d)
	if resumes() {
		t.Error("after a successful reload with a new key file the old session still resumes: keys not applied")
	}
}

// TestReloadErrorNamesFileAndKey: a ticket key file that does not load is reported with
// the configuration's file:line and key path, and the old state keeps serving.
func TestReloadErrorNamesFileAndKey(t *testing.T) {
	t.Parallel()
	s := startDoTServer(t)
	old, err := os.ReadFile(s.d.Config)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(old), "minimum_version:", "ticket_key_file: \""+filepath.Join(s.pki.Dir, "missing.key")+"\"\n      minimum_version:", 1)
	s.d.WriteRaw(cfg)
	mark := len(s.d.Log())
	s.d.Signal(syscall.SIGHUP)
	if !s.d.WaitLog("reload rejected", mark, 10*time.Second) {
		t.Fatalf("a missing ticket key file was not rejected:\n%s", s.d.Log()[mark:])
	}
	l := s.d.Log()[mark:]
	for _, want := range []string{filepath.Base(s.d.Config) + ":", "binds[0].tls.ticket_key_file", "missing.key"} {
		if !strings.Contains(l, want) {
			t.Errorf("rejection lacks %q:\n%s", want, l)
		}
	}
	SClientStatus(t, s.d.Addr("dot"), "dns.test").RequireStaple(t, s.pki.Leaf.Cert)
}

// TestBackendCountersAcrossReload: an unchanged backend keeps its metric series across
// reloads (today each reload built new counters at zero), its outstanding gauge never
// goes negative, and the policy names check-config accepts start and reload alike.
func TestBackendCountersAcrossReload(t *testing.T) {
	t.Parallel()
	be := startFaultBackend(t, FaultOptions{Synth: "192.0.2.1", HealthName: healthName})
	cfg := feConfig{
		DefaultPolicy: "RoundRobin",
		Binds:         []feBind{{Port: "dns", Protocol: "Do53"}},
		Backends:      []feBackend{{Name: "kept", Addr: be.Addr, Health: autoHealth(800, 1, 1, "")}},
		Pools:         []fePool{{Name: "", Policy: "leastoutstanding"}},
	}
	d := startFE(t, cfg)
	label := `backend="kept"`
	if fails := queryNames(d.Addr("dns"), names("before", 20), 4); len(fails) > 0 {
		t.Fatalf("%d queries failed, first: %s", len(fails), fails[0])
	}
	q0, _ := waitMetricOf(t, d, 10*time.Second, func(v float64) bool { return v >= 20 }, "dnsfront_backend_queries_total", label)
	for range 3 {
		reload(t, d)
	}
	if v := metricOf(t, d, "dnsfront_backend_queries_total", label); v < q0 {
		t.Errorf("dnsfront_backend_queries_total went %v → %v across reloads, want it kept", q0, v)
	}
	if v := backendUp(t, d, "kept"); v != 1 {
		t.Errorf("dnsfront_backend_up = %v right after the reloads", v)
	}
	if fails := queryNames(d.Addr("dns"), names("after", 20), 4); len(fails) > 0 {
		t.Fatalf("%d queries failed after the reloads, first: %s", len(fails), fails[0])
	}
	waitMetricOf(t, d, 10*time.Second, func(v float64) bool { return v >= q0+20 }, "dnsfront_backend_queries_total", label)
	if v := metricOf(t, d, "dnsfront_backend_outstanding", label); v < 0 {
		t.Errorf("dnsfront_backend_outstanding = %v", v)
	}
	if out, code := RunCLI(t, "check-config", "--config", d.Config); code != 0 {
		t.Errorf("check-config rejects what serves: %s", out)
	}
}
