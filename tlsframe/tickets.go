package tlsframe

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// TicketKeySize is the size of one key in a ticket key file: dnsdist's
// format (16-byte name, 32-byte cipher key, 32-byte HMAC key). Several keys
// are concatenated; the last one in the file encrypts new tickets.
const TicketKeySize = 80

// TicketKeys is the session-ticket key ring of the process: one for every
// loop, bind and snapshot, so that a ticket issued on one loop resumes on
// any other and survives a reload. Rotation prepends a new key and keeps at
// most n; the older ones still decrypt tickets issued before.
//
// Concurrency: all methods are safe for concurrent use. The keys are applied
// to every subscribed Store's per-loop configs with SetSessionTicketKeys.
type TicketKeys struct {
	n        int
	rotation time.Duration
	log      *slog.Logger

	rotateMu sync.Mutex // serialises rotate+apply, so that the last keys applied are the newest
	mu       sync.Mutex
	file     string
	keys     [][32]byte // active first
	subs     map[*Store]struct{}
	stop     chan struct{}
	done     chan struct{}
}

// NewTicketKeys makes a ring of at most n keys (n <= 0 means 5, dnsdist's
// number_of_tickets_keys default). With a file, the keys come from it (see
// TicketKeySize); otherwise one random key is generated. rotation is the
// period used by Start (0 disables automatic rotation).
func NewTicketKeys(n int, rotation time.Duration, file string) (*TicketKeys, error) {
	if n <= 0 {
		n = 5
	}
	k := &TicketKeys{n: n, rotation: rotation, log: slog.Default(), subs: make(map[*Store]struct{})}
	if file != "" {
		keys, err := readTicketKeyFile(file, n)
		if err != nil {
			return nil, err
		}
		k.file, k.keys = file, keys
		return k, nil
	}
	key, err := randomTicketKey()
	if err != nil {
		return nil, err
	}
	k.keys = [][32]byte{key}
	return k, nil
}

func randomTicketKey() ([32]byte, error) {
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return key, fmt.Errorf("tlsframe: ticket key: %w", err)
	}
	return key, nil
}

// readTicketKeyFile returns the keys of file, the last one (the active one)
// first, at most n. crypto/tls takes 32-byte keys and derives its own name,
// AES and HMAC keys from them, so each 80-byte key is condensed with
// SHA-256: instances sharing a file share tickets, but tickets are not
// interchangeable with OpenSSL-based servers reading the same file.
func readTicketKeyFile(file string, n int) ([][32]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tlsframe: ticket key file: %w", err)
	}
	if len(b) == 0 || len(b)%TicketKeySize != 0 {
		return nil, fmt.Errorf("tlsframe: %s: size %d is not a positive multiple of %d (dnsdist ticket key format)", file, len(b), TicketKeySize)
	}
	var keys [][32]byte
	for off := len(b) - TicketKeySize; off >= 0 && len(keys) < n; off -= TicketKeySize {
		keys = append(keys, sha256.Sum256(b[off:off+TicketKeySize]))
	}
	return keys, nil
}

// Keys returns a copy of the ring, the encrypting key first.
func (k *TicketKeys) Keys() [][32]byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([][32]byte(nil), k.keys...)
}

// Rotate makes a new active key: re-read from the file when the ring was
// loaded from one (as dnsdist does), otherwise generated and prepended.
// On error the ring is unchanged.
func (k *TicketKeys) Rotate() error {
	k.rotateMu.Lock()
	defer k.rotateMu.Unlock()
	k.mu.Lock()
	file := k.file
	k.mu.Unlock()
	if file != "" {
		return k.reloadLocked(file)
	}
	key, err := randomTicketKey()
	if err != nil {
		return err
	}
	k.mu.Lock()
	k.keys = append([][32]byte{key}, k.keys...)
	if len(k.keys) > k.n {
		k.keys = k.keys[:k.n]
	}
	k.mu.Unlock()
	k.apply()
	return nil
}

