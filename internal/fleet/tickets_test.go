package fleet

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestEpochs(t *testing.T) {
	d := 12 * time.Hour
	at := time.Date(2026, 11, 30, 13, 0, 0, 0, time.UTC)
	e := epochAt(at, d)
	if s := epochStart(e, d); s.After(at) || !epochStart(e+1, d).After(at) || s.Hour() != 12 {
		t.Fatalf("epoch %d starts at %v, next at %v, for %v", e, s, epochStart(e+1, d), at)
	}
}

func TestKeyringDerivation(t *testing.T) {
	k5 := [32]byte{5}
	k6 := [32]byte{6}
	a := keyring{name: "f", n: 3, shared: map[uint64][32]byte{5: k5, 6: k6}}
	b := keyring{name: "f", n: 3, shared: map[uint64][32]byte{5: k5, 6: k6}}
	other := keyring{name: "g", n: 3, shared: map[uint64][32]byte{5: k5, 6: k6}}

	ring, derived := a.ring(5)
	if derived || len(ring) != 2 || ring[0] != k5 || ring[1] != k6 {
		t.Fatalf("epoch 5: %v derived=%v", ring, derived)
	}
	ring, derived = a.ring(8)
	rb, _ := b.ring(8)
	ro, _ := other.ring(8)
	if !derived || len(ring) != 3 || ring[0] != rb[0] || ring[1] != rb[1] || ring[2] != k6 {
		t.Fatalf("epoch 8: derived=%v ring %d keys", derived, len(ring))
	}
	if ring[0] == ro[0] {
		t.Fatal("two fleets derive the same key")
	}
	if ring[0] != derive("f", k6, 8) || ring[1] != derive("f", k6, 7) {
		t.Fatal("derivation is not over the last shared key and the epoch")
	}
	if ring, _ := (&keyring{name: "f", n: 3, shared: map[uint64][32]byte{}}).ring(8); ring != nil {
		t.Fatal("a ring without any shared key")
	}

	// Pruning keeps the newest shared key at or before the epoch (the base)
	// and those still in a ring.
	a.shared[2] = [32]byte{2}
	a.shared[9] = [32]byte{9}
	a.prune(7)
	if _, ok := a.shared[2]; ok || len(a.shared) != 3 {
		t.Fatalf("epoch 7: kept %d keys (want 5, 6 and the future 9)", len(a.shared))
	}
	a.prune(20)
	if _, ok := a.shared[9]; !ok || len(a.shared) != 1 {
		t.Fatalf("epoch 20: kept %d keys (want only 9, the base of derivation)", len(a.shared))
	}
}

func TestSealer(t *testing.T) {
	dir := t.TempDir()
	s1 := filepath.Join(dir, "s1")
	s2 := filepath.Join(dir, "s2")
	short := filepath.Join(dir, "short")
	os.WriteFile(s1, []byte("0123456789abcdef-one"), 0o600)
	os.WriteFile(s2, []byte("0123456789abcdef-two"), 0o600)
	os.WriteFile(short, []byte("tiny"), 0o600)
	a, err := newSealer("f", s1)
	if err != nil {
		t.Fatal(err)
	}
	key := [32]byte{1, 2, 3}
	sealed, err := a.seal(7, key)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := a.open(7, sealed); err != nil || got != key {
		t.Fatalf("open: %v", err)
	}
	if _, err := a.open(8, sealed); err == nil || !strings.Contains(err.Error(), "epoch 8") {
		t.Fatalf("a key moved to another epoch opened: %v", err)
	}
	b, _ := newSealer("f", s2)
	if _, err := b.open(7, sealed); err == nil {
		t.Fatal("another secret opened the key")
	}
	g, _ := newSealer("g", s1)
	if _, err := g.open(7, sealed); err == nil {
		t.Fatal("another fleet opened the key")
	}
	if _, err := newSealer("f", short); err == nil || !strings.Contains(err.Error(), "4 bytes, want at least 16") {
		t.Fatalf("short secret: %v", err)
	}
}

func TestOptionsChecked(t *testing.T) {
	_, err := Start(t.Context(), Options{Name: "a/b", RotationDelay: time.Millisecond})
	for _, w := range []string{`name "a/b"`, "no etcd endpoints", "member", "dial timeout", "rotation delay", "number of keys"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v lacks %q", err, w)
		}
	}
}
