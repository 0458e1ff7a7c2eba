package quic

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/internal/testutil"
)

// kdig is a real DoQ peer when Knot was built with libngtcp2. Debian 12's kdig 3.2.6
// lists +quic but is built without it: it then falls back to TCP (to TLS when a CA is
// given), where nothing listens. The test says so instead of passing.
func TestDoQKdig(t *testing.T) {
	kdig := testutil.Tool(t, "kdig")
	h := newHarness(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, kdig, "@127.0.0.1", "-p", strconv.Itoa(int(h.ln.Addr().Port())),
		"+quic", "+tls-ca="+h.pki.Root.CertFile, "+tls-hostname=dns.test", "+timeout=2", "+retry=0",
		"www.example.", "A").CombinedOutput()
	text := string(out)
	if !strings.Contains(text, "(QUIC)") && (strings.Contains(text, "(TCP)") || strings.Contains(text, "(UDP)")) {
		t.Skipf("this kdig has no QUIC support (Knot built without libngtcp2); it fell back:\n%s", text)
	}
	if err != nil {
		t.Fatalf("kdig +quic: %v\n%s", err, text)
	}
	if !strings.Contains(text, "status: NOERROR") || !strings.Contains(text, "192.0.2.1") {
		t.Fatalf("kdig +quic got no answer:\n%s", text)
	}
	if s := h.eng.Stats(); s.Queries["doq"] == 0 {
		t.Fatal("the engine counted no DoQ query")
	}
}