// SetKeys replaces the ring with keys, the encrypting key first, as a fleet
// hands them out: up to n+1 keys (the n the ring keeps, plus the next
// epoch's key installed ahead of its use, decrypt-only until it encrypts).
// The ring no longer reads a file. A ring fed this way is built with
// rotation 0, so that local rotation never fights the fleet's. Empty keys
// are ignored: dropping every key would end every session.
func (k *TicketKeys) SetKeys(keys [][32]byte) {
	if len(keys) == 0 {
		return
	}
	if len(keys) > k.n+1 {
		keys = keys[:k.n+1]
	}
	k.rotateMu.Lock()
	defer k.rotateMu.Unlock()
	k.mu.Lock()
	k.file, k.keys = "", append([][32]byte(nil), keys...)
	k.mu.Unlock()
	k.apply()
}

// TicketKeyUpdate is a ticket key file read and checked by Prepare, ready
// to be installed by Install, which cannot fail.
type TicketKeyUpdate struct {
	ring *TicketKeys
	file string
	keys [][32]byte
}

// Prepare reads and checks the keys of file for this ring without changing
// it: the first half of a reload, which must be able to fail without
// touching what is served.
func (k *TicketKeys) Prepare(file string) (*TicketKeyUpdate, error) {
	if file == "" {
		return nil, errors.New("tlsframe: ticket key reload without a file")
	}
	keys, err := readTicketKeyFile(file, k.n)
	if err != nil {
		return nil, err
	}
	return &TicketKeyUpdate{ring: k, file: file, keys: keys}, nil
}

// Install makes the keys of a prepared update the ring's, and its file the
// one later rotations re-read. It cannot fail. An update prepared for
// another ring is ignored.
func (k *TicketKeys) Install(u *TicketKeyUpdate) {
	if u == nil || u.ring != k {
		return
	}
	k.rotateMu.Lock()
	defer k.rotateMu.Unlock()
	k.mu.Lock()
	k.file, k.keys = u.file, u.keys
	k.mu.Unlock()
	k.apply()
}

// Reload replaces the ring with the keys of file (and makes it the file that
// later rotations re-read). On error the ring is unchanged.
func (k *TicketKeys) Reload(file string) error {
	k.rotateMu.Lock()
	defer k.rotateMu.Unlock()
	return k.reloadLocked(file)
}

func (k *TicketKeys) reloadLocked(file string) error {
	if file == "" {
		return errors.New("tlsframe: ticket key reload without a file")
	}
	keys, err := readTicketKeyFile(file, k.n)
	if err != nil {
		return err
	}
	k.mu.Lock()
	k.file, k.keys = file, keys
	k.mu.Unlock()
	k.apply()
	return nil
}

// apply pushes the current keys to every subscribed store. Called with
// rotateMu held and mu free (Store.Publish takes the store lock, then mu).
func (k *TicketKeys) apply() {
	k.mu.Lock()
	keys := append([][32]byte(nil), k.keys...)
	subs := make([]*Store, 0, len(k.subs))
	for st := range k.subs {
		subs = append(subs, st)
	}
	k.mu.Unlock()
	for _, st := range subs {
		st.applyTicketKeys(keys)
	}
}

func (k *TicketKeys) subscribe(st *Store) {
	k.mu.Lock()
	k.subs[st] = struct{}{}
	k.mu.Unlock()
}

func (k *TicketKeys) unsubscribe(st *Store) {
	k.mu.Lock()
	delete(k.subs, st)
	k.mu.Unlock()
}

// Start rotates the ring every rotation period on its own goroutine until
// Stop. It does nothing when the period is 0 or when already started.
func (k *TicketKeys) Start() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.rotation <= 0 || k.stop != nil {
		return
	}
	k.stop, k.done = make(chan struct{}), make(chan struct{})
	go k.run(k.stop, k.done)
}

func (k *TicketKeys) run(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(k.rotation)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if err := k.Rotate(); err != nil {
				// Keep the current keys: tickets keep working, only
				// forward secrecy of the ring ages.
				k.log.Error("ticket key rotation failed, keeping the current keys", "err", err)
			}
		}
	}
}

// Stop ends the rotation goroutine started by Start and waits for it.
func (k *TicketKeys) Stop() {
	k.mu.Lock()
	stop, done := k.stop, k.done
	k.stop, k.done = nil, nil
	k.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
}
