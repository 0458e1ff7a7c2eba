package fleet

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Ticket keys live under <prefix>tickets/<epoch, 20 digits> so that etcd's
// key order is epoch order. Epoch e is [e×delay, (e+1)×delay) since the Unix
// epoch: every member computes the same boundaries from its own clock
// without asking anyone, which is what lets them keep rotating in lockstep
// while etcd is unreachable.

const ticketsDir = "tickets/"

// ticketRecord is the value stored for one epoch's key.
type ticketRecord struct {
	Epoch    uint64    `json:"epoch"`
	Activate time.Time `json:"activate"`
	Written  time.Time `json:"written"`
	Origin   string    `json:"origin"`
	// Sealed is a 12-byte nonce followed by AES-256-GCM of the 32-byte key,
	// authenticated with the fleet name and the epoch (see sealer).
	Sealed []byte `json:"sealed"`
}

func epochAt(t time.Time, delay time.Duration) uint64 {
	n := t.UnixNano()
	if n < 0 {
		return 0
	}
	return uint64(n / int64(delay))
}

func epochStart(e uint64, delay time.Duration) time.Time {
	return time.Unix(0, int64(e)*int64(delay))
}

func ticketKey(prefix string, e uint64) string {
	return fmt.Sprintf("%s%s%020d", prefix, ticketsDir, e)
}

// sealer seals ticket keys for etcd. Its key comes from the shared secret
// file through HKDF; without a file it is derived from the fleet name alone,
// which keeps keys out of casual sight (etcdctl get, backups) but protects
// nothing against a reader who knows the name: then etcd's RBAC and TLS are
// the protection (docs/fleet.md).
type sealer struct {
	name string
	aead cipher.AEAD
}

// minSecret is the shortest secret file accepted: 128 bits.
const minSecret = 16

func newSealer(name, secretFile string) (*sealer, error) {
	var secret []byte
	if secretFile != "" {
		b, err := os.ReadFile(secretFile)
		if err != nil {
			return nil, fmt.Errorf("fleet: secret file: %w", err)
		}
		if len(b) < minSecret {
			return nil, fmt.Errorf("fleet: secret file %s: %d bytes, want at least %d (e.g. head -c 32 /dev/urandom > %s)", secretFile, len(b), minSecret, secretFile)
		}
		secret = b
	}
	kek, err := hkdf.Key(sha256.New, secret, []byte("dnsfront-fleet/"+name), "ticket key sealing", 32)
	if err != nil {
		return nil, fmt.Errorf("fleet: sealing key: %w", err)
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("fleet: sealing key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("fleet: sealing key: %w", err)
	}
	return &sealer{name: name, aead: aead}, nil
}

func (s *sealer) ad(e uint64) []byte {
	return []byte("dnsfront fleet ticket key\x00" + s.name + "\x00" + strconv.FormatUint(e, 10))
}

func (s *sealer) seal(e uint64, key [32]byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(key)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return s.aead.Seal(nonce, nonce, key[:], s.ad(e)), nil
}

// errUnseal never carries key material, only the epoch.
var errUnseal = errors.New("cannot unseal (another secret_file, or a key written for another fleet name or epoch)")

func (s *sealer) open(e uint64, sealed []byte) ([32]byte, error) {
	var key [32]byte
	n := s.aead.NonceSize()
	if len(sealed) != n+len(key)+s.aead.Overhead() {
		return key, fmt.Errorf("epoch %d: sealed key of %d bytes, want %d", e, len(sealed), n+len(key)+s.aead.Overhead())
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], s.ad(e))
	if err != nil {
		return key, fmt.Errorf("epoch %d: %w", e, errUnseal)
	}
	copy(key[:], plain)
	return key, nil
}

// derive is the degraded-mode rule: the key of epoch e when etcd has none
// for it is HKDF-SHA256 over the last shared key before e, with the fleet
// name as salt and the epoch number as info. Every member that has the same
// last shared key derives the same key, so tickets keep resuming across the
// fleet while etcd is down; forward secrecy is that of the shared key.
func derive(name string, base [32]byte, e uint64) [32]byte {
	var key [32]byte
	b, err := hkdf.Key(sha256.New, base[:], []byte("dnsfront-fleet/"+name), "ticket key epoch "+strconv.FormatUint(e, 10), len(key))
	if err != nil {
		// Only a length over 255×32 bytes fails.
		panic("fleet: hkdf: " + err.Error())
	}
	copy(key[:], b)
	return key
}

