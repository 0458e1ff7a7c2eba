package e2e

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/dnsfront/dnsfront/internal/testutil"
)

// fleetReloadConfig is a fleet member with a DoT bind on {{port "dot"}}; with .Changed a
// reload adds a DoT bind on {{port "dot_new"}} and replaces the first one (its handshake
// timeout is fixed for its connections, so it gets a new TLS side and ticket ring).
const fleetReloadConfig = `
general:
  event_loops: 2
  server_id: "{{.Member}}"
acl: ["127.0.0.0/8"]
binds:
  - listen_address: "127.0.0.1:{{port "dot"}}"
    protocol: DoT
    tls:
      certificates: [{certificate: "{{.Chain}}", key: "{{.Key}}"}]
      handshake_timeout: {{if .Changed}}7s{{else}}5s{{end}}
{{- if .Changed}}
  - listen_address: "127.0.0.1:{{port "dot_new"}}"
    protocol: DoT
    tls:
      certificates: [{certificate: "{{.Chain}}", key: "{{.Key}}"}]
{{- end}}
backends:
  - address: "{{.Backend}}"
    name: b1
    health_checks: {mode: up}
webserver:
  listen_addresses: ["127.0.0.1:{{port "admin"}}"]
fleet:
  name: "{{.Name}}"
  secret_file: "{{.Secret}}"
  etcd:
    endpoints: ["{{.Etcd}}"]
    dial_timeout: 2s
`

type fleetReloadData struct {
	Member, Name, Etcd, Secret string
	Chain, Key, Backend        string
	Changed                    bool
}

// A DoT bind that a reload adds to a fleet member, and one it replaces, take the fleet's
// ticket ring at once: a session from another member resumes on them right after the
// reload, without waiting for the fleet's next rotation.
func TestFleetReloadTLSBindResumes(t *testing.T) {
	t.Parallel()
	etcd := StartEtcd(t)
	p := devpki.NewTestPKI(t, t.TempDir())
	be := StartTestBackend(t)
	secret := filepath.Join(t.TempDir(), "fleet.secret")
	WriteFile(t, secret, randomBytes(t, 32))
	data := func(member string) fleetReloadData {
		return fleetReloadData{Member: member, Name: "e2e-reload", Etcd: etcd.URL, Secret: secret,
			Chain: p.Leaf.ChainFile, Key: p.Leaf.KeyFile, Backend: be.Addr}
	}
	a := Start(t, fleetReloadConfig, data("a"))
	b := Start(t, fleetReloadConfig, data("b"))
	for _, d := range []*Dnsfront{a, b} {
		var s fleetStatus
		if !testutil.Poll(20*time.Second, func() bool {
			s = fleetOf(t, d)
			return s.Connected && s.Leader != "" && len(s.Members) == 2 && s.KeySource == "shared"
		}) {
			t.Fatalf("%s: not in the fleet with shared keys within 20s: %+v", d.Config, s)
		}
	}

	changed := data("b")
	changed.Changed = true
	b.Rewrite(fleetReloadConfig, changed)
	reload(t, b)

	answer := net.ParseIP(testAnswer)
	sess := filepath.Join(t.TempDir(), "sess.pem")
	first := StartSClient(t, "-connect", a.Addr("dot"), "-servername", "dns.test", "-tls1_3", "-sess_out", sess)
	first.WaitFor("Verify return code")
	first.Query(testName, 1, answer)
	if out := first.Finish(); !strings.Contains(out, "New, ") {
		t.Fatalf("first connection to a not new:\n%s", out)
	}
	for i, port := range []string{"dot_new", "dot"} {
		s := StartSClient(t, "-connect", b.Addr(port), "-servername", "dns.test", "-tls1_3", "-sess_in", sess)
		s.WaitFor("Verify return code")
		s.Query(testName, uint16(2+i), answer)
		if out := s.Finish(); !strings.Contains(out, "Reused, ") {
			t.Errorf("session from a not resumed on b's %s bind after the reload:\n%s", port, out)
		}
	}
}
