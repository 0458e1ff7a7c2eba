package engine

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// twoBackends is one loop serving two Do53 binds, each with a pool of one backend whose
// UDP socket is a fake connection: a slow backend with a long timeout and a fast one
// with a short timeout.
type twoBackends struct {
	l          *loop
	slow, fast *BindOptions
	socks      [2]*backendSock
	fd         int
	client     *net.UDPConn
}

// expectServfail reads the client's next answer: SERVFAIL for the query with ID id.
func (tb *twoBackends) expectServfail(t *testing.T, id uint16) {
	t.Helper()
	_ = tb.client.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 512)
	n, err := tb.client.Read(buf)
	if err != nil {
		t.Fatalf("no SERVFAIL at the client: %v", err)
	}
	got := new(dns.Msg)
	if err := got.Unpack(buf[:n]); err != nil {
		t.Fatal(err)
	}
	if got.Id != id || got.Rcode != dns.RcodeServerFailure {
		t.Fatalf("client got ID %d rcode %s, want ID %d SERVFAIL", got.Id, dns.RcodeToString[got.Rcode], id)
	}
}

func newTwoBackends(t *testing.T) *twoBackends {
	t.Helper()
	fd, client := udpPair(t)
	acl, err := NewACL([]string{"127.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	slow := &Backend{Key: "slow", Name: "slow", Addr: netip.MustParseAddrPort("127.0.0.1:53"), Timeout: 5 * time.Second}
	fast := &Backend{Key: "fast", Name: "fast", Addr: netip.MustParseAddrPort("127.0.0.2:53"), Timeout: 100 * time.Millisecond}
	st := newTestState(acl, []*Backend{slow, fast}, map[string]*Pool{
		"slow": {Name: "slow", Backends: []*Backend{slow}},
		"fast": {Name: "fast", Backends: []*Backend{fast}},
	})
	e, err := New(Options{
		Loops: 1,
		Binds: []BindOptions{
			{Addr: netip.MustParseAddrPort("127.0.0.1:5300"), Protocol: "Do53", Pool: "slow"},
			{Addr: netip.MustParseAddrPort("127.0.0.1:5301"), Protocol: "Do53", Pool: "fast"},
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, st)
	if err != nil {
		t.Fatal(err)
	}
	l := newLoop(e, nil, 0)
	l.current()
	tb := &twoBackends{l: l, slow: &e.opts.Binds[0], fast: &e.opts.Binds[1], fd: fd, client: client}
	for i, b := range st.Backends {
		s := &backendSock{l: l, b: b, backend: i, pending: map[uint16]*pending{}}
		s.gc = &fakeConn{remote: net.UDPAddrFromAddrPort(b.Addr)}
		l.udp[i] = s
		tb.socks[i] = s
	}
	return tb
}

func (tb *twoBackends) query(t *testing.T, bind *BindOptions, id uint16) {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion("www.example.com.", dns.TypeA)
	q.Id = id
	buf, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	from := tb.client.LocalAddr().(*net.UDPAddr).AddrPort()
	tb.l.onDatagram(tb.fd, bind, buf, from.Addr(), int(from.Port()))
}

// A query to a backend with a short timeout times out on time even when a query to a
// backend with a longer timeout was sent before it.
func TestTimeoutNotHeldBackBySlowerBackend(t *testing.T) {
	tb := newTwoBackends(t)
	// The queries take their send time from the clock; the sweeps' instants are
	// relative to before and after they were sent, so that a test goroutine held
	// up on a loaded machine does not move a deadline past a sweep.
	before := time.Now()
	tb.query(t, tb.slow, 1)
	tb.query(t, tb.fast, 2)
	after := time.Now()
	if len(tb.socks[0].pending) != 1 || len(tb.socks[1].pending) != 1 {
		t.Fatalf("pending: slow %d, fast %d; want 1 and 1", len(tb.socks[0].pending), len(tb.socks[1].pending))
	}

	tb.l.sweep(before.Add(50 * time.Millisecond))
	if n := tb.l.stats.timeouts.Load(); n != 0 {
		t.Fatalf("%d timeouts before the fast backend's timeout", n)
	}

	tb.l.sweep(after.Add(200 * time.Millisecond))
	if n := tb.l.stats.timeouts.Load(); n != 1 {
		t.Fatalf("%d timeouts 200 ms after the queries, want 1 (the fast backend's)", n)
	}
	if len(tb.socks[0].pending) != 1 || len(tb.socks[1].pending) != 0 {
		t.Fatalf("pending after the sweep: slow %d, fast %d; want 1 and 0", len(tb.socks[0].pending), len(tb.socks[1].pending))
	}
	tb.expectServfail(t, 2)

	tb.l.sweep(after.Add(6 * time.Second))
	if n := tb.l.stats.timeouts.Load(); n != 2 {
		t.Fatalf("%d timeouts after the slow backend's timeout, want 2", n)
	}
	if o := tb.l.outstandingTotal.Load(); o != 0 {
		t.Fatalf("%d queries still counted outstanding", o)
	}
}
