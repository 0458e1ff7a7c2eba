package engine

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/dnsfront/dnsfront/internal/testutil"
)

// fakeConn stands in for the gnet connections of a loop: the methods the UDP hot path
// calls are overridden, any other call panics on the nil embedded interface, which
// shows at once if the hot path starts using more of gnet.
type fakeConn struct {
	gnet.Conn
	in     []byte // what Next returns
	out    []byte // the last Write
	fd     int
	local  net.Addr
	remote net.Addr
}

func (c *fakeConn) Next(int) ([]byte, error) {
	b := c.in
	c.in = nil
	return b, nil
}

func (c *fakeConn) Write(b []byte) (int, error) {
	c.out = append(c.out[:0], b...)
	return len(b), nil
}

func (c *fakeConn) Fd() int              { return c.fd }
func (c *fakeConn) LocalAddr() net.Addr  { return c.local }
func (c *fakeConn) RemoteAddr() net.Addr { return c.remote }

// udpPair opens two UDP sockets on 127.0.0.1: the listener dnsfront answers from (its fd is
// what the loop's sendto uses) and the client the answers go to. The client is drained
// only when a test wants to read; when its buffer is full the kernel drops the datagrams,
// which sendto does not see.
func udpPair(tb testing.TB) (listenerFD int, client *net.UDPConn) {
	tb.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { unix.Close(fd) })
	client, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { client.Close() })
	return fd, client
}

// hotPath is one loop wired to fake gnet connections: a UDP listener whose datagrams come
// from a real client socket address, and an installed UDP backend socket.
type hotPath struct {
	l        *loop
	bind     *BindOptions
	listener *fakeConn
	backend  *fakeConn
	sock     *backendSock
	query    []byte
	answer   []byte // the backend's answer; its ID is set from what the loop sent
	ans      []byte // reused buffer for the answer handed to the loop
	// bsrv receives what the loop sends on the UDP backend socket (sendmmsg on the fake
	// connection's fd, a real socket connected to bsrv); sent is the last query read.
	bsrv *net.UDPConn
	qbuf []byte
	sent []byte
}

func newHotPath(tb testing.TB, listenerFD int, client *net.UDPConn) *hotPath {
	tb.Helper()
	acl, err := NewACL([]string{"127.0.0.0/8"})
	if err != nil {
		tb.Fatal(err)
	}
	be := &Backend{Key: "b|127.0.0.1:53", Name: "b", Addr: netip.MustParseAddrPort("127.0.0.1:53"), Timeout: time.Second}
	st := newTestState(acl, []*Backend{be}, map[string]*Pool{"": {Backends: []*Backend{be}}})
	bindAddr := netip.MustParseAddrPort("127.0.0.1:5300")
	e, err := New(Options{
		Loops:  1,
		Binds:  []BindOptions{{Addr: bindAddr, Protocol: "Do53"}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, st)
	if err != nil {
		tb.Fatal(err)
	}
	// No gnet event loop: the hot path must not need one once the backend socket exists.
	l := newLoop(e, nil, 0)
	l.current()
	h := &hotPath{l: l, bind: &e.opts.Binds[0]}
	h.sock = &backendSock{l: l, b: be, backend: 0, pending: map[uint16]*pending{}}
	h.bsrv, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.bsrv.Close() })
	h.qbuf = make([]byte, 65535)
	bfd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { unix.Close(bfd) })
	if err := unix.Connect(bfd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: h.bsrv.LocalAddr().(*net.UDPAddr).Port}); err != nil {
		tb.Fatal(err)
	}
	h.backend = &fakeConn{fd: bfd, remote: net.UDPAddrFromAddrPort(be.Addr)}
	h.sock.gc = h.backend
	l.udp[0] = h.sock
	h.listener = &fakeConn{fd: listenerFD, local: net.UDPAddrFromAddrPort(bindAddr), remote: client.LocalAddr()}

	q := new(dns.Msg)
	q.SetQuestion("www.example.com.", dns.TypeA)
	q.SetEdns0(1232, false)
	q.Id = 0x1234
	if h.query, err = q.Pack(); err != nil {
		tb.Fatal(err)
	}
	r := new(dns.Msg)
	r.SetReply(q)
	for _, s := range []string{"www.example.com. 300 IN A 192.0.2.1", "www.example.com. 300 IN A 192.0.2.2"} {
		rr, _ := dns.NewRR(s)
		r.Answer = append(r.Answer, rr)
	}
	r.SetEdns0(4096, false)
	if h.answer, err = r.Pack(); err != nil {
		tb.Fatal(err)
	}
	h.ans = make([]byte, 0, len(h.answer))
	return h
}

// roundTrip pushes one client query through the loop and the backend's answer back: the
// loop's UDP query handling (with the recvmmsg that finds the listener empty), the
// sendmmsg to the backend socket, the answer's matching and the sendmmsg to the client.
func (h *hotPath) roundTrip() {
	h.listener.in = h.query
	h.l.onUDP(h.listener, h.bind)
	h.readSent()
	h.ans = append(h.ans[:0], h.answer...)
	copy(h.ans[:2], h.sent[:2]) // the ID the loop chose
	h.backend.in = h.ans
	h.l.onBackendTraffic(h.sock, h.backend)
}

// readSent reads the query the loop sent on its UDP backend socket. Outside a gnet pass
// the loop sends at once, so the datagram is queued at bsrv already.
func (h *hotPath) readSent() {
	n, err := h.bsrv.Read(h.qbuf)
	if err != nil {
		panic(err)
	}
	h.sent = h.qbuf[:n]
}

