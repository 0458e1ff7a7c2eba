package engine

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// clientConn is one client stream connection (Do53 TCP, DoT or DoH), owned by its loop.
type clientConn struct {
	gc     gnet.Conn
	l      *loop
	bind   *BindOptions
	proto  proto
	peer   netip.AddrPort
	stream stream // DoT and DoH; nil for Do53 over TCP
	// onQuery hands the stream's queries to the loop; made once, as a closure made per
	// read would be allocated per read.
	onQuery  func(msg []byte, tag uint64)
	out      []byte // Do53 TCP: framed answers queued in this pass
	inflight int
	// lastActive is when the client last sent something (Engine.mono), for the idle timeout.
	lastActive int64
	closed     bool
	paused     bool // reading stopped at MaxTCPInFlight
	dirty      bool
	// closing: the connection ends once its queries in flight are answered (a protocol
	// error, the session's own end); nothing more is read from it.
	closing bool
	// lingering: our last bytes are out and the connection is being closed gracefully
	// (linger.go); finSent once it is half-closed.
	lingering   bool
	finSent     bool
	lingerUntil int64 // Engine.mono
	drained     int   // bytes discarded while lingering
	broken      bool  // the stream failed: linger without its last bytes, at once
	// pp is the connection's PROXY header, expected, read or not (proxy.go); ppSocks
	// its own connections to use_proxy_protocol backends (proxy_out.go).
	pp      proxyIn
	ppSocks []*backendSock
}

// stream is the protocol layer of a DoT or DoH connection: TLS and HTTP stay outside the
// engine, which sees DNS messages and tags.
type stream interface {
	// read consumes what the connection received and calls query for each DNS message,
	// with a tag that comes back with its answer. An error closes the connection.
	read(gc gnet.Conn, query func(msg []byte, tag uint64)) error
	// answer queues the answer to the query tagged tag; fail queues a failure (DoH maps
	// it to an HTTP status, DoT sends the SERVFAIL in msg).
	answer(tag uint64, msg []byte)
	fail(tag uint64, kind failKind, msg []byte)
	// flush writes everything queued in one write.
	flush(gc gnet.Conn) error
	// Expired reports whether the stream's own deadline (handshake, idle) has passed.
	Expired(now time.Time) bool
	// wantClose reports whether the stream asked to close once its output is flushed.
	wantClose() bool
	close()
	// shutdown writes the stream's last bytes (a GOAWAY or final HTTP/1.1 answers, then
	// close_notify) without closing the connection: the engine half-closes and lingers.
	shutdown(gc gnet.Conn)
}

// limitedStream is a stream that can hold its queries back while its connection is at
// MaxTCPInFlight (DoT); full reports whether it is.
type limitedStream interface {
	setFull(full func() bool)
}

type failKind uint8

const (
	failNone failKind = iota
	failNoBackend
	failTimeout
	failACL // the forwarded client address is not in the ACL (DoH: 403, as dnsdist)
)

func (c *clientConn) closeNow() {
	if !c.closed {
		_ = c.l.el.Close(c.gc)
	}
}

func (l *loop) markDirty(c *clientConn) {
	if !c.dirty {
		c.dirty = true
		l.dirty = append(l.dirty, c)
	}
}

// flushDirty writes, for every stream client that got answers in this pass, all of them
// in one write (one TLS record for DoT and DoH). It runs at the end of the outermost pass
// only (pass.go); a client marked dirty while it runs is flushed too.
func (l *loop) flushDirty() {
	for i := 0; i < len(l.dirty); i++ {
		c := l.dirty[i]
		l.dirty[i] = nil
		c.dirty = false
		if c.closed || c.lingering {
			continue
		}
		var err error
		if c.stream != nil {
			err = c.stream.flush(c.gc)
			if err == nil && c.stream.wantClose() {
				c.closing = true
			}
		} else if len(c.out) > 0 {
			_, err = c.gc.Write(c.out)
			c.out = c.out[:0]
		}
		if err != nil {
			l.stats.sendErrors.Add(1)
			c.closeNow()
			continue
		}
		if c.closing {
			// Answer what is in flight, then end gracefully.
			if c.inflight == 0 || c.broken {
				l.linger(c, !c.broken)
			}
			continue
		}
		if c.paused && c.inflight < l.e.opts.MaxTCPInFlight {
			c.paused = false
			_ = c.gc.Wake(nil) // read what was left in the inbound buffer
		}
	}
	l.dirty = l.dirty[:0]
	// Last: closing a stream above may have answered UDP clients (a backend socket's
	// OnClose), and sending datagrams calls back into nothing.
	l.flushDatagrams()
}

