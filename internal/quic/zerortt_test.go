package quic

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/miekg/dns"
	quicgo "github.com/quic-go/quic-go"
)

// 0-RTT is off unless the bind enables it (RFC 9250 section 4.5: 0-RTT data can be
// replayed). A resuming client that tries it gets a full 1-RTT exchange by default, and
// 0-RTT when enabled; its query is answered either way.
func TestDoQZeroRTT(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		name := "off"
		if enabled {
			name = "on"
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, Options{Allow0RTT: enabled})
			tc := h.clientTLS("doq")
			tc.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			qc := &quicgo.Config{Allow0RTT: true}
			dial := func() *quicgo.Conn {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				c, err := quicgo.DialAddrEarly(ctx, h.ln.Addr().String(), tc, qc)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = c.CloseWithError(0, "") })
				return c
			}
			first := dial()
			exchange(t, first, query("www.example.", 0)) // the ticket arrives after the handshake
			_ = first.CloseWithError(0, "")
			// The second connection resumes and offers 0-RTT. Its query waits for the
			// handshake: quic-go v0.65.0's client reads the server's transport parameters
			// when it opens a stream on an early connection while its own run loop writes
			// them (a data race in the client, which the race detector reports). Whether
			// the server took 0-RTT is the connection's, not the query's.
			c := dial()
			<-c.HandshakeComplete()
			if m := exchange(t, c, query("www.example.", 0)); m.Rcode != dns.RcodeSuccess {
				t.Fatalf("rcode %d", m.Rcode)
			}
			if used := c.ConnectionState().Used0RTT; used != enabled {
				t.Fatalf("0-RTT used: %v, want %v", used, enabled)
			}
			if n := h.ln.Stats().ZeroRTT; (n > 0) != enabled {
				t.Fatalf("%d 0-RTT connections counted with 0-RTT %s", n, name)
			}
		})
	}
}
