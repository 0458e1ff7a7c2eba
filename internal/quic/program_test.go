package quic

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// quic-go's client as a separate program (quicclient), as a client would run it: DoQ and
// DoH3 answers, with a staple that verifies against the issuer.
func TestQUICClientProgram(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program")
	}
	bin := filepath.Join(t.TempDir(), "quicclient")
	if out, err := exec.Command("go", "build", "-o", bin, "./quicclient").CombinedOutput(); err != nil {
		t.Fatalf("go build quicclient: %v\n%s", err, out)
	}
	for _, proto := range []string{"DoQ", "DoH3"} {
		t.Run(proto, func(t *testing.T) {
			h := newHarness(t, Options{Protocol: proto})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, "-proto", strings.ToLower(proto), "-addr", h.ln.Addr().String(),
				"-ca", h.pki.Root.CertFile, "-sni", "dns.test", "-name", "www.example.").CombinedOutput()
			if err != nil {
				t.Fatalf("quicclient: %v\n%s", err, out)
			}
			for _, want := range []string{"staple=good", "rcode=NOERROR", "id=0", "answers=1", "192.0.2.1"} {
				if !strings.Contains(string(out), want) {
					t.Fatalf("quicclient output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}
