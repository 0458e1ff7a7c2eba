package engine

import (
	"context"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/dnsfront/dnsfront/doh"
)

// loop is one event loop's private state. Only that loop's goroutine touches it, except
// the atomic counters read by the metrics scraper and the drain.
type loop struct {
	e   *Engine
	el  gnet.EventLoop
	idx int
	rnd *rand.PCG

	state *State // the State the loop's sockets were built for
	// per backend of state.Backends, same index
	udp         []*backendSock
	tcp         []*backendSock
	outstanding []int
	byKey       map[string]int // backend key → index, to carry sockets across reloads
	pickers     map[*Pool]Picker
	outFn       func(int) int
	obs         LoopObserver

	free     []*pending // recycled pending entries
	timeouts []timeoutQueue
	clients  map[*clientConn]struct{}
	binds    map[net.Addr]*BindOptions
	// bindConns counts the open client connections of each bind, for its MaxConns.
	bindConns map[*BindOptions]int
	dirty     []*clientConn // stream clients with answers queued in this pass
	busy      bool          // inside a pass: flushes wait for its end (pass.go)
	lingering int           // clients being closed gracefully (linger.go)
	// forwardedFor is the X-Forwarded-For address of the DoH query being handed to the
	// loop, from a bind that trusts the header; invalid otherwise.
	forwardedFor netip.Addr
	// dohReq is the request of the DoH query being handed to the loop (its path and
	// header fields, for the rules), valid only while it is; nil otherwise.
	dohReq *doh.Headers

	scratch []byte // query rewriting
	resp    []byte // answers built on the loop
	ext     []byte // answers with padding or edns-tcp-keepalive added (ednsopts.go)
	ecsBuf  []byte // answers whose ECS option is the client's own again (ecs.go)
	// Batched datagram I/O (mmsg.go): what the loop reads from its UDP sockets, and the
	// datagrams a pass produced, sent at its end (flushDatagrams).
	rd     *mmsgReader
	wr     *mmsgWriter
	sentFn func(o *outMsg, err error) // sentDatagram, made once

	pol              loopPolicy // rules (policy.go)
	ppl              proxyLoop  // proxy protocol (proxy.go, proxy_out.go)
	stats            counters
	doh              dohStats
	outstandingTotal atomic.Int64
	connCount        atomic.Int64
}

// pending is a query waiting for its backend.
type pending struct {
	gen     uint32 // bumped at each reuse, so stale timeout entries are recognised
	proto   proto
	client  *clientConn // stream clients
	tag     uint64      // the stream's own query tag (DoH stream, DoT order)
	udpFD   int         // UDP clients: the listener socket and the client's address
	peer    netip.AddrPort
	origID  uint16
	q       question
	addOPT  bool // the client sent no OPT: we added one, strip it from the answer
	sock    *backendSock
	id      uint16
	backend int
	pool    *Pool
	sent    time.Time
	query   []byte // kept for stream clients: a truncated UDP answer is retried over TCP
	pol     policyState
	ecs     ecsQuery   // EDNS Client Subnet (ecs.go)
	ext     uint8      // EDNS options its answer carries (ednsopts.go)
	pp      proxyAddrs // the client's address and the one it reached (proxy.go)
}

// timeoutQueue holds the deadlines of the queries sent to backends that share one
// timeout. Queries enter in the order they are sent, so a queue's deadlines are in order
// and the sweep stops at the first that has not passed; a single queue for backends with
// different timeouts would hold a short deadline back behind a longer one sent before it.
type timeoutQueue struct {
	timeout time.Duration
	entries []fifoEntry
}

type fifoEntry struct {
	p        *pending
	gen      uint32
	deadline int64
}

// expireAfter queues the timeout of p, sent at sent to a backend whose timeout is d.
func (l *loop) expireAfter(p *pending, sent time.Time, d time.Duration) {
	e := fifoEntry{p: p, gen: p.gen, deadline: l.e.mono(sent.Add(d))}
	for i := range l.timeouts {
		if q := &l.timeouts[i]; q.timeout == d {
			q.entries = append(q.entries, e)
			return
		}
	}
	l.timeouts = append(l.timeouts, timeoutQueue{timeout: d, entries: []fifoEntry{e}})
}

