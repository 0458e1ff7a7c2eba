package tlsframe

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTicketKeyFile(t *testing.T) {
	dir := t.TempDir()
	keys := bytes.Repeat([]byte{1}, TicketKeySize)
	keys = append(keys, bytes.Repeat([]byte{2}, TicketKeySize)...)
	keys = append(keys, bytes.Repeat([]byte{3}, TicketKeySize)...)
	good := filepath.Join(dir, "tickets.key")
	if err := os.WriteFile(good, keys, 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := NewTicketKeys(2, 0, good)
	if err != nil {
		t.Fatal(err)
	}
	got := k.Keys()
	// The last key of the file encrypts; only n are kept.
	if len(got) != 2 || got[0] != sha256.Sum256(keys[160:]) || got[1] != sha256.Sum256(keys[80:160]) {
		t.Fatalf("keys not in dnsdist order (last in file active)")
	}

	bad := filepath.Join(dir, "bad.key")
	os.WriteFile(bad, keys[:81], 0o600)
	if _, err := NewTicketKeys(2, 0, bad); err == nil || !strings.Contains(err.Error(), "bad.key") || !strings.Contains(err.Error(), "81") {
		t.Fatalf("error %v should name the file and its size", err)
	}
	if err := k.Reload(bad); err == nil {
		t.Fatal("reload of a bad file succeeded")
	}
	if k.Keys()[0] != got[0] {
		t.Fatal("failed reload changed the ring")
	}
}

func TestTicketRotationResumption(t *testing.T) {
	b := newBothPKI(t)
	s := startServer(t, b.snap, nil, 2)
	cache := tls.NewLRUClientSessionCache(8)
	connect := func() bool {
		cfg := b.pki.clientConfig("both.test")
		cfg.ClientSessionCache = cache
		cfg.MaxVersion = tls.VersionTLS12 // the ticket arrives within the handshake
		c := dialTLS(t, s.addr, cfg)
		echo(t, c, "x")
		defer c.Close()
		return c.ConnectionState().DidResume
	}
	if connect() {
		t.Fatal("first connection resumed")
	}
	if !connect() {
		t.Fatal("no resumption with the same keys (across loops)")
	}
	// One rotation: the old key still decrypts (n = 3).
	if err := b.tickets.Rotate(); err != nil {
		t.Fatal(err)
	}
	if !connect() {
		t.Fatal("no resumption after one rotation")
	}
	// Past n rotations the key of the cached ticket is gone.
	cache2 := tls.NewLRUClientSessionCache(8)
	cache = cache2
	connect()
	for range 3 {
		b.tickets.Rotate()
	}
	if connect() {
		t.Fatal("resumed with a ticket whose key was rotated out")
	}
}

// A ring fed by a fleet takes the keys as given, the next epoch's key included, and no
// longer reads its file.
func TestTicketSetKeys(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tickets.key")
	if err := os.WriteFile(file, bytes.Repeat([]byte{7}, TicketKeySize), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := NewTicketKeys(2, 0, file)
	if err != nil {
		t.Fatal(err)
	}
	before := k.Keys()
	k.SetKeys(nil)
	if len(k.Keys()) != 1 || k.Keys()[0] != before[0] {
		t.Fatal("empty SetKeys changed the ring")
	}
	keys := [][32]byte{{1}, {2}, {3}, {4}}
	k.SetKeys(keys)
	got := k.Keys()
	if len(got) != 3 || got[0] != keys[0] || got[1] != keys[1] || got[2] != keys[2] {
		t.Fatalf("ring %x, want the first n+1 keys in order", got)
	}
	keys[0] = [32]byte{9}
	if k.Keys()[0] != ([32]byte{1}) {
		t.Fatal("the ring shares the caller's slice")
	}
	// Rotation generates a key instead of re-reading the file it no longer follows.
	if err := k.Rotate(); err != nil {
		t.Fatal(err)
	}
	if r := k.Keys(); r[0] == sha256.Sum256(bytes.Repeat([]byte{7}, TicketKeySize)) || r[1] != ([32]byte{1}) {
		t.Fatal("rotation after SetKeys read the file")
	}

	// A ticket issued under the encrypting key resumes once the fleet makes it a previous key.
	b := newBothPKI(t)
	shared := [][32]byte{{0xaa}, {0xbb}}
	b.tickets.SetKeys(shared)
	s := startServer(t, b.snap, nil, 2)
	cache := tls.NewLRUClientSessionCache(8)
	connect := func(addr string) bool {
		cfg := b.pki.clientConfig("both.test")
		cfg.ClientSessionCache = cache
		cfg.MaxVersion = tls.VersionTLS12
		c := dialTLS(t, addr, cfg)
		defer c.Close()
		echo(t, c, "x")
		return c.ConnectionState().DidResume
	}
	connect(s.addr)
	b.tickets.SetKeys([][32]byte{{0xcc}, {0xaa}})
	if !connect(s.addr) {
		t.Fatal("no resumption under the previous fleet key")
	}
}
