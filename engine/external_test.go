package engine

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/internal/testutil"
	"github.com/miekg/dns"
)

// startExternalEngine runs a real engine with loops loops and one Do53 bind, forwarding to
// a backend that echoes each query back as its (empty) answer.
func startExternalEngine(t *testing.T, loops int) *Engine {
	t.Helper()
	backend, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { backend.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := backend.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			buf[2] |= 0x80
			_, _ = backend.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	acl, _ := NewACL([]string{"127.0.0.0/8"})
	be := &Backend{Key: "b", Name: "b", Addr: backend.LocalAddr().(*net.UDPAddr).AddrPort(), Timeout: time.Second}
	st := newTestState(acl, []*Backend{be}, map[string]*Pool{"": {Backends: []*Backend{be}}})
	return startTestEngine(t, st, loops, BindOptions{Addr: testutil.FreeAddr(t, "127.0.0.1"), Protocol: "Do53"})
}

type outcome struct {
	answer []byte
	o      Outcome
}

func ask(t *testing.T, x *ExternalClient, msg []byte) outcome {
	t.Helper()
	ch := make(chan outcome, 1)
	if err := x.Query(msg, func(a []byte, o Outcome) { ch <- outcome{append([]byte(nil), a...), o} }); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no outcome: the callback was never called")
	}
	return outcome{}
}

// Every external query gets exactly one outcome: an answer with the client's ID, Malformed
// for what is not a query, Dropped while the engine drains (where a stream client would
// get nothing). External clients are spread over every loop, including loops that have
// seen no other traffic.
func TestExternalClient(t *testing.T) {
	e := startExternalEngine(t, 2)
	peer := netip.MustParseAddrPort("127.0.0.1:5000")
	local := netip.MustParseAddrPort("127.0.0.1:853")
	var xs []*ExternalClient
	for range 4 {
		x, err := e.NewExternalClient("DoQ", "", local, peer)
		if err != nil {
			t.Fatal(err)
		}
		xs = append(xs, x)
	}
	seen := map[*loop]bool{}
	for _, x := range xs {
		if x.cc.bind.Addr != local {
			t.Fatalf("external client's bind address %v, want the listener's %v", x.cc.bind.Addr, local)
		}
		seen[x.l] = true
	}
	if len(seen) != 2 {
		t.Fatalf("4 external clients on %d loops, want both loops", len(seen))
	}
	m := new(dns.Msg)
	m.SetQuestion("www.example.", dns.TypeA)
	m.Id = 4242
	q, _ := m.Pack()
	for _, x := range xs {
		r := ask(t, x, append([]byte(nil), q...))
		if r.o != Answered || len(r.answer) < headerLen || msgID(r.answer) != 4242 {
			t.Fatalf("outcome %v, answer of %d bytes with ID %d", r.o, len(r.answer), msgID(r.answer))
		}
	}
	if r := ask(t, xs[0], []byte("not a DNS message")); r.o != Malformed {
		t.Fatalf("garbage: outcome %v, want malformed", r.o)
	}
	// The loop counts a response after it has handed the answer to the callback, so
	// the last count may trail the last answer by a moment.
	if !testutil.Poll(10*time.Second, func() bool {
		s := e.Stats()
		return s.Queries["doq"] == 5 && s.Responses["doq"] == 4
	}) {
		s := e.Stats()
		t.Fatalf("doq queries %d, responses %d; want 5 and 4", s.Queries["doq"], s.Responses["doq"])
	}
	e.draining.Store(true)
	if r := ask(t, xs[1], append([]byte(nil), q...)); r.o != Dropped {
		t.Fatalf("while draining: outcome %v, want dropped", r.o)
	}
	if _, err := e.NewExternalClient("DoT", "", local, peer); err == nil {
		t.Fatal("an external client for DoT was made")
	}
	_ = e.Stop()
	if err := xs[0].Query(q, func([]byte, Outcome) {}); err == nil {
		t.Fatal("a query was taken after the engine stopped")
	}
}
