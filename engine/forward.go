package engine

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// backendSock is one socket from a loop to a backend: UDP, or TCP with pipelined queries.
// It is registered on the loop (EventLoop.Register), so answers arrive on the loop that
// owns the client.
type backendSock struct {
	l       *loop
	b       *Backend
	backend int
	tcp     bool
	gc      gnet.Conn // nil while connecting
	pending map[uint16]*pending
	queue   [][]byte // TCP: frames waiting for the connection
	failed  bool     // registration failed: drop and recreate on next use
	retired bool     // backend removed by a reload
	closed  bool
}

func (l *loop) sock(i int, tcp bool) *backendSock {
	socks := l.udp
	if tcp {
		socks = l.tcp
	}
	s := socks[i]
	if s != nil && !s.failed && !s.closed {
		return s
	}
	s = &backendSock{l: l, b: l.state.Backends[i], backend: i, tcp: tcp, pending: map[uint16]*pending{}}
	socks[i] = s
	s.connect()
	return s
}

// connect registers a new socket on the loop. Registration dials in gnet's worker pool; a
// UDP socket is handed back to the loop with Execute, a TCP one arrives in OnOpen.
func (s *backendSock) connect() {
	var addr net.Addr
	if s.tcp {
		addr = net.TCPAddrFromAddrPort(s.b.Addr)
	} else {
		addr = net.UDPAddrFromAddrPort(s.b.Addr)
	}
	ch, err := s.l.el.Register(gnet.NewContext(context.Background(), s), addr)
	if err != nil {
		s.failed = true
		return
	}
	go func() {
		res := <-ch
		_ = s.l.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			outer := s.l.begin()
			defer s.l.end(outer)
			if res.Err != nil {
				s.l.e.log.Warn("backend socket failed", "backend", s.b.Name, "tcp", s.tcp, "err", res.Err)
				s.failed = true
				s.l.failSock(s)
				return nil
			}
			if s.retired {
				_ = s.l.el.Close(res.Conn)
				return nil
			}
			if s.gc == nil {
				s.gc = res.Conn
				s.flushQueue()
			}
			return nil
		}))
	}()
}

func (s *backendSock) flushQueue() {
	for _, f := range s.queue {
		if _, err := s.gc.Write(f); err != nil {
			s.l.stats.sendErrors.Add(1)
		}
	}
	s.queue = s.queue[:0]
}

// forward sends the query in msg (already checked: q) to a backend of the pool, or
// answers SERVFAIL at once when no backend is up.
func (l *loop) forward(st *State, pool *Pool, msg []byte, q question, p *pending) {
	if pool == nil || len(pool.Backends) == 0 {
		l.answerError(p, msg, q, rcodeServfail)
		l.stats.servfailNoBack.Add(1)
		return
	}
	bi := l.pick(pool, q.nameHash)
	if bi < 0 {
		l.answerError(p, msg, q, rcodeServfail)
		l.stats.servfailNoBack.Add(1)
		return
	}
	b := st.Backends[bi]
	if b.MaxOutstanding > 0 && l.outstanding[bi] >= b.MaxOutstanding {
		l.stats.overloaded.Add(1)
		l.answerError(p, msg, q, rcodeServfail)
		return
	}
	p.origID = msgID(msg)
	p.q = q
	p.backend = bi
	// The OPT record we add must leave the query within a message's 65535 bytes, the most
	// a TCP frame's length prefix says.
	p.addOPT = q.optOff < 0 && len(msg)+optLen <= maxMsgLen
	// The client's query is kept as sent: the cache is keyed by it, a SERVFAIL echoes its
	// question and a truncated UDP answer is asked again over TCP from it.
	p.query = append(p.query[:0], msg...)
	l.send(p, b.TCPOnly)
}

// backendQuery writes the query of p for the backend into scratch, with the ID id and an
// OPT record if the client sent none (so that the backend may answer up to
// backendEDNSSize over UDP). Over TCP the 2-byte length prefix goes in front, in place,
// so that no frame is allocated per query.
func (l *loop) backendQuery(p *pending, id uint16, tcp bool) []byte {
	hdr := 0
	if tcp {
		hdr = 2
	}
	// scratch holds the largest message and its prefix: appendOPT stays in its array.
	out := append(l.scratch[:hdr], p.query...)
	if p.addOPT {
		out = out[:hdr+len(appendOPT(out[hdr:], backendEDNSSize))]
	}
	if p.ecs.on && l.state.Backends[p.backend].ECS.UseClientSubnet {
		out = appendECS(out, hdr, p)
	}
	setMsgID(out[hdr:], id)
	if tcp {
		binary.BigEndian.PutUint16(out, uint16(len(out)-hdr))
	}
	return out
}