func TestHotPathRoundTrip(t *testing.T) {
	fd, client := udpPair(t)
	h := newHotPath(t, fd, client)
	for i := range 3 {
		h.roundTrip()
		if n := len(h.sock.pending); n != 0 {
			t.Fatalf("round %d: %d queries still pending", i, n)
		}
		sent := new(dns.Msg)
		if err := sent.Unpack(h.sent); err != nil {
			t.Fatalf("query sent to the backend: %v", err)
		}
		if sent.Question[0].Name != "www.example.com." || sent.IsEdns0() == nil || sent.IsEdns0().UDPSize() != 1232 {
			t.Errorf("query sent to the backend: %v", sent)
		}
		_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 4096)
		n, err := client.Read(buf)
		if err != nil {
			t.Fatalf("round %d: no answer at the client: %v", i, err)
		}
		got := new(dns.Msg)
		if err := got.Unpack(buf[:n]); err != nil {
			t.Fatal(err)
		}
		if got.Id != 0x1234 || len(got.Answer) != 2 || got.IsEdns0() == nil {
			t.Errorf("round %d: client got %v", i, got)
		}
	}
	if s := &h.l.stats; s.responses[protoUDP].Load() != 3 || s.sendErrors.Load() != 0 || s.mismatches.Load() != 0 {
		t.Errorf("counters: %d responses, %d send errors, %d mismatches", s.responses[protoUDP].Load(), s.sendErrors.Load(), s.mismatches.Load())
	}
}

// BenchmarkHotPathUDP is one UDP query in and its answer out through the loop's own code,
// without gnet's event loop and the network between: the per-query cost the engine adds,
// including the sendto system call. The loop's timer sweep runs every 1024 queries, as
// the 50 ms ticker would at about 20k queries/s per loop.
func BenchmarkHotPathUDP(b *testing.B) {
	fd, client := udpPair(b)
	h := newHotPath(b, fd, client)
	h.bench(b, h.roundTrip, func() int { return int(h.l.stats.responses[protoUDP].Load()) })
}

// bench runs roundTrip b.N times after warming the loop's pools (steady state is what
// counts), with the timer sweep every 1024 queries, and checks that answered() rose by
// one answer per query.
func (h *hotPath) bench(b *testing.B, roundTrip func(), answered func() int) {
	for range 1024 {
		roundTrip()
	}
	h.l.sweep(time.Now())
	base := answered()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		roundTrip()
		if i&1023 == 1023 {
			h.l.sweep(time.Now())
		}
	}
	b.StopTimer()
	if got := answered() - base; got != b.N {
		b.Fatalf("%d answers for %d queries (send errors %d)", got, b.N, h.l.stats.sendErrors.Load())
	}
}

// BenchmarkForwardUDPLoopback is the whole path on loopback: a client socket, the gnet
// engine with one loop, a backend socket that echoes each query back as its answer. The
// client and the backend use allocation-free socket calls, so allocs/op is what gnet and
// the engine together allocate per query.
func BenchmarkForwardUDPLoopback(b *testing.B) {
	client, query := forwardLoopback(b)
	q := new(dns.Msg)
	if err := q.Unpack(query); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 4096)
	exchange := func() {
		if _, err := client.Write(query); err != nil {
			b.Fatal(err)
		}
		_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := client.Read(buf)
		if err != nil {
			b.Fatal(err)
		}
		if n < headerLen || msgID(buf) != q.Id {
			b.Fatalf("answer of %d bytes with ID %d, want ID %d", n, msgID(buf[:n]), q.Id)
		}
	}
	for range 1000 {
		exchange()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		exchange()
	}
}

// BenchmarkForwardUDPLoopbackBurst is BenchmarkForwardUDPLoopback with 32 queries in
// flight from one client, as under load: the loop reads them in batches (recvmmsg) and
// sends their answers in batches (sendmmsg). An op is one query; allocs/op is what gnet
// and the engine allocate per query when the loop wakes for several datagrams at once.
func BenchmarkForwardUDPLoopbackBurst(b *testing.B) {
	client, query := forwardLoopback(b)
	const burst = 32
	buf := make([]byte, 4096)
	round := func(k int) {
		for j := range k {
			setMsgID(query, uint16(j))
			if _, err := client.Write(query); err != nil {
				b.Fatal(err)
			}
		}
		for range k {
			_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := client.Read(buf); err != nil {
				b.Fatal(err)
			}
		}
	}
	for range 100 {
		round(burst)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for left := b.N; left > 0; left -= burst {
		round(min(left, burst))
	}
}

// forwardLoopback starts the gnet engine with one loop in front of a backend that echoes
// each query back as its answer, and returns a client connected to it and a query.
func forwardLoopback(b *testing.B) (*net.UDPConn, []byte) {
	b.Helper()
	backend, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { backend.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := backend.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			buf[2] |= 0x80 // QR: the query itself, answered with no records
			_, _ = backend.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	bind := testutil.FreeAddr(b, "127.0.0.1")
	acl, _ := NewACL([]string{"127.0.0.0/8"})
	be := &Backend{Key: "b", Name: "b", Addr: backend.LocalAddr().(*net.UDPAddr).AddrPort(), Timeout: time.Second}
	st := newTestState(acl, []*Backend{be}, map[string]*Pool{"": {Backends: []*Backend{be}}})
	startTestEngine(b, st, 1, BindOptions{Addr: bind, Protocol: "Do53"})
	client, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(bind))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { client.Close() })
	q := new(dns.Msg)
	q.SetQuestion("www.example.com.", dns.TypeA)
	q.SetEdns0(1232, false)
	query, err := q.Pack()
	if err != nil {
		b.Fatal(err)
	}
	return client, query
}
