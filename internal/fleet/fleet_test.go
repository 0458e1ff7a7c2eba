package fleet

import (
	"context"
	"encoding/base64"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/internal/testutil"
)

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// wait bounds a condition on a loaded 2-core machine running etcd.
const wait = 30 * time.Second

func secretFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte("0123456789abcdef0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// epochClock starts a fake clock a minute into an epoch of delay.
func epochClock(delay time.Duration) *fakeClock {
	e := epochAt(time.Now(), delay)
	return newFakeClock(epochStart(e, delay).Add(time.Minute))
}

func TestTicketKeysLockstep(t *testing.T) {
	etcd := startEtcd(t, 1)
	clk := epochClock(time.Hour)
	logs := &syncBuffer{}
	secret := secretFile(t)
	var ms []*member
	for _, n := range []string{"a", "b", "c"} {
		ms = append(ms, startMember(t, n, etcd.endpoints(), memberOpts{clock: clk, secret: secret, log: logs}))
	}
	// The leader writes this epoch's key (first start) and the next one;
	// everyone installs both, the next one decrypt-only.
	testutil.Eventually(t, wait, "the same ring of two keys on every member", func() bool {
		if !sameEncryptingKey(ms...) {
			return false
		}
		for _, m := range ms {
			if len(m.ring()) != 2 || m.ring()[1] != ms[0].ring()[1] {
				return false
			}
		}
		return true
	})
	first := ms[0].ring()
	e := epochAt(clk.Now(), time.Hour)
	for _, m := range ms {
		st := m.Status()
		if st.KeyEpoch != e || st.KeySource != "shared" || !st.NextKeyShared {
			t.Fatalf("%s: status %+v, want epoch %d, shared, next key shared", m.name, st, e)
		}
	}

	// At the boundary the pre-installed key encrypts, the old one decrypts,
	// and the leader writes the one after.
	clk.Advance(time.Hour)
	testutil.Eventually(t, wait, "every member encrypting with the key installed ahead", func() bool {
		for _, m := range ms {
			r := m.ring()
			if len(r) != 3 || r[0] != first[1] || r[2] != first[0] || r[1] != ms[0].ring()[1] {
				return false
			}
		}
		return true
	})
	second := ms[0].ring()
	// Number of keys 3: after two more rotations the first key is gone.
	clk.Advance(time.Hour)
	clk.Advance(time.Hour)
	testutil.Eventually(t, wait, "rings of 3 kept keys plus the next one", func() bool {
		for _, m := range ms {
			r := m.ring()
			if len(r) != 4 || r[3] != second[0] || !sameEncryptingKey(ms...) {
				return false
			}
		}
		return true
	})
	for _, m := range ms {
		for _, k := range m.ring() {
			if k == first[0] {
				t.Fatalf("%s still holds the key of epoch %d", m.name, e)
			}
		}
	}
	noKeyMaterial(t, logs.String(), append(first, ms[0].ring()...)...)
}

func TestLeaderFailover(t *testing.T) {
	etcd := startEtcd(t, 3)
	ttl := 2 * time.Second
	var ms []*member
	for _, n := range []string{"a", "b", "c"} {
		ms = append(ms, startMember(t, n, etcd.endpoints(), memberOpts{ttl: ttl}))
	}
	testutil.Eventually(t, wait, "one leader, seen by all", func() bool {
		l := leaders(ms...)
		if len(l) != 1 {
			return false
		}
		for _, m := range ms {
			st := m.Status()
			if st.Leader != l[0] || len(st.Members) != 3 {
				return false
			}
		}
		return true
	})
	byName := map[string]*member{}
	for _, m := range ms {
		byName[m.name] = m
	}

	// A leader that leaves revokes its lease: the next one takes over at once.
	old := byName[leaders(ms...)[0]]
	start := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- old.Close() }()
	testutil.Eventually(t, wait, "a new leader after a clean leave", func() bool {
		l := leaders(ms...)
		return len(l) == 1 && l[0] != old.name
	})
	clean := time.Since(start)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	t.Logf("leader failover after Close: %v (lease TTL %v)", clean, ttl)
	if clean > ttl {
		t.Errorf("failover took %v, more than one lease TTL (%v)", clean, ttl)
	}

	// A leader that crashes holds the election until its lease expires:
	// one TTL after its last renewal.
	old = byName[leaders(ms...)[0]]
	start = time.Now()
	old.abandon()
	testutil.Eventually(t, wait, "a new leader after a crash", func() bool {
		l := leaders(ms...)
		return len(l) == 1 && l[0] != old.name
	})
	crash := time.Since(start)
	t.Logf("leader failover after a crash: %v (lease TTL %v)", crash, ttl)
	// The lease runs from the crashed leader's last renewal (every TTL/3),
	// and etcd sweeps expired leases every 500 ms: the bound leaves room
	// for a loaded machine.
	if crash > 3*ttl {
		t.Errorf("failover took %v, more than three lease TTLs (%v)", crash, ttl)
	}

	// Losing one etcd member of three keeps the quorum: the fleet still works.
	etcd.stop(etcd.nodes[0])
	var last *member
	for _, m := range ms {
		if m.ctx.Err() == nil {
			last = m
		}
	}
	p := netip.MustParsePrefix("192.0.2.0/24")
	testutil.Eventually(t, wait, "a block written with one etcd member down", func() bool {
		return last.PutBlock(context.Background(), p, time.Now().Add(time.Minute), "test", "refused") == nil
	})
	testutil.Eventually(t, wait, "the block seen", func() bool { return last.hasBlock(p) })
}

