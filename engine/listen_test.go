package engine

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsfront/dnsfront/doh"
	"github.com/dnsfront/dnsfront/internal/testutil"
	"golang.org/x/sys/unix"
)

// askUDPAndTCP sends one query over UDP and one over TCP to addr and checks the answers.
func askUDPAndTCP(t *testing.T, addr netip.AddrPort) {
	t.Helper()
	for _, network := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: network, Timeout: 5 * time.Second}
		q := new(dns.Msg)
		q.SetQuestion("a.example.", dns.TypeA)
		r, _, err := c.Exchange(q, addr.String())
		if err != nil || len(r.Answer) != 1 {
			t.Fatalf("%s %s: %v %v", network, addr, r, err)
		}
	}
}

// Binds are added and removed on a running engine: an added bind answers over UDP and
// TCP, a removed one refuses connections, a connection made before the removal ends with
// EOF (a graceful close), a bind that cannot be bound fails PrepareBinds and changes
// nothing, and Sockets duplicates every listener (one per loop, address and network).
func TestBindsChangeOnARunningEngine(t *testing.T) {
	backend := udpTestBackend(t)
	acl, err := NewACL([]string{"127.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	be := &Backend{Key: "b", Name: "b", Addr: backend, Timeout: 5 * time.Second}
	st := newTestState(acl, []*Backend{be}, map[string]*Pool{"": {Backends: []*Backend{be}}})
	a := testutil.FreeAddr(t, "127.0.0.1")
	b := testutil.FreeAddr(t, "127.0.0.1")
	e := startTestEngine(t, st, 2, BindOptions{Addr: a, Protocol: "Do53"})
	askUDPAndTCP(t, a)
	held, err := net.Dial("tcp", a.String())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	p, err := e.PrepareBinds([]BindOptions{{Addr: a, Protocol: "Do53"}, {Addr: b, Protocol: "Do53"}})
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan struct{})
	e.CommitBinds(p, time.Second, func() { close(ended) })
	<-ended
	askUDPAndTCP(t, a)
	askUDPAndTCP(t, b)

	p, err = e.PrepareBinds([]BindOptions{{Addr: b, Protocol: "Do53"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Removed(); len(got) != 2 {
		t.Errorf("removed %v, want a's UDP and TCP", got)
	}
	ended = make(chan struct{})
	e.CommitBinds(p, 5*time.Second, func() { close(ended) })
	if _, err := net.Dial("tcp", a.String()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial removed bind %s: %v, want connection refused", a, err)
	}
	_ = held.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := held.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("connection to the removed bind: %v, want EOF", err)
	}
	askUDPAndTCP(t, b)

	busy, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	c := busy.LocalAddr().(*net.UDPAddr).AddrPort()
	if _, err := e.PrepareBinds([]BindOptions{{Addr: b, Protocol: "Do53"}, {Addr: c, Protocol: "Do53"}}); !errors.Is(err, unix.EADDRINUSE) {
		t.Errorf("PrepareBinds on a busy port: %v, want EADDRINUSE", err)
	}
	askUDPAndTCP(t, b)

	socks, err := e.Sockets()
	if err != nil {
		t.Fatal(err)
	}
	if len(socks) != 4 {
		t.Errorf("%d sockets, want 4 (2 loops × UDP and TCP of %s)", len(socks), b)
	}
	for _, s := range socks {
		if s.Addr != b {
			t.Errorf("socket of %s, want %s", s.Addr, b)
		}
		_ = unix.Close(s.FD)
	}
	<-ended
}

// A DoH bind whose options were used (their defaults resolved) is the same bind as one
// built again from the same configuration: a reload keeps its connections.
func TestSameBindIgnoresResolvedDoHOptions(t *testing.T) {
	e := &Engine{opts: Options{Loops: 1, MaxTCPInFlight: 100}}
	a := BindOptions{Addr: netip.MustParseAddrPort("127.0.0.1:443"), Protocol: "DoH"}
	b := a
	if err := e.setupBind(&a); err != nil {
		t.Fatal(err)
	}
	if err := e.setupBind(&b); err != nil {
		t.Fatal(err)
	}
	doh.NewSession(a.DoH, doh.Detect, nil) // resolves its defaults, as serving does
	if !sameBind(&a, &b) {
		t.Error("the same DoH bind compares as changed")
	}
	b.DoH.IdleTimeout = time.Minute
	if sameBind(&a, &b) {
		t.Error("a DoH bind with another idle timeout compares as the same")
	}
}

// Every setting of a bind counts: one that differs in any field is another bind, whose
// connections are built anew.
func TestSameBindComparesEveryField(t *testing.T) {
	base := BindOptions{Addr: netip.MustParseAddrPort("127.0.0.1:53"), Protocol: "Do53"}
	for name, change := range map[string]func(b *BindOptions){
		"pool":      func(b *BindOptions) { b.Pool = "other" },
		"max conns": func(b *BindOptions) { b.MaxConns = 3 },
		"padding":   func(b *BindOptions) { b.PadResponses = true },
		"proxy":     func(b *BindOptions) { b.Proxy.Enabled = true },
	} {
		a, b := base, base
		change(&b)
		if sameBind(&a, &b) {
			t.Errorf("%s: a changed bind compares as the same", name)
		}
	}
	a, b := base, base
	if !sameBind(&a, &b) {
		t.Error("the same bind compares as changed")
	}
}

// startTwoBinds starts an engine with two loops on Do53 binds a and b, forwarding to be.
func startTwoBinds(t *testing.T, be *Backend) (e *Engine, a, b netip.AddrPort) {
	t.Helper()
	acl, err := NewACL([]string{"127.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	st := newTestState(acl, []*Backend{be}, map[string]*Pool{"": {Backends: []*Backend{be}}})
	a = testutil.FreeAddr(t, "127.0.0.1")
	b = testutil.FreeAddr(t, "127.0.0.1")
	return startTestEngine(t, st, 2, BindOptions{Addr: a, Protocol: "Do53"}, BindOptions{Addr: b, Protocol: "Do53"}), a, b
}

// rebind puts binds in force with drain and returns a channel closed when the drain ended.
func rebind(t *testing.T, e *Engine, drain time.Duration, addrs ...netip.AddrPort) <-chan struct{} {
	t.Helper()
	var binds []BindOptions
	for _, a := range addrs {
		binds = append(binds, BindOptions{Addr: a, Protocol: "Do53"})
	}
	p, err := e.PrepareBinds(binds)
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan struct{})
	e.CommitBinds(p, drain, func() { close(ended) })
	return ended
}

// An answer due after its UDP listener closed (here the SERVFAIL of a backend timeout
// that comes after drain_timeout) is dropped: the listener's descriptor number, reused by
// a TCP connection accepted since, must not receive it.
func TestRemovedUDPBindAnswersNoReusedDescriptor(t *testing.T) {
	silent, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	be := &Backend{Key: "s", Name: "s", Addr: silent.LocalAddr().(*net.UDPAddr).AddrPort(), Timeout: time.Second}
	e, a, b := startTwoBinds(t, be)

	e.listenMu.Lock()
	old := map[int]bool{}
	for _, s := range e.socks {
		if s.key == (listenKey{"udp", b}) {
			old[s.fd] = true
		}
	}
	e.listenMu.Unlock()
	const queries = 8
	for i := range queries {
		c, err := net.Dial("udp", b.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		q := new(dns.Msg)
		q.SetQuestion(fmt.Sprintf("slow%d.test.", i), dns.TypeA)
		m, _ := q.Pack()
		if _, err := c.Write(m); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 5*time.Second, "queries in flight", func() bool { return e.Stats().Outstanding == queries })

	// The client sockets exist before the listeners close, so that the descriptors
	// accepted for them are the lowest free ones: those the listeners had.
	clients := make([]int, 2*len(old)+4)
	for i := range clients {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = fd
		defer unix.Close(fd)
	}
	<-rebind(t, e, 10*time.Millisecond, a)
	if e.Stats().Outstanding != queries {
		t.Fatal("the backend timeout passed before the drain ended; the test proves nothing")
	}
	for _, fd := range clients {
		if err := unix.Connect(fd, sockaddr(a)); err != nil {
			t.Fatal(err)
		}
	}
	reused := func() int {
		n := 0
		e.onLoops(func(l *loop) {
			for c := range l.clients {
				if old[c.gc.Fd()] {
					n++
				}
			}
		})
		return n
	}
	testutil.Eventually(t, 5*time.Second, "the connections accepted", func() bool { return e.connections() == int64(len(clients)) })
	if reused() == 0 {
		t.Fatal("no accepted connection took a closed listener's descriptor; the test proves nothing")
	}
	testutil.Eventually(t, 5*time.Second, "the backend timeouts", func() bool { return e.Stats().Outstanding == 0 })
	e.onLoops(func(*loop) {}) // the sweep's pass has sent what it queued
	for _, fd := range clients {
		tv := unix.Timeval{Usec: 20000}
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		if n, _ := unix.Read(fd, make([]byte, 512)); n > 0 {
			t.Errorf("a TCP client received %d bytes meant for a UDP client of a removed bind", n)
		}
	}
}

// A bind removed and added again before its UDP sockets closed takes them back: no socket
// of the address is left unread in its SO_REUSEPORT group, so no datagram is lost.
func TestReaddedUDPBindTakesBackItsDrainingSockets(t *testing.T) {
	be := &Backend{Key: "b", Name: "b", Addr: udpTestBackend(t), Timeout: 5 * time.Second}
	e, a, b := startTwoBinds(t, be)
	askUDPAndTCP(t, b)
	removed := rebind(t, e, time.Minute, a)
	<-rebind(t, e, time.Minute, a, b)
	e.listenMu.Lock()
	left := len(e.udpDrain)
	e.listenMu.Unlock()
	if left != 0 {
		t.Errorf("%d addresses still draining after they were added again", left)
	}

	const n = 40
	conns := make([]*net.UDPConn, n)
	for i := range conns {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(b))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		q := new(dns.Msg)
		q.SetQuestion("a.example.", dns.TypeA)
		m, _ := q.Pack()
		if _, err := c.Write(m); err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	deadline := time.Now().Add(10 * time.Second)
	lost := 0
	for _, c := range conns {
		_ = c.SetReadDeadline(deadline)
		if _, err := c.Read(make([]byte, 512)); err != nil {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d queries to the bind added again got no answer", lost, n)
	}
	_ = e.Stop()
	<-removed
}

// A plan that takes back a draining socket and is aborted returns it to its drain.
func TestAbortedPlanReturnsDrainingSockets(t *testing.T) {
	be := &Backend{Key: "b", Name: "b", Addr: udpTestBackend(t), Timeout: 5 * time.Second}
	e, a, b := startTwoBinds(t, be)
	removed := rebind(t, e, time.Minute, a)
	p, err := e.PrepareBinds([]BindOptions{{Addr: a, Protocol: "Do53"}, {Addr: b, Protocol: "Do53"}})
	if err != nil {
		t.Fatal(err)
	}
	p.Abort()
	e.listenMu.Lock()
	back := len(e.udpDrain[listenKey{"udp", b}])
	e.listenMu.Unlock()
	if back != 2 {
		t.Errorf("%d sockets draining after the abort, want 2", back)
	}
	_ = e.Stop()
	<-removed
	e.listenMu.Lock()
	defer e.listenMu.Unlock()
	if len(e.udpDrain) != 0 {
		t.Errorf("sockets still draining after the drain ended: %v", e.udpDrain)
	}
}
