package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// External listeners (DoQ and DoH3 on quic-go's goroutines) cannot live on the loops: QUIC
// would have to be written for the reactor. They decode queries on their own goroutines
// and hand each one to a loop here, so that from the ACL on a query takes the path of a
// DoT query: rules, cache, backends, metrics (with its own protocol label).

// Outcome says how the engine disposed of an external query.
type Outcome uint8

const (
	// Answered: answer holds the response (from the cache or a backend).
	Answered Outcome = iota
	// NoBackend: answer holds a SERVFAIL made by dnsfront, no backend was up or it failed
	// (DoH answers 502).
	NoBackend
	// TimedOut: answer holds a SERVFAIL made by dnsfront, the backend did not answer in
	// time (DoH answers 504).
	TimedOut
	// Malformed: the message is not a query the engine accepts; answer is nil.
	Malformed
	// Dropped: not answered (the engine is draining or stopped, or the query was refused
	// by a rule); answer is nil.
	Dropped
)

func (o Outcome) String() string {
	switch o {
	case Answered:
		return "answered"
	case NoBackend:
		return "no_backend"
	case TimedOut:
		return "timed_out"
	case Malformed:
		return "malformed"
	}
	return "dropped"
}

// ErrStopped is returned for queries submitted after the engine stopped.
var ErrStopped = errors.New("engine: stopped")

// AnswerFunc receives the result of an external query. It runs on the loop that handled
// the query: it must not block, and answer is valid only during the call (copy it).
type AnswerFunc func(answer []byte, o Outcome)

// ExternalClient is one client connection of an external listener, pinned to one loop so
// that its queries share that loop's backend sockets and pending table as a TCP client's
// do. It is safe for concurrent use: each Query is handed to the loop with Execute.
type ExternalClient struct {
	l  *loop
	cc *clientConn // the loop's view of this client; touched only on the loop
	xs *externalStream
}

// externalStream is the stream of an external client: answers go to the AnswerFunc of
// their tag. Only the loop touches it.
type externalStream struct {
	next    uint64
	waiting map[uint64]AnswerFunc
}

// NewExternalClient registers a client of an external listener: protocol is "DoQ" or
// "DoH3", pool the backend pool of its bind, local the listener's address (what the
// rules' LocalAddr and dnstap's response address read) and peer the client's. The caller checks the ACL
// at accept (Allows), as the TCP listeners do.
func (e *Engine) NewExternalClient(protocol, pool string, local, peer netip.AddrPort) (*ExternalClient, error) {
	var p proto
	switch protocol {
	case "DoQ":
		p = protoDoQ
	case "DoH3":
		p = protoDoH3
	default:
		return nil, fmt.Errorf("engine: external protocol %q (want DoQ or DoH3)", protocol)
	}
	l, err := e.nextExternalLoop()
	if err != nil {
		return nil, err
	}
	xs := &externalStream{waiting: map[uint64]AnswerFunc{}}
	bind := &BindOptions{Addr: local, Protocol: protocol, Pool: pool}
	cc := &clientConn{l: l, bind: bind, proto: p, peer: peer, stream: xs}
	return &ExternalClient{l: l, cc: cc, xs: xs}, nil
}

// Allows reports whether the current ACL admits addr.
func (e *Engine) Allows(addr netip.Addr) bool { return e.state.Load().ACL.Allows(addr) }

// Draining reports whether the engine has stopped taking new queries.
func (e *Engine) Draining() bool { return e.draining.Load() }

// Query hands msg to the client's loop; done runs there with the result. Query takes
// ownership of msg. It returns ErrStopped, without calling done, when the engine no longer
// runs.
func (x *ExternalClient) Query(msg []byte, done AnswerFunc) error {
	l := x.l
	err := l.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		outer := l.begin()
		defer l.end(outer)
		xs, cc := x.xs, x.cc
		tag := xs.next
		xs.next++
		xs.waiting[tag] = done
		before := cc.inflight
		l.onStreamQuery(cc, msg, tag)
		// onStreamQuery answers at once (cache, error), or leaves a pending query that the
		// backend or the timeout sweep will answer, or drops the query without a word
		// (draining): only the last leaves the tag waiting with nothing in flight.
		if f, ok := xs.waiting[tag]; ok && cc.inflight == before {
			delete(xs.waiting, tag)
			f(nil, Dropped)
		}
		return nil
	}))
	if err != nil {
		return ErrStopped
	}
	return nil
}

