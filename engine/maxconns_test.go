package engine

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"

	"github.com/panjf2000/gnet/v2"
)

// acceptConn is an accepted client connection as OnOpen and OnClose see it.
type acceptConn struct {
	gnet.Conn
	el            gnet.EventLoop
	local, remote net.Addr
	ctx           any
}

func (c *acceptConn) EventLoop() gnet.EventLoop { return c.el }
func (c *acceptConn) LocalAddr() net.Addr       { return c.local }
func (c *acceptConn) RemoteAddr() net.Addr      { return c.remote }
func (c *acceptConn) Context() any              { return c.ctx }
func (c *acceptConn) SetContext(ctx any)        { c.ctx = ctx }

type fakeEventLoop struct{ gnet.EventLoop }

// max_concurrent_connections bounds each bind on its own: the connections of one bind
// do not count against another's.
func TestMaxConnsPerBind(t *testing.T) {
	acl, err := NewACL([]string{"127.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddrPort("127.0.0.1:5300")
	b := netip.MustParseAddrPort("127.0.0.1:5301")
	e, err := New(Options{
		Loops: 1,
		Binds: []BindOptions{
			{Addr: a, Protocol: "Do53", MaxConns: 1},
			{Addr: b, Protocol: "Do53", MaxConns: 2},
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, newTestState(acl, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	el := &fakeEventLoop{}
	l := newLoop(e, el, 0)
	e.loops.Store(&map[gnet.EventLoop]*loop{el: l}) // no tick goroutine: there is no real loop
	h := &handler{e: e}
	localA, localB := net.TCPAddrFromAddrPort(a), net.TCPAddrFromAddrPort(b)
	peer := net.TCPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:40000"))
	open := func(local net.Addr) (*acceptConn, bool) {
		c := &acceptConn{el: el, local: local, remote: peer}
		_, act := h.OnOpen(c)
		return c, act == gnet.None
	}

	a1, ok := open(localA)
	if !ok {
		t.Fatal("first connection to bind A refused")
	}
	if _, ok := open(localA); ok {
		t.Fatal("second connection to bind A accepted beyond its bound of 1")
	}
	if _, ok := open(localB); !ok {
		t.Fatal("first connection to bind B refused: bind A's connection counted against it")
	}
	if _, ok := open(localB); !ok {
		t.Fatal("second connection to bind B refused")
	}
	if _, ok := open(localB); ok {
		t.Fatal("third connection to bind B accepted beyond its bound of 2")
	}
	h.OnClose(a1, nil)
	if _, ok := open(localA); !ok {
		t.Fatal("bind A refused a connection after its first one closed")
	}
	if n := l.connCount.Load(); n != 3 {
		t.Fatalf("connection gauge %d, want 3", n)
	}
	if n := l.stats.overloaded.Load(); n != 2 {
		t.Fatalf("%d refusals counted, want 2", n)
	}
}
