package engine

import "net/netip"

// Outgoing PROXY protocol version 2 (a backend's use_proxy_protocol), as dnsdist sends it:
// the client's address and the address it reached, and, with proxy_protocol_advertise_tls,
// an empty SSL TLV when the query arrived over TLS or QUIC.
//
// Over UDP every query carries its own header. Over TCP a header starts a connection and
// speaks for every query on it, so a connection to such a backend belongs to one client:
// one per client stream connection (and per client address a DoH X-Forwarded-For names),
// closed with it, and one per query for a UDP client of a tcp_only backend, closed when
// the query is answered. The loop's shared backend sockets (l.tcp) are never used for
// these backends over TCP. A DoQ or DoH3 client, whose end the engine does not see, is
// served like a UDP client.

// BackendProxy is the proxy protocol setting of a backend.
type BackendProxy struct {
	// Use sends a header with each query (UDP) or connection (TCP).
	Use bool
	// AdvertiseTLS adds the SSL TLV when the client's query arrived encrypted.
	AdvertiseTLS bool
}

// ppSockOwner is whom a proxied TCP socket speaks for: a stream client's connection and
// the address its header carries, or one query (cc nil) of a UDP, DoQ or DoH3 client.
type ppSockOwner struct {
	cc  *clientConn
	src netip.AddrPort
}

// proxyQuery builds the query of p for its backend (backendQuery), with a header in front
// when the backend takes one over UDP. The result lives in a loop buffer until the next
// query.
func (l *loop) proxyQuery(p *pending, id uint16, tcp bool) []byte {
	out := l.backendQuery(p, id, tcp)
	b := l.state.Backends[p.backend]
	if tcp || !b.Proxy.Use {
		return out
	}
	h := appendProxyHeader(l.ppl.out[:0], p.pp.src, p.pp.dst, false, p.pp.tls && b.Proxy.AdvertiseTLS)
	l.ppl.out = append(h, out...)
	l.ppl.stats.sentUDP.Add(1)
	return l.ppl.out
}

// backendSockFor returns the socket a query of p goes out on: the loop's shared one, or
// for a TCP query to a use_proxy_protocol backend the one that speaks for p's client.
func (l *loop) backendSockFor(p *pending, tcp bool) *backendSock {
	b := l.state.Backends[p.backend]
	if !tcp || !b.Proxy.Use {
		return l.sock(p.backend, tcp)
	}
	cc := p.client
	if cc != nil && (cc.gc == nil || p.pp.src != cc.peer) {
		// A DoQ or DoH3 client (external.go): the engine is not told when it goes, so
		// its query gets a connection of its own, like a UDP client's. So does a query
		// whose client a DoH X-Forwarded-For names: a connection per named client would
		// let one client connection open backend connections without bound, while one
		// per query is bounded by the queries in flight (max_tcp_in_flight).
		cc = nil
	}
	if cc != nil {
		live := cc.ppSocks[:0]
		var found *backendSock
		for _, s := range cc.ppSocks {
			if s.failed || s.closed || s.retired {
				delete(l.ppl.socks, s)
				continue
			}
			live = append(live, s)
			if found == nil && s.b == b && l.ppl.socks[s].src == p.pp.src {
				found = s
			}
		}
		clear(cc.ppSocks[len(live):])
		cc.ppSocks = live
		if found != nil {
			return found
		}
	}
	s := &backendSock{l: l, b: b, backend: p.backend, tcp: true, pending: map[uint16]*pending{}}
	// The header goes first: queued before the connection exists, it leaves when it opens.
	s.queue = append(s.queue, appendProxyHeader(nil, p.pp.src, p.pp.dst, true, p.pp.tls && b.Proxy.AdvertiseTLS))
	if l.ppl.socks == nil {
		l.ppl.socks = map[*backendSock]ppSockOwner{}
	}
	l.ppl.socks[s] = ppSockOwner{cc: cc, src: p.pp.src}
	if cc != nil {
		cc.ppSocks = append(cc.ppSocks, s)
	}
	l.ppl.stats.sentTCP.Add(1)
	s.connect()
	if s.failed && cc == nil {
		delete(l.ppl.socks, s) // its query fails with it; nothing else will reach it
	}
	return s
}

// proxyDone closes the one-query socket of a query once the query has ended (putPending),
// however it ended: answered, timed out, or its answer dropped or held by a rule.
func (l *loop) proxyDone(p *pending) {
	s := p.sock
	if s == nil || !s.tcp || len(l.ppl.socks) == 0 {
		return
	}
	if o, ok := l.ppl.socks[s]; ok && o.cc == nil {
		l.retireProxySock(s)
	}
}

// closeProxySocks closes the backend sockets that speak for a client connection that
// closed; their queries in flight are the closed client's.
func (l *loop) closeProxySocks(cc *clientConn) {
	for _, s := range cc.ppSocks {
		if _, ok := l.ppl.socks[s]; ok {
			l.retireProxySock(s)
		}
	}
	cc.ppSocks = nil
}

func (l *loop) retireProxySock(s *backendSock) {
	delete(l.ppl.socks, s)
	s.retired = true // a registration still in flight closes the socket when it lands
	if s.gc != nil && !s.closed {
		_ = l.el.Close(s.gc)
	}
}

// remapProxySocks follows a reload (loop.current): sockets of backends that remain take
// their new index, those of removed backends close and their queries get SERVFAIL.
func (l *loop) remapProxySocks(st *State, byKey map[string]int) {
	for s := range l.ppl.socks {
		if i, ok := byKey[s.b.Key]; ok {
			s.backend, s.b = i, st.Backends[i]
			for _, p := range s.pending {
				p.backend = i
			}
			continue
		}
		l.retireProxySock(s)
		l.failSock(s)
	}
}

// streamAddrs are the addresses of a stream client's query: the connection's (or its
// header's), or the X-Forwarded-For address of a DoH query from a trusting bind.
func (l *loop) streamAddrs(cc *clientConn) proxyAddrs {
	a := proxyAddrs{src: cc.peer, dst: cc.pp.dst, tls: cc.proto >= protoDoQ || cc.bind.TLSStore != nil}
	if fwd := l.forwardedFor; fwd.IsValid() {
		a.src = netip.AddrPortFrom(fwd.Unmap(), 0)
	}
	return a
}