// onUDP handles the datagram gnet read on a Do53 listener, then reads the ones queued
// behind it in batches (drainUDP).
func (l *loop) onUDP(c gnet.Conn, bind *BindOptions) {
	buf, _ := c.Next(-1)
	fd := c.Fd()
	if ua, ok := c.RemoteAddr().(*net.UDPAddr); ok {
		l.onDatagram(fd, bind, buf, addrFromIP(ua.IP), ua.Port)
	}
	l.drainUDP(fd, bind)
}

// onDatagram handles one query from a UDP client; fd is the listener to answer from.
func (l *loop) onDatagram(fd int, bind *BindOptions, buf []byte, from netip.Addr, port int) {
	st := l.current()
	l.stats.queries[protoUDP].Add(1)
	if !st.ACL.Allows(from) {
		l.stats.aclDrops.Add(1)
		return
	}
	if l.e.draining.Load() {
		l.stats.drainDrops.Add(1)
		return
	}
	// The client is the peer, unless a proxy in the proxy ACL speaks for it (proxy.go).
	peer := netip.AddrPortFrom(from, uint16(port))
	src, dst := peer, bind.Addr
	if st.Proxy != nil && bind.Proxy.Enabled && st.Proxy.ACL.Allows(from) {
		var ok bool
		if buf, src, dst, ok = l.proxyDatagram(st, buf, src, dst); !ok {
			return
		}
	}
	q, err := parseQuery(buf)
	if err != nil {
		l.stats.nonCompliant.Add(1)
		return
	}
	p := l.getPending()
	p.proto = protoUDP
	p.udpFD = fd
	p.peer = peer
	p.pp = proxyAddrs{src: src, dst: dst}
	l.handleQuery(st, bind, buf, q, p)
}

