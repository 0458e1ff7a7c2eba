package server

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/config"
	"github.com/dnsfront/dnsfront/engine/rules"
	"github.com/dnsfront/dnsfront/internal/fleet"
	"github.com/dnsfront/dnsfront/internal/testutil"
)

// newTestFleetMode is a fleetMode without etcd or writer: what it would write stays in
// its queue.
func newTestFleetMode(t *testing.T) *fleetMode {
	t.Helper()
	cfg := &config.Fleet{Name: "t"}
	cfg.Etcd.DialTimeout = config.Duration(time.Hour)
	return &fleetMode{cfg: cfg, log: slog.New(slog.DiscardHandler), member: "m",
		jobs: make(chan fleetJob, 16), shared: map[string][32]byte{}, blocks: map[netip.Prefix]time.Time{}}
}

func drain(fm *fleetMode) []string {
	var out []string
	for {
		select {
		case j := <-fm.jobs:
			out = append(out, j.what)
		default:
			return out
		}
	}
}

// A block the rules extend every second is written again only once its end has moved by
// half its duration; suffix blocks and warnings stay local; an admin removal is shared.
func TestFleetShareBlocks(t *testing.T) {
	fm := newTestFleetMode(t)
	now := time.Now()
	b := rules.BlockInfo{Network: "192.0.2.1/32", Action: "Refused", Remaining: 60 * time.Second, Until: now.Add(60 * time.Second)}
	fm.shareBlock(b)
	for i := 1; i < 30; i++ { // extended every second, for 29 s
		b.Until = now.Add(time.Duration(60+i) * time.Second)
		fm.shareBlock(b)
	}
	b.Until = now.Add(90 * time.Second)
	fm.shareBlock(b)
	if got := drain(fm); len(got) != 2 || got[0] != "block 192.0.2.1/32" {
		t.Fatalf("writes %q, want the block and one extension after half its duration", got)
	}
	fm.shareBlock(rules.BlockInfo{Suffix: "example.", Until: now.Add(time.Minute), Remaining: time.Minute})
	fm.shareBlock(rules.BlockInfo{Network: "192.0.2.2/32", Warning: true, Until: now.Add(time.Minute), Remaining: time.Minute})
	fm.shareRemoved("suffix:example.")
	if got := drain(fm); len(got) != 0 {
		t.Fatalf("writes %q for a suffix block and a warning, want none", got)
	}
	fm.shareRemoved("192.0.2.1")
	fm.shareBlock(b) // raised again after the removal: written at once
	if got := drain(fm); len(got) != 2 || got[0] != "unblock 192.0.2.1/32" || got[1] != "block 192.0.2.1/32" {
		t.Fatalf("writes %q, want the removal then the block again", got)
	}
	fm.shareAdded(rules.BlockRequest{Network: "2001:db8::/48", Duration: time.Minute})
	if got := drain(fm); len(got) != 1 || got[0] != "block 2001:db8::/48" {
		t.Fatalf("writes %q for an admin block", got)
	}
}

// Without a fleet everything fetches; in a fleet nobody fetches before the first attempt
// to reach etcd has ended, however long it takes, and a member that cannot reach etcd
// fetches on its own.
func TestFleetMayFetch(t *testing.T) {
	var none *fleetMode
	if !none.mayFetch() {
		t.Error("an instance alone may not fetch")
	}
	fm := newTestFleetMode(t)
	if fm.mayFetch() {
		t.Error("fetching before the fleet started")
	}
	closed := testutil.FreeAddr(t, "127.0.0.1").String()
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, make([]byte, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := fleet.Start(context.Background(), fleet.Options{Name: "t", Member: "m", Endpoints: []string{"http://" + closed},
		DialTimeout: 200 * time.Millisecond, RotationDelay: time.Hour, NumberOfKeys: 2, SecretFile: secret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fm.f.Store(f)
	if fm.mayFetch() && !f.Tried() {
		t.Error("fetching while the first attempt is under way")
	}
	testutil.Eventually(t, 30*time.Second, "a member that cannot reach etcd fetches", fm.mayFetch)
	if !f.Tried() || f.Connected() {
		t.Errorf("fetching with tried %v, connected %v", f.Tried(), f.Connected())
	}
}

// check-config loads the etcd TLS files and names the key of a bad one.
func TestCheckFleetTLS(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dnsfront.yaml")
	doc := `
binds: [{listen_address: "127.0.0.1:53"}]
backends: [{address: "127.0.0.1:5353"}]
fleet:
  name: f
  etcd:
    endpoints: ["https://127.0.0.1:2379"]
    tls: {ca: missing-ca.pem}
`
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	err := Check(path)
	if err == nil || !strings.Contains(err.Error(), "fleet.etcd.tls") || !strings.Contains(err.Error(), "missing-ca.pem") {
		t.Fatalf("check-config: %v; want an error at fleet.etcd.tls naming the file", err)
	}
}
