package engine

import (
	"net"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// handler receives gnet's events. Every callback runs on the event loop that owns the
// connection and must not block.
type handler struct {
	gnet.BuiltinEventEngine
	e *Engine
}

func (h *handler) OnBoot(eng gnet.Engine) gnet.Action {
	h.e.eng = eng
	return gnet.None
}

// OnRun runs once every loop runs: their states are made in gnet's order, so that a
// loop's index is its gnet index (the TLS stores and the rules' counters are per index).
func (h *handler) OnRun(eng gnet.Engine) {
	for i := range eng.NumEventLoops() {
		h.e.loopFor(eng.EventLoop(i))
	}
	close(h.e.booted)
}

func (h *handler) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	if s, ok := c.Context().(*backendSock); ok {
		// A TCP backend connection registered by this loop.
		if s.retired {
			return nil, gnet.Close
		}
		s.gc = c
		s.flushQueue()
		return nil, gnet.None
	}
	e := h.e
	l := e.loopFor(c.EventLoop())
	st := l.current()
	bind := l.bindFor(c.LocalAddr())
	ta, ok := c.RemoteAddr().(*net.TCPAddr)
	if bind == nil || !ok {
		return nil, gnet.Close
	}
	peer := ta.AddrPort()
	if !st.ACL.Allows(peer.Addr().Unmap()) {
		l.stats.aclDrops.Add(1)
		return nil, gnet.Close
	}
	if e.draining.Load() {
		l.stats.drainDrops.Add(1)
		return nil, gnet.Close
	}
	if bind.MaxConns > 0 && l.bindConns[bind] >= bind.MaxConns {
		l.stats.overloaded.Add(1)
		return nil, gnet.Close
	}
	cc := &clientConn{gc: c, l: l, bind: bind, proto: protoTCP, peer: peer, lastActive: e.mono(time.Now())}
	switch bind.Protocol {
	case "DoT":
		cc.proto = protoDoT
	case "DoH":
		cc.proto = protoDoH
	}
	if bind.newStream != nil {
		cc.stream = bind.newStream(c, l, peer)
		cc.onQuery = func(msg []byte, tag uint64) { l.onStreamQuery(cc, msg, tag) }
		if ls, ok := cc.stream.(limitedStream); ok {
			ls.setFull(func() bool { return cc.inflight >= e.opts.MaxTCPInFlight })
		}
	}
	c.SetContext(cc)
	l.clients[cc] = struct{}{}
	l.bindConns[bind]++
	l.connCount.Add(1)
	return nil, gnet.None
}

// OnClose runs when a connection closes, often inside another callback (gnet closes a
// connection whose write failed before Write returns): its flushes wait for the end of
// the outer pass (pass.go).
func (h *handler) OnClose(c gnet.Conn, _ error) gnet.Action {
	switch x := c.Context().(type) {
	case *backendSock:
		outer := x.l.begin()
		x.closed = true
		x.l.failSock(x)
		x.l.end(outer)
	case *clientConn:
		x.closed = true
		if x.stream != nil {
			x.stream.close()
		}
		if x.lingering {
			x.l.lingering--
		}
		delete(x.l.clients, x)
		x.l.closeProxySocks(x)
		x.l.bindConns[x.bind]--
		x.l.connCount.Add(-1)
	}
	return gnet.None
}

func (h *handler) OnTraffic(c gnet.Conn) gnet.Action {
	switch x := c.Context().(type) {
	case *backendSock:
		return x.l.onBackendTraffic(x, c)
	case *clientConn:
		return x.l.onStreamTraffic(x)
	}
	// A datagram on a Do53 UDP listener.
	l := h.e.loopFor(c.EventLoop())
	bind := l.bindFor(c.LocalAddr())
	if bind == nil {
		_, _ = c.Discard(-1)
		return gnet.None
	}
	outer := l.begin()
	l.onUDP(c, bind)
	l.end(outer)
	return gnet.None
}

// bindFor maps a listener's address to its bind in the table in force, caching by the
// listener's address value (gnet hands the same net.Addr for every connection of a
// listener); the cache is the loop's own and goes with the table.
func (l *loop) bindFor(addr net.Addr) *BindOptions {
	t := l.e.binds.Load()
	m := t.cache[l.idx]
	if b, ok := m[addr]; ok {
		return b
	}
	b := t.bindFor(addr)
	m[addr] = b
	return b
}
