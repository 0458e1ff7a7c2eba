package fleet

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeClock drives key epochs in tests: it moves only when told.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{now: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) At(t time.Time) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if !t.After(c.now) {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{t, ch})
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- c.now
	}
	c.waiters = kept
}

// syncBuffer is a log sink shared by the members of a test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// member is one Fleet with everything its callbacks received.
type member struct {
	*Fleet
	name string

	mu       sync.Mutex
	keys     [][32]byte
	staples  map[[32]byte][][]byte
	blocks   map[netip.Prefix]Block
	blockAt  map[netip.Prefix]time.Time
	unblocks map[netip.Prefix]int
}

type memberOpts struct {
	clock  Clock
	secret string
	delay  time.Duration
	log    *syncBuffer
	ttl    time.Duration
	tls    *tls.Config
	onKeys func([][32]byte) // also called with each ring, as a server installs it
}

func startMember(t *testing.T, name string, endpoints []string, o memberOpts) *member {
	t.Helper()
	m := &member{name: name, staples: map[[32]byte][][]byte{}, blocks: map[netip.Prefix]Block{}, blockAt: map[netip.Prefix]time.Time{}, unblocks: map[netip.Prefix]int{}}
	if o.delay == 0 {
		o.delay = time.Hour
	}
	if o.ttl == 0 {
		o.ttl = 2 * time.Second
	}
	logger := slog.New(slog.DiscardHandler)
	if o.log != nil {
		logger = slog.New(slog.NewTextHandler(o.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	f, err := Start(context.Background(), Options{
		Name: "test", Endpoints: endpoints, TLS: o.tls, DialTimeout: 2 * time.Second, Member: name,
		LeaseTTL: o.ttl, RotationDelay: o.delay, NumberOfKeys: 3, SecretFile: o.secret,
		Log: logger, Clock: o.clock,
		OnTicketKeys: func(keys [][32]byte) {
			m.mu.Lock()
			m.keys = slices.Clone(keys)
			m.mu.Unlock()
			if o.onKeys != nil {
				o.onKeys(keys)
			}
		},
		OnStaple: func(fp [32]byte, der []byte) {
			m.mu.Lock()
			m.staples[fp] = append(m.staples[fp], slices.Clone(der))
			m.mu.Unlock()
		},
		OnBlock: func(b Block) {
			m.mu.Lock()
			m.blocks[b.Prefix] = b
			m.blockAt[b.Prefix] = time.Now()
			m.mu.Unlock()
		},
		OnUnblock: func(p netip.Prefix) {
			m.mu.Lock()
			delete(m.blocks, p)
			m.unblocks[p]++
			m.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	m.Fleet = f
	t.Cleanup(func() {
		if m.ctx.Err() == nil {
			_ = m.Close()
		}
	})
	return m
}

func (m *member) ring() [][32]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.keys)
}

func (m *member) hasBlock(p netip.Prefix) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.blocks[p]
	return ok
}

func (m *member) unblocked(p netip.Prefix) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.unblocks[p]
}

func (m *member) stapleDeliveries(fp [32]byte) [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.staples[fp])
}

// sameEncryptingKey reports whether every member has a ring and they all
// encrypt with the same key.
func sameEncryptingKey(ms ...*member) bool {
	first := ms[0].ring()
	if len(first) == 0 {
		return false
	}
	for _, m := range ms[1:] {
		r := m.ring()
		if len(r) == 0 || r[0] != first[0] {
			return false
		}
	}
	return true
}

func leaders(ms ...*member) []string {
	var l []string
	for _, m := range ms {
		if m.ctx.Err() == nil && m.IsLeader() {
			l = append(l, m.name)
		}
	}
	return l
}

// noKeyMaterial fails the test if any key appears in the logs, in any
// encoding a logger would use.
func noKeyMaterial(t *testing.T, logs string, keys ...[32]byte) {
	t.Helper()
	for _, k := range keys {
		for _, enc := range []string{fmt.Sprintf("%x", k[:]), fmt.Sprintf("%X", k[:]), fmt.Sprintf("%x", k[:8]), b64(k[:]), fmt.Sprint(k[:])} {
			if bytes.Contains([]byte(logs), []byte(enc)) {
				t.Fatalf("key material in the logs (%q)", enc)
			}
		}
	}
}