func addrFromIP(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

// onStreamTraffic reads length-framed queries (Do53 TCP) or hands the bytes to the DoT/DoH
// stream; the end of the pass writes everything it produced.
func (l *loop) onStreamTraffic(cc *clientConn) gnet.Action {
	outer := l.begin()
	defer l.end(outer)
	c := cc.gc
	if cc.lingering {
		l.onLingerTraffic(cc)
		return gnet.None
	}
	if cc.closing {
		_, _ = c.Discard(-1) // nothing more is answered on this connection
		return gnet.None
	}
	cc.lastActive = l.e.mono(time.Now())
	if cc.pp.state != ppDone {
		// The connection's first bytes, or a PROXY header not yet whole (proxy.go).
		if more, drop := l.proxyStreamStart(cc); drop {
			return gnet.Close
		} else if !more {
			return gnet.None
		}
	}
	if cc.stream != nil {
		err := cc.stream.read(c, cc.onQuery)
		// The protocol layer may have output of its own (HTTP/2 SETTINGS and their ACKs,
		// WINDOW_UPDATE, a GOAWAY) even when no query came in.
		l.markDirty(cc)
		if cc.stream.wantClose() {
			cc.closing = true
		}
		if l.e.opts.MaxTCPInFlight <= cc.inflight {
			cc.paused = true
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			// The client said goodbye (close_notify): answer what is in flight, then
			// close with ours (RFC 8446 §6.1).
			cc.closing = true
		default:
			// A broken connection (its TLS alert is queued): no close_notify can follow.
			cc.closing, cc.broken = true, true
		}
		return gnet.None
	}
	for {
		if cc.inflight >= l.e.opts.MaxTCPInFlight {
			cc.paused = true
			break
		}
		hdr, err := c.Peek(2)
		if err != nil {
			break
		}
		n := int(binary.BigEndian.Uint16(hdr))
		if n < headerLen {
			// Not DNS: answer what is in flight, then close.
			l.stats.nonCompliant.Add(1)
			_, _ = c.Discard(-1)
			cc.closing = true
			l.markDirty(cc)
			break
		}
		if c.InboundBuffered() < 2+n {
			break
		}
		frame, _ := c.Next(2 + n)
		l.onStreamQuery(cc, frame[2:], 0)
	}
	return gnet.None
}

func (l *loop) onStreamQuery(cc *clientConn, msg []byte, tag uint64) {
	st := l.current()
	l.stats.queries[cc.proto].Add(1)
	if fwd := l.forwardedFor; fwd.IsValid() && !st.ACL.Allows(fwd) {
		// A trusted proxy's client that the ACL does not admit: the proxy's connection
		// passed the ACL at accept, the client is refused here (HTTP 403, as dnsdist).
		l.stats.aclDrops.Add(1)
		l.e.log.Debug("query dropped by the ACL", "peer", cc.peer, "forwarded_for", fwd)
		cc.stream.fail(tag, failACL, nil)
		l.markDirty(cc)
		return
	}
	if l.e.draining.Load() {
		l.stats.drainDrops.Add(1)
		return
	}
	q, err := parseQuery(msg)
	if err != nil {
		l.stats.nonCompliant.Add(1)
		if cc.stream != nil {
			cc.stream.fail(tag, failNone, nil)
			l.markDirty(cc)
		}
		return
	}
	p := l.getPending()
	p.proto = cc.proto
	p.client = cc
	p.tag = tag
	p.pp = l.streamAddrs(cc)
	cc.inflight++
	l.handleQuery(st, cc.bind, msg, q, p)
}

// handleQuery answers from the pool's cache or forwards to a backend.
func (l *loop) handleQuery(st *State, bind *BindOptions, msg []byte, q question, p *pending) {
	pool := st.Pools[bind.Pool]
	p.ext = queryExt(msg, q, p.proto, bind.PadResponses)
	if l.rulesActive(st) {
		var ok bool
		if pool, ok = l.decide(st, bind, msg, p, pool); !ok {
			return
		}
	}
	if st.DDR != nil && l.answerDDR(st.DDR, msg, q, p) {
		return
	}
	p.pool = pool
	l.prepareECS(st, pool, msg, q, p)
	if pool != nil && pool.Cache != nil && !p.pol.skipCache {
		if r, ok := l.cacheGet(pool.Cache, msg, p); ok {
			l.stats.cacheHits.Add(1)
			p.q = q
			p.addOPT = q.optOff < 0
			l.resp = r
			if !l.ruledCacheHit(st, p, r) {
				return
			}
			l.finish(p, r)
			return
		}
		l.stats.cacheMisses.Add(1)
	}
	l.forward(st, pool, msg, q, p)
}

// finish adapts an answer (from a backend or the cache, ID already the client's) to the
// client's view and delivers it: the OPT record we added goes, and a UDP answer larger
// than the client's limit is cut to TC=1.
func (l *loop) finish(p *pending, m []byte) {
	m = l.ecsAnswer(p, m)
	if p.addOPT {
		m = stripOPT(m)
	}
	if p.proto == protoUDP && len(m) > int(p.q.udpSize) {
		m = truncateTo(m, p.q.end)
		l.stats.truncated.Add(1)
	}
	if p.pol.ruled {
		l.ruledAnswer(p, m)
		return
	}
	l.deliver(p, m, failNone)
}

// answerError answers the query in msg with rcode rc at once, without a backend.
func (l *loop) answerError(p *pending, msg []byte, q question, rc byte) {
	p.q = q
	l.resp = appendError(l.resp[:0], msg, q.end, rc)
	l.deliver(p, l.resp, failNoBackend)
}

// deliver sends an answer to the client of p and recycles p.
func (l *loop) deliver(p *pending, m []byte, kind failKind) {
	defer l.putPending(p)
	l.tapResponse(p, m)
	if p.proto == protoUDP {
		l.queueDatagram(p.udpFD, m, p.peer, nil, -1)
		return
	}
	c := p.client
	c.inflight--
	if c.closed || c.lingering {
		return
	}
	if p.ext != 0 && kind == failNone {
		m = l.addEDNSOptions(p.ext, m)
	}
	switch {
	case c.stream == nil:
		c.out = binary.BigEndian.AppendUint16(c.out, uint16(len(m)))
		c.out = append(c.out, m...)
	case kind != failNone:
		c.stream.fail(p.tag, kind, m)
	default:
		c.stream.answer(p.tag, m)
	}
	l.stats.responses[c.proto].Add(1)
	l.markDirty(c)
}

func (l *loop) cacheInsert(p *pending, m []byte) {
	if p.pool != nil && p.pool.Cache != nil && !p.pol.skipCache {
		l.insertCached(p, m, time.Now())
	}
}
