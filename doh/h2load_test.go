package doh

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/miekg/dns"
)

// TestH2Load measures the session under h2load (set DOH_H2LOAD=1; it is a
// measurement, not a check, so it does not run by default). The harness is
// goroutine-per-connection, so the figure is a floor for the event loop.
func TestH2Load(t *testing.T) {
	if os.Getenv("DOH_H2LOAD") == "" {
		t.Skip("set DOH_H2LOAD=1 to measure with h2load")
	}
	needTool(t, "h2load")
	h := newHarness(t, nil, true)
	q := filepath.Join(t.TempDir(), "q.bin")
	os.WriteFile(q, packQuery(t, "load.example", dns.TypeA), 0o600)
	out := run(t, "h2load", "-n", "200000", "-c", "8", "-m", "32", "-d", q,
		"-H", "content-type: application/dns-message", h.url("/dns-query"))
	t.Log(out)
	if m := regexp.MustCompile(`([0-9.]+) req/s`).FindStringSubmatch(out); m != nil {
		t.Logf("h2load POST: %s req/s", m[1])
	}
	if !regexp.MustCompile(`200000 succeeded`).MatchString(out) {
		t.Errorf("not all requests succeeded")
	}
}
