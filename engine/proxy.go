package engine

import (
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
)

// Incoming PROXY protocol version 2 (proxy_protocol in the configuration), as dnsdist
// reads it. A peer in the proxy ACL (a load balancer, another dnsdist) must start every
// UDP datagram, and every TCP connection, with a header; without one the query or the
// connection is dropped. Other peers must not send one: their bytes are DNS (or TLS), and
// a header from them is garbage. On a DoT or DoH bind the header comes inside TLS (as the
// first plaintext) unless tls.proxy_protocol_outside_tls puts it before the ClientHello,
// where haproxy's send-proxy-v2 puts it.
//
// The client address a header carries replaces the peer's for everything after it: the
// general ACL (with apply_acl_to_proxied_clients, after the peer's own address passed
// it), the rules and their rate limits and dynamic blocks, the logs, and the header sent
// on to backends with use_proxy_protocol (proxy_out.go). A LOCAL header (a proxy's own
// health check) leaves the peer's address in place.

// ProxyProtocol is the proxy protocol part of a State; immutable once published.
type ProxyProtocol struct {
	// ACL lists the peers that must send a header.
	ACL *ACL
	// MaxSize bounds a header, in bytes (maximum_payload_size).
	MaxSize int
	// ApplyACLToProxied checks the address a header carries against State.ACL too.
	ApplyACLToProxied bool
}

// BindProxy is the proxy protocol setting of a bind.
type BindProxy struct {
	// Enabled: peers in ProxyProtocol.ACL must send a header on this bind.
	Enabled bool
	// OutsideTLS: on a TLS bind the header comes before the TLS session, not inside it.
	OutsideTLS bool
}

// proxyAddrs are a query's client address and the address it reached, as the engine
// sees them: the peer's and the listener's, or those a PROXY header carried.
type proxyAddrs struct {
	src, dst netip.AddrPort
	tls      bool // the query arrived over TLS (or QUIC)
}

type ppState uint8

const (
	ppUndecided ppState = iota // no traffic seen yet
	ppOutside                  // a header must start the connection's bytes
	ppInside                   // a header must start the TLS plaintext
	ppDone                     // none expected, or read
	ppFailed                   // the header was invalid: the connection is going
)

// proxyIn is a stream connection's progress through its header; the connection's loop
// alone touches it.
type proxyIn struct {
	cc    *clientConn
	state ppState
	// dst is the address the client reached: the listener's, or the header's.
	dst netip.AddrPort
	// buf holds the part of an inside-TLS header seen so far, when a TLS record split it.
	buf []byte
	// cfg is the setting that required the header: the rest of it is read against the
	// same one, even if a reload has changed or removed it since.
	cfg *ProxyProtocol
}

// proxiedStream is a TLS stream that can read a header at the start of its plaintext.
type proxiedStream interface {
	setProxy(pp *proxyIn)
}

// ppCounters count headers by outcome; only the loop writes them.
type ppCounters struct {
	valid, local, invalid, tooLarge atomic.Uint64
	// sentUDP and sentTCP count the headers sent to backends (proxy_out.go).
	sentUDP, sentTCP atomic.Uint64
}

// proxyLoop is a loop's proxy protocol state (proxy_out.go has the backend side).
type proxyLoop struct {
	stats ppCounters
	// socks are the TCP sockets to use_proxy_protocol backends: each carries the header
	// of one client, so it is never shared with another.
	socks map[*backendSock]ppSockOwner
	// out holds a UDP query with its header in front, rebuilt per query.
	out []byte
}

// proxyStreamStart runs at a stream connection's first traffic: it notes the address the
// client reached and whether a header must come first, and reads it when it comes before
// everything else. It reports whether the connection's bytes may be read on (false: wait
// for more of the header) and whether the connection must close.
func (l *loop) proxyStreamStart(cc *clientConn) (more, drop bool) {
	pp := &cc.pp
	if pp.state == ppUndecided {
		pp.cc = cc
		pp.state = ppDone
		if ta, ok := cc.gc.LocalAddr().(*net.TCPAddr); ok {
			ap := ta.AddrPort()
			pp.dst = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		}
		cfg := l.current().Proxy
		if cfg == nil || !cc.bind.Proxy.Enabled || !cfg.ACL.Allows(cc.peer.Addr()) {
			return true, false
		}
		pp.state, pp.cfg = ppOutside, cfg
		if cc.bind.TLSStore != nil && !cc.bind.Proxy.OutsideTLS {
			ps, ok := cc.stream.(proxiedStream)
			if !ok {
				return false, true
			}
			pp.state = ppInside
			ps.setProxy(pp)
		}
	}
	if pp.state != ppOutside {
		return true, false
	}
	buf, _ := cc.gc.Peek(-1)
	h, n, err := parseProxyHeader(buf, pp.cfg.MaxSize)
	if errors.Is(err, errPPShort) {
		return false, false
	}
	if err != nil {
		l.proxyInvalid(cc.peer, err)
		pp.state = ppFailed
		return false, true
	}
	_, _ = cc.gc.Discard(n)
	pp.state = ppDone
	if !l.proxyApply(cc, h, true) {
		pp.state = ppFailed
		return false, true
	}
	return true, false
}