// keyring computes what a member installs from the shared keys it knows.
type keyring struct {
	name   string
	n      int                 // number_of_tickets_keys
	shared map[uint64][32]byte // epoch → key, as read from etcd
}

// key returns the key of epoch e: the shared one, or one derived from the
// last shared key before e; ok is false when no shared key precedes e.
func (r *keyring) key(e uint64) (key [32]byte, derived, ok bool) {
	if k, found := r.shared[e]; found {
		return k, false, true
	}
	var base uint64
	found := false
	for s := range r.shared {
		if s < e && (!found || s > base) {
			base, found = s, true
		}
	}
	if !found {
		return key, false, false
	}
	return derive(r.name, r.shared[base], e), true, true
}

// ring is the ring for epoch e: e's key first (it encrypts), then the next
// epoch's key when it is already shared (decrypt-only, so that a member
// whose clock runs slightly ahead and already encrypts with it is
// understood), then up to n-1 previous keys for tickets issued before.
func (r *keyring) ring(e uint64) (keys [][32]byte, derived bool) {
	cur, derived, ok := r.key(e)
	if !ok {
		return nil, false
	}
	keys = append(keys, cur)
	if next, found := r.shared[e+1]; found {
		keys = append(keys, next)
	}
	for i := uint64(1); i < uint64(r.n) && i <= e; i++ {
		k, _, ok := r.key(e - i)
		if !ok {
			break
		}
		keys = append(keys, k)
	}
	return keys, derived
}

// prune forgets shared keys too old to be in any ring, but always keeps the
// newest one at or before e: it is the base of derivation.
func (r *keyring) prune(e uint64) {
	var epochs []uint64
	for s := range r.shared {
		epochs = append(epochs, s)
	}
	sort.Slice(epochs, func(i, j int) bool { return epochs[i] > epochs[j] })
	keptBase := false
	for _, s := range epochs {
		if s > e {
			continue
		}
		if !keptBase {
			keptBase = true
			continue
		}
		if s+uint64(r.n) <= e {
			delete(r.shared, s)
		}
	}
}

// ensureTicketKeys is the leader's part of a rotation during epoch e: write
// the key of e+1 now, a whole epoch before it encrypts, so that every member
// has it installed long before; write e's own key only when the fleet has no
// shared key at all (first start); and delete keys that no ring needs. Each
// write is a transaction that creates the key only if it is absent, so two
// leaders in a hand-over never write two different keys for one epoch.
func (f *Fleet) ensureTicketKeys(ctx context.Context, e uint64) error {
	ctx, cancel := context.WithTimeout(ctx, f.opt.DialTimeout)
	defer cancel()
	dir := f.prefix + ticketsDir
	resp, err := f.cli.Get(ctx, dir, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return err
	}
	want := []uint64{e + 1}
	if resp.Count == 0 {
		want = []uint64{e, e + 1}
	}
	for _, w := range want {
		var key [32]byte
		if _, err := rand.Read(key[:]); err != nil {
			return err
		}
		sealed, err := f.sealer.seal(w, key)
		if err != nil {
			return err
		}
		val, err := json.Marshal(ticketRecord{Epoch: w, Activate: epochStart(w, f.opt.RotationDelay).UTC(), Written: time.Now().UTC(), Origin: f.opt.Member, Sealed: sealed})
		if err != nil {
			return err
		}
		k := ticketKey(f.prefix, w)
		txn, err := f.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).Then(clientv3.OpPut(k, string(val))).Commit()
		if err != nil {
			return err
		}
		if txn.Succeeded {
			f.log.Info("fleet: wrote a ticket key", "epoch", w, "activate", epochStart(w, f.opt.RotationDelay).UTC())
		}
	}
	// Keep the newest key at or before e (the base of derivation) and the n
	// epochs a ring can hold; older ones only widen what a leak exposes.
	var newest uint64
	for _, kv := range resp.Kvs {
		s, err := strconv.ParseUint(string(kv.Key[len(dir):]), 10, 64)
		if err == nil && s <= e && s > newest {
			newest = s
		}
	}
	if low := e + 1 - min(e+1, uint64(f.opt.NumberOfKeys)); low > 0 {
		low = min(low, newest)
		if low > 0 {
			if _, err := f.cli.Delete(ctx, dir, clientv3.WithRange(ticketKey(f.prefix, low))); err != nil {
				return err
			}
		}
	}
	return nil
}
