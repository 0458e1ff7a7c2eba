package e2e

import (
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// startDevConfig serves examples/dev.yaml, the configuration of `make run`, on its fixed
// ports (Do53 10053, demo backend 10054, admin 10080, DoH 10443, DoT 10853), after
// checking that they are free. Tests that call it must not run in parallel: they would
// share those ports.
func startDevConfig(t *testing.T) *Dnsfront {
	t.Helper()
	for _, a := range []string{"127.0.0.1:10053", "127.0.0.1:10054", "127.0.0.1:10080", "127.0.0.1:10443", "127.0.0.1:10853"} {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("examples/dev.yaml needs %s, which is busy (is `make run` or another dnsfront running?): %v", a, err)
		}
		ln.Close()
	}
	for _, a := range []string{"127.0.0.1:10053", "127.0.0.1:10054", "127.0.0.1:10080"} {
		pc, err := net.ListenPacket("udp", a)
		if err != nil {
			t.Fatalf("examples/dev.yaml needs UDP %s, which is busy: %v", a, err)
		}
		pc.Close()
	}
	d := StartFile(t, filepath.Join(ModuleRoot(t), "examples", "dev.yaml"), map[string]int{"dns": 10053, "admin": 10080, "dot": 10853})
	// The demo backend has health checks, and a first probe that fails (one lost to a
	// loaded machine) marks it down until two more succeed a second apart: queries sent
	// before it is up get SERVFAIL. Wait for the state, not for a time.
	waitBackendState(t, d, "demo", true, 30*time.Second)
	return d
}

// TestDevConfig serves examples/dev.yaml (not in parallel: fixed ports) and checks the
// demo zone the way the README tells a user to.
func TestDevConfig(t *testing.T) {
	d := startDevConfig(t)
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