// inside strips the header from the start of a TLS stream's plaintext p and returns what
// follows it, and bad true when the header was invalid and the connection must close. A
// nil proxyIn, or one that expects nothing, returns p and bad as they are.
func (pp *proxyIn) inside(p []byte, bad bool) ([]byte, bool) {
	if pp == nil || pp.state == ppDone || bad {
		return p, bad
	}
	if pp.state == ppFailed {
		return nil, true
	}
	l := pp.cc.l
	b := p
	if len(pp.buf) > 0 {
		pp.buf = append(pp.buf, p...)
		b = pp.buf
	}
	h, n, err := parseProxyHeader(b, pp.cfg.MaxSize)
	if errors.Is(err, errPPShort) {
		if len(pp.buf) == 0 {
			pp.buf = append(pp.buf, p...) // p is the TLS layer's buffer: keep a copy
		}
		return nil, false
	}
	pp.buf = nil
	if err != nil {
		l.proxyInvalid(pp.cc.peer, err)
		pp.state = ppFailed
		return nil, true
	}
	pp.state = ppDone
	if !l.proxyApply(pp.cc, h, false) {
		pp.state = ppFailed
		return nil, true
	}
	return b[n:], false
}

func (d *dotStream) setProxy(pp *proxyIn) { d.pp = pp }
func (d *dohStream) setProxy(pp *proxyIn) { d.pp = pp }

// proxyApply makes the header's addresses the stream client's; outside: the header came
// before the TLS session (if any). false: the client is refused by the ACL.
func (l *loop) proxyApply(cc *clientConn, h ppHeader, outside bool) bool {
	if h.local {
		l.ppl.stats.local.Add(1)
		return true
	}
	l.ppl.stats.valid.Add(1)
	if cc.pp.cfg.ApplyACLToProxied && !l.current().ACL.Allows(h.src.Addr()) {
		l.stats.aclDrops.Add(1)
		l.e.log.Debug("connection dropped by the ACL", "peer", cc.peer, "client", h.src)
		return false
	}
	cc.peer, cc.pp.dst = h.src, h.dst
	if outside {
		// Before the TLS session: its handshake limits count the client, not the proxy.
		switch s := cc.stream.(type) {
		case *dotStream:
			s.t.SetPeer(h.src)
		case *dohStream:
			if s.t != nil {
				s.t.SetPeer(h.src)
			}
		}
	}
	return true
}

// proxyDatagram reads the header in front of a UDP query from a peer in the proxy ACL.
// It returns the query after the header and the client's addresses, or ok false when the
// datagram is dropped.
func (l *loop) proxyDatagram(st *State, buf []byte, src, dst netip.AddrPort) ([]byte, netip.AddrPort, netip.AddrPort, bool) {
	h, n, err := parseProxyHeader(buf, st.Proxy.MaxSize)
	if err != nil {
		l.proxyInvalid(src, err)
		return nil, src, dst, false
	}
	if h.local {
		l.ppl.stats.local.Add(1)
		return buf[n:], src, dst, true
	}
	l.ppl.stats.valid.Add(1)
	if st.Proxy.ApplyACLToProxied && !st.ACL.Allows(h.src.Addr()) {
		l.stats.aclDrops.Add(1)
		return nil, src, dst, false
	}
	return buf[n:], h.src, h.dst, true
}

func (l *loop) proxyInvalid(peer netip.AddrPort, err error) {
	if errors.Is(err, errPPTooLarge) {
		l.ppl.stats.tooLarge.Add(1)
	} else {
		// errPPShort on a datagram too: a header cut short is no header.
		l.ppl.stats.invalid.Add(1)
	}
	l.e.log.Debug("proxy protocol header refused", "peer", peer, "err", err)
}

// ProxyStats are the engine's proxy protocol counters, summed over loops.
type ProxyStats struct {
	Valid, Local, Invalid, TooLarge uint64
	SentUDP, SentTCP                uint64
}

// ProxyStats sums the loops' proxy protocol counters.
func (e *Engine) ProxyStats() ProxyStats {
	var s ProxyStats
	for _, l := range e.loopList() {
		c := &l.ppl.stats
		s.Valid += c.valid.Load()
		s.Local += c.local.Load()
		s.Invalid += c.invalid.Load()
		s.TooLarge += c.tooLarge.Load()
		s.SentUDP += c.sentUDP.Load()
		s.SentTCP += c.sentTCP.Load()
	}
	return s
}