func (s *externalStream) answer(tag uint64, msg []byte) {
	if f, ok := s.waiting[tag]; ok {
		delete(s.waiting, tag)
		f(msg, Answered)
	}
}

func (s *externalStream) fail(tag uint64, kind failKind, msg []byte) {
	f, ok := s.waiting[tag]
	if !ok {
		return
	}
	delete(s.waiting, tag)
	switch {
	case msg == nil && kind == failNone:
		f(nil, Malformed)
	case kind == failTimeout:
		f(msg, TimedOut)
	case kind == failNoBackend:
		f(msg, NoBackend)
	default:
		f(nil, Dropped)
	}
}

// The rest of the stream interface has nothing to do: the listener owns the connection.
func (s *externalStream) read(gnet.Conn, func([]byte, uint64)) error { return nil }
func (s *externalStream) flush(gnet.Conn) error                      { return nil }
func (s *externalStream) Expired(time.Time) bool                     { return false }
func (s *externalStream) wantClose() bool                            { return false }
func (s *externalStream) close()                                     {}
func (s *externalStream) shutdown(gnet.Conn)                         {}

// externalLoops spreads external clients over the loops.
type externalLoops struct {
	mu   sync.Mutex
	rr   atomic.Uint64
	done bool
}

// nextExternalLoop returns the loop for a new external client, round robin.
func (e *Engine) nextExternalLoop() (*loop, error) {
	select {
	case <-e.booted:
	default:
		return nil, errors.New("engine: not started")
	}
	if e.ctx.Err() != nil {
		return nil, ErrStopped
	}
	x := &e.ext
	if err := x.discover(e); err != nil {
		return nil, err
	}
	ls := e.loopList()
	if len(ls) == 0 {
		return nil, ErrStopped
	}
	// loopList comes from a map: order by index so that round robin is even.
	best := ls[0]
	n := x.rr.Add(1)
	want := int(n % uint64(len(ls)))
	for _, l := range ls {
		if l.idx == want {
			best = l
		}
	}
	return best, nil
}

// discover makes sure the engine knows every loop. Loops are found by the first event
// they deliver (loopFor), and a server with only QUIC clients may never see one on some
// loops. gnet lists its loops to nobody, but its Register hands a socket to each loop in
// turn (round robin, which nothing else uses with SO_REUSEPORT listeners): a connected UDP
// socket to the discard port gets no OnOpen and no traffic, and is closed at once.
//
// gnet calls OnBoot before it creates the loops, so Register may only be called once a
// loop has run: the first loop is found by connecting to a TCP listener of the engine,
// and its OnOpen (which runs after every loop was created) publishes it in e.loops.
func (x *externalLoops) discover(e *Engine) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.done {
		return nil
	}
	if len(e.loopList()) == 0 {
		if err := e.wakeALoop(); err != nil {
			return fmt.Errorf("engine: finding the loops: %w", err)
		}
	}
	for range 2 * e.opts.Loops {
		if len(e.loopList()) >= e.opts.Loops {
			break
		}
		c, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9})
		if err != nil {
			return fmt.Errorf("engine: finding the loops: %w", err)
		}
		ch, err := e.eng.Register(gnet.NewContext(gnet.NewNetConnContext(context.Background(), c), loopProbe{}))
		if err != nil {
			_ = c.Close()
			return fmt.Errorf("engine: finding the loops: %w", err)
		}
		res := <-ch
		_ = c.Close() // gnet registered a duplicate of the socket
		if res.Err != nil {
			return fmt.Errorf("engine: finding the loops: %w", res.Err)
		}
		e.loopFor(res.Conn.EventLoop())
		_ = res.Conn.Close()
	}
	x.done = true
	return nil
}

// wakeALoop connects to the first bind's TCP listener and waits until the loop that
// accepted the connection has registered itself.
func (e *Engine) wakeALoop() error {
	ap := e.opts.Binds[0].Addr
	a := ap.Addr()
	if a.IsUnspecified() {
		if a.Is4() {
			a = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		} else {
			a = netip.IPv6Loopback()
		}
	}
	c, err := net.DialTimeout("tcp", netip.AddrPortFrom(a, ap.Port()).String(), 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(2 * time.Second)
	defer deadline.Stop()
	for len(e.loopList()) == 0 {
		select {
		case <-tick.C:
		case <-deadline.C:
			return errors.New("no loop accepted a connection")
		}
	}
	return nil
}

// loopProbe marks the sockets of discover; the handler ignores connections it does not
// know.
type loopProbe struct{}