func newLoop(e *Engine, el gnet.EventLoop, idx int) *loop {
	l := &loop{
		e: e, el: el, idx: idx,
		rnd:       rand.NewPCG(uint64(time.Now().UnixNano()), uint64(idx)+1),
		byKey:     map[string]int{},
		pickers:   map[*Pool]Picker{},
		clients:   map[*clientConn]struct{}{},
		binds:     map[net.Addr]*BindOptions{},
		bindConns: map[*BindOptions]int{},
		scratch:   make([]byte, 0, 65535+64),
		resp:      make([]byte, 0, 65535+64),
		rd:        newMmsgReader(),
		wr:        newMmsgWriter(),
	}
	l.outFn = func(i int) int { return l.outstanding[i] }
	l.sentFn = l.sentDatagram
	return l
}

// current returns the published State, rebuilding the loop's per-backend sockets when it
// changed. Sockets of backends that survive a reload keep their queries in flight.
func (l *loop) current() *State {
	st := l.e.state.Load()
	if st == l.state {
		return st
	}
	udp := make([]*backendSock, len(st.Backends))
	tcp := make([]*backendSock, len(st.Backends))
	out := make([]int, len(st.Backends))
	byKey := make(map[string]int, len(st.Backends))
	for i, b := range st.Backends {
		byKey[b.Key] = i
		if j, ok := l.byKey[b.Key]; ok {
			udp[i], tcp[i], out[i] = l.udp[j], l.tcp[j], l.outstanding[j]
			for _, s := range []*backendSock{udp[i], tcp[i]} {
				if s != nil {
					s.backend, s.b = i, b
					for _, p := range s.pending {
						p.backend = i
					}
				}
			}
		}
	}
	for key, j := range l.byKey {
		if _, ok := byKey[key]; !ok {
			// A removed backend: its sockets close; their queries get SERVFAIL.
			for _, s := range []*backendSock{l.udp[j], l.tcp[j]} {
				if s != nil {
					s.retired = true
					l.failSock(s)
					if s.gc != nil {
						_ = l.el.Close(s.gc)
					}
				}
			}
		}
	}
	l.remapProxySocks(st, byKey)
	l.udp, l.tcp, l.outstanding, l.byKey = udp, tcp, out, byKey
	l.pickers = map[*Pool]Picker{}
	l.obs = nil
	if st.NewLoopObserver != nil {
		l.obs = st.NewLoopObserver()
	}
	l.state = st
	return st
}

// pick chooses a backend of pool for a query whose question hashes to h: its index in
// the State's Backends, or -1 when none is up.
func (l *loop) pick(pool *Pool, h uint64) int {
	pk := l.pickers[pool]
	if pk == nil {
		pk = pool.NewPicker()
		l.pickers[pool] = pk
	}
	i := pk.Pick(l.outFn, h)
	if i >= len(l.outstanding) {
		return -1
	}
	return i
}

func (l *loop) getPending() *pending {
	if n := len(l.free); n > 0 {
		p := l.free[n-1]
		l.free = l.free[:n-1]
		return p
	}
	return &pending{}
}

// putPending recycles p once its query has ended, whichever way: answered, answered with
// an error, dropped, or its answer dropped by a rule.
func (l *loop) putPending(p *pending) {
	l.proxyDone(p)
	gen := p.gen + 1
	q := p.query[:0]
	*p = pending{gen: gen, query: q}
	l.free = append(l.free, p)
}

// tick runs the loop's timers: backend timeouts and idle client connections. The sweep
// itself runs on the loop (Execute), so it needs no lock.
func (l *loop) tick(ctx context.Context) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	sweep := gnet.RunnableFunc(func(context.Context) error {
		l.sweep(time.Now())
		return nil
	})
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := l.el.Execute(ctx, sweep); err != nil {
				return
			}
		}
	}
}

func (l *loop) sweep(now time.Time) {
	outer := l.begin()
	defer l.end(outer)
	n := l.e.mono(now)
	for qi := range l.timeouts {
		q := &l.timeouts[qi]
		i := 0
		for ; i < len(q.entries); i++ {
			f := q.entries[i]
			if f.p.gen != f.gen {
				continue // answered already
			}
			if f.deadline > n {
				break
			}
			l.timeout(f.p)
		}
		if i > 0 {
			m := copy(q.entries, q.entries[i:])
			clear(q.entries[m:])
			q.entries = q.entries[:m]
		}
	}
	l.sweepLinger(n)
	idle := l.e.opts.TCPIdleTimeout.Nanoseconds()
	for c := range l.clients {
		switch {
		case c.lingering || c.closing:
		case c.proto == protoDoH:
			// DoH sessions keep their own idle deadline (idle_timeout) and say goodbye
			// with a GOAWAY, written by flushDirty before it lingers.
			if c.stream.Expired(now) {
				l.markDirty(c)
			}
		case c.inflight == 0 && n-c.lastActive > idle:
			c.closing = true
			l.markDirty(c)
		}
	}
}
