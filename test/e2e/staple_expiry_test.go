package e2e

import (
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/dnsfront/dnsfront/internal/testutil"
	"github.com/dnsfront/dnsfront/ocsp"
)

// TestStapleLeavesWithItsSource is the first case: a certificate stapled from a
// response file whose ocsp_response_files entry is removed by a reload. No source watches
// the certificate any more, so the very next handshake must come without a staple:
// nothing would ever refresh or expire a staple carried over (today's reload carried it
// into the new snapshot, and it was served past its nextUpdate).
func TestStapleLeavesWithItsSource(t *testing.T) {
	t.Parallel()
	p := devpki.NewTestPKI(t, t.TempDir())
	now := time.Now()
	// A short window, as in the report: valid for six minutes.
	staple := p.WriteFile("leaf.ocsp", p.Mint(p.Leaf.Cert, devpki.Response{Status: ocsp.StatusGood,
		ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(6 * time.Minute)}))
	be := StartTestBackend(t)
	data := DoT(be.Addr, CertOf(p.Leaf))
	data.OCSPFiles = []string{staple}
	d := Start(t, DoTConfig, data)
	addr := d.Addr("dot")
	SClientStatus(t, addr, "dns.test").RequireStaple(t, p.Leaf.Cert)

	data.OCSPFiles = nil
	d.Rewrite(DoTConfig, data)
	reload(t, d)
	SClientStatus(t, addr, "dns.test").RequireNoStaple(t)
	if st := d.OCSP(); len(st) != 0 {
		t.Errorf("/api/v1/ocsp still lists %+v after its source was removed", st)
	}
}

// TestStapleLeavesAtItsExpiry: a staple whose nextUpdate is just past the skew window is
// served, then leaves every snapshot at its expiry (nextUpdate less ocsp.Skew), here a
// few seconds after start, while the server goes on serving the certificate bare. A
// reload in between, which keeps the source, neither extends its life nor drops it early.
func TestStapleLeavesAtItsExpiry(t *testing.T) {
	t.Parallel()
	p := devpki.NewTestPKI(t, t.TempDir())
	now := time.Now()
	// Whole seconds: an OCSP response carries its times to the second.
	expiry := now.Add(8 * time.Second).Truncate(time.Second)
	staple := p.WriteFile("leaf.ocsp", p.Mint(p.Leaf.Cert, devpki.Response{Status: ocsp.StatusGood,
		ThisUpdate: now.Add(-time.Minute), NextUpdate: expiry.Add(ocsp.Skew)}))
	be := StartTestBackend(t)
	data := DoT(be.Addr, CertOf(p.Leaf))
	data.OCSPFiles = []string{staple}
	d := Start(t, DoTConfig, data)
	addr := d.Addr("dot")
	// A handshake proves the staple was served only if it ended before the expiry: on a
	// loaded machine s_client may start in time and finish after it.
	h := SClientStatus(t, addr, "dns.test")
	if time.Now().Before(expiry) {
		h.RequireStaple(t, p.Leaf.Cert)
		reload(t, d)
	}
	if h := SClientStatus(t, addr, "dns.test"); time.Now().Before(expiry) {
		h.RequireStaple(t, p.Leaf.Cert)
	}
	testutil.Eventually(t, time.Until(expiry)+10*time.Second, "the staple leaves at its expiry", func() bool {
		// Handshakes only from a second before the expiry: earlier ones prove nothing new.
		return !time.Now().Before(expiry.Add(-time.Second)) && !SClientStatus(t, addr, "dns.test").Stapled
	})
	if left := time.Now(); left.Before(expiry) {
		t.Errorf("the staple left %v before its expiry", expiry.Sub(left))
	}
	SClientStatus(t, addr, "dns.test").RequireNoStaple(t)
}