func TestStaplePublishedOnce(t *testing.T) {
	etcd := startEtcd(t, 1)
	var ms []*member
	for _, n := range []string{"a", "b", "c"} {
		ms = append(ms, startMember(t, n, etcd.endpoints(), memberOpts{}))
	}
	testutil.Eventually(t, wait, "a leader", func() bool { return len(leaders(ms...)) == 1 })
	var leader *member
	for _, m := range ms {
		if m.IsLeader() {
			leader = m
		}
	}
	fp := CertSHA256([]byte("certificate DER"))
	der := []byte("staple DER")
	if err := leader.PublishStaple(context.Background(), fp, der); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, wait, "the staple on every member", func() bool {
		for _, m := range ms {
			if len(m.stapleDeliveries(fp)) == 0 {
				return false
			}
		}
		return true
	})
	// Publishing the same bytes again is not a new staple.
	if err := leader.PublishStaple(context.Background(), fp, der); err != nil {
		t.Fatal(err)
	}
	der2 := []byte("refreshed staple DER")
	if err := leader.PublishStaple(context.Background(), fp, der2); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, wait, "the refreshed staple on every member", func() bool {
		for _, m := range ms {
			d := m.stapleDeliveries(fp)
			if len(d) != 2 || string(d[0]) != string(der) || string(d[1]) != string(der2) {
				return false
			}
		}
		return true
	})
	if st := ms[1].Status(); len(st.Staples) != 1 || st.Staples[0].Origin != leader.name {
		t.Fatalf("status staples %+v", st.Staples)
	}
	// A member that joins later gets it from the full read.
	late := startMember(t, "d", etcd.endpoints(), memberOpts{})
	testutil.Eventually(t, wait, "the staple on a late member", func() bool {
		d := late.stapleDeliveries(fp)
		return len(d) == 1 && string(d[0]) == string(der2)
	})
}

func TestBlocksPropagateAndExpire(t *testing.T) {
	etcd := startEtcd(t, 1)
	var ms []*member
	for _, n := range []string{"a", "b", "c"} {
		ms = append(ms, startMember(t, n, etcd.endpoints(), memberOpts{}))
	}
	testutil.Eventually(t, wait, "all connected", func() bool {
		for _, m := range ms {
			if !m.Connected() {
				return false
			}
		}
		return true
	})
	short := netip.MustParsePrefix("198.51.100.7/32")
	long := netip.MustParsePrefix("2001:db8::/48")
	start := time.Now()
	const life = 6 * time.Second
	if err := ms[0].PutBlock(context.Background(), short, start.Add(life), "flood", "refused"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, wait, "the block on every member", func() bool {
		for _, m := range ms {
			if !m.hasBlock(short) {
				return false
			}
		}
		return true
	})
	var worst time.Duration
	for _, m := range ms[1:] {
		m.mu.Lock()
		worst = max(worst, m.blockAt[short].Sub(start))
		m.mu.Unlock()
	}
	// docs/fleet.md quotes the time measured; the test asks only that the block
	// arrives while it lasts.
	t.Logf("block propagation (PutBlock called → OnBlock on the slowest other member): %v", worst)
	if worst >= life {
		t.Errorf("block took %v to propagate, longer than it lasts (%v)", worst, life)
	}
	b := ms[2].Status().Blocks
	if len(b) != 1 || b[0].Reason != "flood" || b[0].Action != "refused" || b[0].Origin != "a" {
		t.Fatalf("status blocks %+v", b)
	}

	// Removal through any member applies everywhere.
	if err := ms[1].PutBlock(context.Background(), long, time.Now().Add(time.Hour), "abuse", "drop"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, wait, "the second block everywhere", func() bool { return ms[0].hasBlock(long) && ms[2].hasBlock(long) })
	if err := ms[2].DeleteBlock(context.Background(), long); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, wait, "the second block removed everywhere", func() bool {
		for _, m := range ms {
			if m.hasBlock(long) || m.unblocked(long) != 1 {
				return false
			}
		}
		return true
	})

	// The first one expires by its lease, without anyone deleting it.
	testutil.Eventually(t, wait, "the first block expired everywhere", func() bool {
		for _, m := range ms {
			if m.hasBlock(short) || m.unblocked(short) != 1 {
				return false
			}
		}
		return true
	})
	if gone := time.Since(start); gone < life {
		t.Fatalf("block removed after %v, before its expiry", gone)
	}
}

