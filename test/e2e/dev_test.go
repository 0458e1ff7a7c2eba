package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// devPorts are the fixed ports of examples/dev.yaml, under the names the tests use.
var devPorts = []struct {
	port int
	name string
}{{10053, "dns"}, {10054, "demo"}, {10080, "admin"}, {10443, "doh"}, {10853, "dot"}}

// startDevConfig serves examples/dev.yaml, the configuration of `make run`, as shipped
// but for two things. Its fixed ports (Do53 10053, demo backend 10054, admin 10080, DoH
// 10443, DoT 10853) become free ones, and its relative paths (../state/pki, the dev PKI,
// and ../state/ocsp) resolve in a temporary directory: a `make run`, or another run of
// the suite on the same machine, may hold those ports and that state. It returns the
// process, serving with its demo backend up, and the dev PKI's directory.
func startDevConfig(t *testing.T) (*Dnsfront, string) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(ModuleRoot(t), "examples", "dev.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	dir := filepath.Join(root, "examples")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	// A port found free may be taken before dnsfront binds it: retry with new ports.
	for attempt := range 3 {
		d := &Dnsfront{t: t, Dir: dir, Config: filepath.Join(dir, "dev.yaml"),
			PIDFile: filepath.Join(root, "dnsfront.pid"), ports: &ports{byName: map[string]int{}}}
		text := string(src)
		for _, p := range devPorts {
			fixed := "127.0.0.1:" + strconv.Itoa(p.port)
			if !strings.Contains(text, fixed) {
				t.Fatalf("examples/dev.yaml no longer uses %s (%s): update devPorts", fixed, p.name)
			}
			n, err := d.ports.get(p.name)
			if err != nil {
				t.Fatal(err)
			}
			text = strings.ReplaceAll(text, fixed, "127.0.0.1:"+strconv.Itoa(n))
		}
		WriteFile(t, d.Config, []byte(text))
		if lastErr = d.start(); lastErr == nil {
			// The demo backend has health checks, and a first probe that fails (one lost
			// to a loaded machine) marks it down until two more succeed a second apart:
			// queries sent before it is up get SERVFAIL. Wait for the state.
			waitBackendState(t, d, "demo", true, 30*time.Second)
			return d, filepath.Join(root, "state", "pki")
		}
		if !strings.Contains(d.Log(), "address already in use") {
			break
		}
		t.Logf("dnsfront start attempt %d: port conflict, retrying with new ports", attempt+1)
	}
	t.Fatal(lastErr)
	return nil, ""
}

// TestDevConfig serves examples/dev.yaml and checks the demo zone the way the README
// tells a user to.
func TestDevConfig(t *testing.T) {
	t.Parallel()
	d, _ := startDevConfig(t)
	addr := d.Addr("dns")
	for _, flag := range []string{"+notcp", "+tcp"} {
		if got := shortLines(Dig(t, addr, flag, "+short", "www.dnsfront.test", "A")); !slices.Equal(got, []string{"192.0.2.1"}) {
			t.Errorf("dig %s www.dnsfront.test A = %q, want 192.0.2.1", flag, got)
		}
		if got := shortLines(Dig(t, addr, flag, "+short", "www.dnsfront.test", "AAAA")); !slices.Equal(got, []string{"2001:db8::1"}) {
			t.Errorf("dig %s www.dnsfront.test AAAA = %q, want 2001:db8::1", flag, got)
		}
		out := Dig(t, addr, flag, "nothing-here.dnsfront.test", "A")
		if !strings.Contains(out, "status: NXDOMAIN") {
			t.Errorf("dig %s nothing-here.dnsfront.test: want NXDOMAIN, got\n%s", flag, out)
		}
	}
	if v := d.Metric(`dnsfront_queries_total{proto="tcp"}`); v < 3 {
		t.Errorf(`dnsfront_queries_total{proto="tcp"} = %v, want at least 3`, v)
	}
}