// send puts the rewritten query out on the backend's UDP or TCP socket.
func (l *loop) send(p *pending, tcp bool) {
	s := l.backendSockFor(p, tcp)
	if s.failed {
		// Registration failed at once (gnet shutting down, its dialing pool full): no
		// answer can come on this socket, and the next query replaces it.
		l.stats.sendErrors.Add(1)
		if l.obs != nil {
			l.obs.SendFailed(p.backend)
		}
		l.answerError(p, p.query, p.q, rcodeServfail)
		return
	}
	id, ok := s.freeID(l)
	if !ok {
		l.stats.overloaded.Add(1)
		l.answerError(p, p.query, p.q, rcodeServfail)
		return
	}
	out := l.proxyQuery(p, id, tcp)
	p.sock, p.id = s, id
	s.pending[id] = p
	l.outstanding[p.backend]++
	l.outstandingTotal.Add(1)
	p.sent = time.Now()
	b := l.state.Backends[p.backend]
	l.expireAfter(p, p.sent, b.Timeout)
	if l.obs != nil {
		l.obs.QuerySent(p.backend)
	}
	bi := p.backend
	var err error
	if s.gc == nil {
		// The socket is being registered: keep the query until it is.
		s.queue = append(s.queue, append([]byte(nil), out...))
	} else if !tcp {
		// Sent with the pass's other datagrams for this socket (flushDatagrams), which
		// counts a refused one.
		l.queueDatagram(s.gc.Fd(), out, netip.AddrPort{}, s, bi)
	} else {
		_, err = s.gc.Write(out)
	}
	if err != nil {
		// A failed stream write has closed the socket already: its OnClose answered p
		// and recycled it.
		l.stats.sendErrors.Add(1)
		if l.obs != nil {
			l.obs.SendFailed(bi)
		}
	}
}

// freeID picks a random query ID not in use on this socket: random IDs make off-path
// spoofing of backend answers as hard as the backend's own port randomisation allows.
func (s *backendSock) freeID(l *loop) (uint16, bool) {
	if len(s.pending) >= 60000 {
		return 0, false
	}
	for {
		id := uint16(l.rnd.Uint64())
		if _, used := s.pending[id]; !used {
			return id, true
		}
	}
}

// onBackendTraffic handles answers arriving on a backend socket.
func (l *loop) onBackendTraffic(s *backendSock, c gnet.Conn) gnet.Action {
	outer := l.begin()
	defer l.end(outer)
	if s.gc == nil {
		s.gc = c
	}
	if !s.tcp {
		buf, _ := c.Next(-1)
		l.onBackendAnswer(s, buf)
		l.drainBackend(s, c.Fd())
	} else {
		for {
			hdr, err := c.Peek(2)
			if err != nil {
				break
			}
			n := int(binary.BigEndian.Uint16(hdr))
			if c.InboundBuffered() < 2+n {
				break
			}
			frame, _ := c.Next(2 + n)
			l.onBackendAnswer(s, frame[2:])
		}
	}
	return gnet.None
}

func (l *loop) onBackendAnswer(s *backendSock, m []byte) {
	if len(m) < headerLen {
		l.stats.mismatches.Add(1)
		return
	}
	p, ok := s.pending[msgID(m)]
	if !ok {
		l.stats.mismatches.Add(1)
		return
	}
	h, _, ok := responseQuestionHash(m)
	if !ok || h != p.q.hash {
		// Not the answer to this query (or garbage): keep waiting for the real one.
		l.stats.mismatches.Add(1)
		return
	}
	delete(s.pending, p.id)
	l.outstanding[p.backend]--
	l.outstandingTotal.Add(-1)
	if l.obs != nil {
		l.obs.ResponseReceived(p.backend, time.Since(p.sent))
	}
	if isTruncated(m) && !s.tcp && p.proto != protoUDP {
		// A stream client can take any size: ask again over TCP (the UDP client gets the
		// TC answer and retries over TCP itself).
		l.stats.tcRetries.Add(1)
		p.gen++ // the UDP timeout entry no longer applies
		l.send(p, true)
		return
	}
	setMsgID(m, p.origID)
	if !l.ruledResponse(p, m) {
		return
	}
	l.cacheInsert(p, m)
	l.finish(p, m)
}

// timeout answers SERVFAIL for a query its backend did not answer in time.
func (l *loop) timeout(p *pending) { l.giveUp(p, true) }

// giveUp answers SERVFAIL for a query that will get no backend answer: it timed out, or
// its socket closed or failed (abandoned).
func (l *loop) giveUp(p *pending, timedOut bool) {
	if p.sock != nil {
		delete(p.sock.pending, p.id)
	}
	l.outstanding[p.backend]--
	l.outstandingTotal.Add(-1)
	kind := failTimeout
	if timedOut {
		l.stats.timeouts.Add(1)
		if l.obs != nil {
			l.obs.TimedOut(p.backend)
		}
	} else {
		kind = failNoBackend
		l.stats.sendErrors.Add(1)
		if l.obs != nil {
			l.obs.Abandoned(p.backend)
		}
	}
	l.resp = appendError(l.resp[:0], p.query, p.q.end, rcodeServfail)
	l.deliver(p, l.resp, kind)
}

// failSock answers SERVFAIL for every query waiting on a socket that closed or failed.
func (l *loop) failSock(s *backendSock) {
	if o, ok := l.ppl.socks[s]; ok && o.cc == nil {
		delete(l.ppl.socks, s) // a one-query socket (proxy_out.go): nothing else will use it
	}
	for id, p := range s.pending {
		delete(s.pending, id)
		p.sock = nil
		l.giveUp(p, false)
	}
	s.queue = nil
}