func TestDegradedModeAndCatchUp(t *testing.T) {
	etcd := startEtcd(t, 1)
	clk := epochClock(time.Hour)
	logs := &syncBuffer{}
	secret := secretFile(t)
	a := startMember(t, "a", etcd.endpoints(), memberOpts{clock: clk, secret: secret, log: logs})
	b := startMember(t, "b", etcd.endpoints(), memberOpts{clock: clk, secret: secret, log: logs})
	testutil.Eventually(t, wait, "shared keys with the next one installed", func() bool {
		return sameEncryptingKey(a, b) && len(a.ring()) == 2 && len(b.ring()) == 2 && a.ring()[1] == b.ring()[1]
	})
	shared := a.ring()

	etcd.stop(etcd.nodes[0])
	testutil.Eventually(t, wait, "both members disconnected", func() bool { return !a.Connected() && !b.Connected() })

	// The next key was installed ahead: it encrypts on time without etcd.
	clk.Advance(time.Hour)
	testutil.Eventually(t, wait, "the pre-installed key encrypting", func() bool {
		return sameEncryptingKey(a, b) && a.ring()[0] == shared[1]
	})
	// The epoch after has no shared key: both derive the same one.
	clk.Advance(time.Hour)
	testutil.Eventually(t, wait, "the same derived key on both", func() bool {
		return sameEncryptingKey(a, b) && a.Status().KeySource == "derived" && b.Status().KeySource == "derived"
	})
	derived := a.ring()
	if derived[0] == shared[0] || derived[0] == shared[1] || derived[1] != shared[1] {
		t.Fatalf("derived ring does not follow the shared keys")
	}
	clk.Advance(time.Hour)
	testutil.Eventually(t, wait, "a second derived epoch, the same on both", func() bool {
		return sameEncryptingKey(a, b) && a.ring()[0] != derived[0] && a.ring()[1] == derived[0]
	})

	// etcd returns: both reconnect, the leader writes the next key, and at
	// the boundary everyone is back on shared keys.
	etcd.start(etcd.nodes[0])
	etcd.waitHealthy(etcd.nodes[0])
	start := time.Now()
	testutil.Eventually(t, wait, "both reconnected with the next key shared", func() bool {
		return a.Connected() && b.Connected() && a.Status().NextKeyShared && b.Status().NextKeyShared
	})
	t.Logf("caught up %v after etcd was healthy again", time.Since(start))
	clk.Advance(time.Hour)
	testutil.Eventually(t, wait, "shared keys again", func() bool {
		return sameEncryptingKey(a, b) && a.Status().KeySource == "shared" && b.Status().KeySource == "shared"
	})
	noKeyMaterial(t, logs.String(), append(append(shared, derived...), a.ring()...)...)
}

func TestWrongSecretIsNotInstalled(t *testing.T) {
	etcd := startEtcd(t, 1)
	clk := epochClock(time.Hour)
	a := startMember(t, "a", etcd.endpoints(), memberOpts{clock: clk, secret: secretFile(t)})
	testutil.Eventually(t, wait, "keys on a", func() bool { return len(a.ring()) == 2 })
	other := filepath.Join(t.TempDir(), "other")
	if err := os.WriteFile(other, []byte("another secret of enough bytes"), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	b := startMember(t, "b", etcd.endpoints(), memberOpts{clock: clk, secret: other, log: logs})
	testutil.Eventually(t, wait, "b connected and refusing the keys", func() bool {
		b.Fleet.mu.Lock()
		defer b.Fleet.mu.Unlock()
		return b.unsealErr >= 2
	})
	if len(b.ring()) != 0 {
		t.Fatal("b installed keys it could not unseal")
	}
	noKeyMaterial(t, logs.String(), a.ring()...)
}

// Tried turns true when the first attempt ends, whichever way: against a port where
// nothing listens it ends in failure within about the dial timeout; against etcd it ends
// connected. Servers gate their first OCSP fetch on it (internal/server's mayFetch).
func TestTriedAfterFirstAttempt(t *testing.T) {
	secret := secretFile(t)
	closed := testutil.FreeAddr(t, "127.0.0.1").String()
	lone := startMember(t, "lone", []string{"http://" + closed}, memberOpts{secret: secret})
	testutil.Eventually(t, wait, "the first attempt against a closed port ended", lone.Tried)
	if lone.Connected() {
		t.Fatal("connected to a closed port")
	}

	etcd := startEtcd(t, 1)
	a := startMember(t, "a", etcd.endpoints(), memberOpts{secret: secret})
	testutil.Eventually(t, wait, "connected", a.Connected)
	if !a.Tried() {
		t.Fatal("connected, but the first attempt is not over")
	}
}
