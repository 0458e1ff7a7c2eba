package quic

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/internal/testutil"
	quicgo "github.com/quic-go/quic-go"
)

// Connection attempts are admitted before any cryptography: per client, per bind, and
// with a Retry asked for once handshakes pile up. A failed handshake gives its place back.
func TestAdmission(t *testing.T) {
	h := newHarness(t, Options{MaxHandshakes: 3, MaxHandshakesPerClient: 2, RetryThreshold: 2})
	l := h.ln
	a := &quicgo.ClientInfo{RemoteAddr: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1000}}
	b := &quicgo.ClientInfo{RemoteAddr: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 1000}}
	attempt := func(ci *quicgo.ClientInfo) (context.CancelFunc, bool) {
		ctx, cancel := context.WithCancel(context.Background())
		_, err := l.connContext(ctx, ci)
		if err != nil {
			cancel()
			return nil, false
		}
		return cancel, true
	}
	a1, ok := attempt(a)
	if !ok {
		t.Fatal("first handshake refused")
	}
	if l.verifySourceAddress(a.RemoteAddr) {
		t.Fatal("Retry asked for with 1 handshake in flight, threshold 2")
	}
	if _, ok := attempt(a); !ok {
		t.Fatal("second handshake of a client refused with a bound of 2")
	}
	if !l.verifySourceAddress(a.RemoteAddr) {
		t.Fatal("no Retry asked for with 2 handshakes in flight, threshold 2")
	}
	if _, ok := attempt(a); ok {
		t.Fatal("third handshake of one client admitted with a bound of 2")
	}
	if _, ok := attempt(b); !ok {
		t.Fatal("another client refused below the bind's bound")
	}
	if _, ok := attempt(b); ok {
		t.Fatal("fourth handshake admitted with the bind's bound at 3")
	}
	a1() // that handshake failed: its context ends
	testutil.Eventually(t, 5*time.Second, "a failed handshake gives its place back", func() bool { return l.handshaking.Load() == 2 })
	if _, ok := attempt(a); !ok {
		t.Fatal("client refused after one of its handshakes ended")
	}
	if s := l.Stats(); s.Refused != 2 || s.Retries != 1 {
		t.Fatalf("refused %d, retries %d; want 2 and 1", s.Refused, s.Retries)
	}
}
