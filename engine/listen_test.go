package engine

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsfront/dnsfront/doh"
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
	a := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), freeUDPPort(t))
	b := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), freeUDPPort(t))
	e, err := New(Options{Loops: 2, Binds: []BindOptions{{Addr: a, Protocol: "Do53"}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, st)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
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
