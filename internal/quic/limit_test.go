package quic

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/engine/rules"
	"github.com/dnsfront/dnsfront/internal/testutil"
	quicgo "github.com/quic-go/quic-go"
)

// sharedLimit is the server's adapter of rules.TLSLimiter (one limiter for the DoT and
// the QUIC binds) with a clock the test sets, recording the ends it hears.
type sharedLimit struct {
	l *rules.TLSLimiter

	mu            sync.Mutex
	now           int64
	done, aborted int
}

func (s *sharedLimit) clock() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

func (s *sharedLimit) Begin(a netip.Addr) bool { return s.l.Begin(a, s.clock()) }
func (s *sharedLimit) Done(a netip.Addr, resumed bool) {
	s.l.Done(a, resumed, s.clock())
	s.mu.Lock()
	s.done++
	s.mu.Unlock()
}
func (s *sharedLimit) Abort(a netip.Addr) {
	s.l.Abort(a, s.clock())
	s.mu.Lock()
	s.aborted++
	s.mu.Unlock()
}

func (s *sharedLimit) ends() (done, aborted int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done, s.aborted
}

// The per-client TLS limits are shared with DoT: a handshake in flight over TCP counts
// against the client's QUIC handshakes, a failed QUIC handshake gives its place back
// (Abort), and a completed one is a session (Done) that can get the client banned on
// both transports.
func TestClientLimiterShared(t *testing.T) {
	h := newHarness(t, Options{})
	lim := &sharedLimit{l: rules.NewTLSLimiter(rules.TLSLimits{
		NewSessionsPerSecond: 1, MaxConcurrentHandshakes: 1, BanDuration: 10 * time.Second,
	}), now: int64(time.Hour)}
	h.ln.SetClientLimiter(lim)
	lo := netip.MustParseAddr("127.0.0.1")
	ci := &quicgo.ClientInfo{RemoteAddr: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1000}}

	// A DoT handshake of this client is in flight: its QUIC attempt is refused.
	if !lim.Begin(lo) {
		t.Fatal("first DoT handshake refused")
	}
	if _, err := h.ln.connContext(context.Background(), ci); err == nil {
		t.Fatal("QUIC handshake admitted while the client's DoT handshake is in flight (limit 1)")
	}
	if s := h.ln.Stats(); s.ClientLimited != 1 || s.Refused != 1 {
		t.Fatalf("client limited %d, refused %d; want 1 and 1", s.ClientLimited, s.Refused)
	}
	lim.l.Abort(lo, lim.clock())

	// A QUIC handshake that fails (its context ends) is an Abort and frees the place.
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := h.ln.connContext(ctx, ci); err != nil {
		t.Fatalf("QUIC attempt refused with no handshake in flight: %v", err)
	}
	if lim.Begin(lo) {
		t.Fatal("DoT handshake admitted while the client's QUIC handshake is in flight (limit 1)")
	}
	cancel()
	testutil.Eventually(t, 5*time.Second, "the failed handshake is aborted", func() bool {
		_, a := lim.ends()
		return a == 1
	})

	// A real DoQ connection: Done once its handshake completes, and the query works.
	c := h.dial()
	if m := exchange(t, c, query("www.dns.test", 0)); len(m.Answer) != 1 {
		t.Fatalf("answer %v", m)
	}
	testutil.Eventually(t, 5*time.Second, "Done heard once", func() bool { d, _ := lim.ends(); return d == 1 })
	// New sessions at a frozen clock go over the rate of 1/s (after its burst): the
	// handshake completes (as on DoT) and the client is banned, over TCP and QUIC alike.
	for i := 2; !lim.l.Banned(lo, lim.clock()); i++ {
		if i > 5 {
			t.Fatal("client not banned after 5 new sessions in the same instant (rate 1/s)")
		}
		h.dial()
		testutil.Eventually(t, 5*time.Second, "Done heard", func() bool { d, _ := lim.ends(); return d == i })
	}
	// The banned client is refused at the listener's admission, where every Initial of
	// a real dial would be. A real dial is not used here: its retransmitted Initials can
	// reach a loaded server after the clock below moves on, count as new sessions and
	// ban the client again.
	refused := h.ln.Stats().Refused
	if _, err := h.ln.connContext(context.Background(), ci); err == nil {
		t.Fatal("banned client admitted to a QUIC handshake")
	}
	if s := h.ln.Stats(); s.Refused != refused+1 {
		t.Fatalf("refused %d after a banned attempt, want %d", s.Refused, refused+1)
	}
	// The ban ends: admitted again.
	lim.mu.Lock()
	lim.now += int64(11 * time.Second)
	lim.mu.Unlock()
	before, _ := lim.ends()
	h.dial()
	testutil.Eventually(t, 5*time.Second, "Done heard after the ban", func() bool { d, _ := lim.ends(); return d == before+1 })

	// Without a limiter, nothing is asked.
	h.ln.SetClientLimiter(nil)
	d0, a0 := lim.ends()
	h.dial()
	if d, a := lim.ends(); d != d0 || a != a0 {
		t.Fatalf("limiter heard from a connection admitted without it: done %d→%d, aborted %d→%d", d0, d, a0, a)
	}
}
