package quic

import (
	"crypto/rand"
	"github.com/dnsfront/dnsfront/engine"
	"net"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Datagrams that are not QUIC are dropped by quic-go without a reply (no reflection) and
// do not disturb an established connection.
func TestDoQGarbageDatagrams(t *testing.T) {
	h := newHarness(t, Options{})
	c := h.dial()
	exchange(t, c, query("before.example.", 0))
	u, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(h.ln.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	buf := make([]byte, 1200)
	for i := range 200 {
		n := 1 + i*6
		_, _ = rand.Read(buf[:n])
		_, _ = u.Write(buf[:n])
	}
	if m := exchange(t, c, query("after.example.", 0)); m.Rcode != dns.RcodeSuccess {
		t.Fatalf("rcode %d after the garbage", m.Rcode)
	}
	if m := exchange(t, h.dial(), query("new.example.", 0)); m.Rcode != dns.RcodeSuccess {
		t.Fatalf("new connection after the garbage: rcode %d", m.Rcode)
	}
}

// Reloads (new snapshots published while queries flow) drop no established connection and
// lose no query; handshakes during them complete.
func TestDoQReloadDuringTraffic(t *testing.T) {
	h := newHarness(t, Options{})
	const conns, perConn = 4, 50
	var wg sync.WaitGroup
	errs := make(chan string, conns*perConn)
	for range conns {
		c := h.dial()
		wg.Go(func() {
			for range perConn {
				m, err := tryExchange(c, query("www.example.", 0))
				switch {
				case err != nil:
					errs <- err.Error()
				case m.Rcode != dns.RcodeSuccess:
					errs <- dns.RcodeToString[m.Rcode]
				}
			}
		})
	}
	for i := range 20 {
		if i%2 == 0 {
			h.publish(h.pki.Good())
		} else {
			h.publish(nil)
		}
		exchange(t, h.dial(), query("reload.example.", 0))
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatalf("a query during reloads got %s", e)
	}
	if s := waitCounts(t, h.eng, func(s engine.Stats) bool { return s.Responses["doq"] == conns*perConn+20 }); s.Responses["doq"] != conns*perConn+20 {
		t.Fatalf("%d answers, want %d", s.Responses["doq"], conns*perConn+20)
	}
}
