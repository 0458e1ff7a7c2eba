package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dnsfront/dnsfront/doh"
	"github.com/dnsfront/dnsfront/engine/rules"
	"github.com/dnsfront/dnsfront/tlsframe"
	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/logging"
	"golang.org/x/sys/unix"
)

// proto is the client side protocol of a query.
type proto uint8

const (
	protoUDP proto = iota
	protoTCP
	protoDoT
	protoDoH
	protoDoQ // DoQ and DoH3 queries come from listeners off the loops (external.go)
	protoDoH3
	protoCount
)

// Options is what the engine is started with. Everything that a reload may change lives in
// the State published by Engine.Publish; Options are fixed for the engine's life.
type Options struct {
	// Loops is the number of event loops (0: one per core).
	Loops int
	// Binds are the listeners the engine starts with; PrepareBinds and CommitBinds
	// change them.
	Binds []BindOptions
	// Inherit are listening sockets handed over by the process this one replaces (a
	// binary upgrade): a bind on the address of one serves it instead of opening its own,
	// so that nothing queued on it is lost. The engine owns them.
	Inherit []int
	// TCPIdleTimeout closes stream clients that sent nothing for this long.
	TCPIdleTimeout time.Duration
	// MaxTCPInFlight bounds the queries waiting for backends on one stream connection;
	// reading from the connection pauses beyond it.
	MaxTCPInFlight int
	Logger         *slog.Logger
	// Dyn is the process's dynamic blocks (policy.go), and Clock the clock its rate
	// limits and the rule set's run on; nil: none, and the rule set's own clock.
	Dyn   *rules.DynBlocks
	Clock rules.Clock
}

// BindOptions is one listening address.
type BindOptions struct {
	Addr     netip.AddrPort
	Protocol string // Do53, DoT or DoH
	// MaxConns bounds the concurrent stream connections of this bind per loop (0: no bound).
	MaxConns int
	// Pool names the backend pool serving this bind.
	Pool string
	// TLSStore and Handshaker serve DoT, and DoH over TLS.
	TLSStore   *tlsframe.Store
	Handshaker *tlsframe.Handshaker
	// DoH configures a DoH bind's HTTP side; with no TLSStore it serves cleartext.
	DoH *doh.Options
	// PadResponses pads every answer to a query with EDNS on an encrypted transport
	// (ednsopts.go), not only answers to padded queries.
	PadResponses bool
	Proxy        BindProxy // enable_proxy_protocol, proxy_protocol_outside_tls (proxy.go)

	// newStream builds the DoT/DoH layer of a new connection on loop l.
	newStream func(gc gnet.Conn, l *loop, peer netip.AddrPort) stream
}

// Engine is the data plane: one gnet engine serving every bind.
type Engine struct {
	opts    Options
	log     *slog.Logger
	state   atomic.Pointer[State]
	eng     gnet.Engine
	booted  chan struct{}
	stopped chan struct{}
	runErr  error

	// binds is the set of binds in force (listen.go); listenMu serialises changes to it
	// and to socks, the listening sockets the loops poll.
	binds     atomic.Pointer[bindTable]
	listenMu  sync.Mutex
	socks     []listenSock
	inherit   map[listenKey][]int
	listening bool  // the loops poll socks (false before Start and after StopListening)
	detached  []int // UDP listeners no longer read, closed at Stop
	start     *BindPlan

	// udpDrain holds the UDP sockets of removed binds until their drain ends (listen.go).
	udpDrain map[listenKey][]drainingSock

	loopsMu sync.Mutex
	loops   atomic.Pointer[map[gnet.EventLoop]*loop]
	loopSeq int

	draining atomic.Bool
	ext      externalLoops // external.go
	ctx      context.Context
	cancel   context.CancelFunc
	// epoch is the origin of the loops' deadlines (see mono).
	epoch time.Time
}

// mono returns t as nanoseconds since the engine was created, on the monotonic clock:
// deadlines in wall-clock time would all pass at once when the clock steps forward, and
// none for as long as it stepped back.
func (e *Engine) mono(t time.Time) int64 { return int64(t.Sub(e.epoch)) }

// New prepares an engine; Start runs it.
func New(opts Options, st *State) (*Engine, error) {
	if len(opts.Binds) == 0 {
		return nil, errors.New("engine: no bind")
	}
	if opts.Loops <= 0 {
		opts.Loops = runtime.NumCPU()
	}
	if opts.TCPIdleTimeout <= 0 {
		opts.TCPIdleTimeout = 10 * time.Second
	}
	if opts.MaxTCPInFlight <= 0 {
		opts.MaxTCPInFlight = 100
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	e := &Engine{opts: opts, log: opts.Logger, booted: make(chan struct{}), stopped: make(chan struct{}), epoch: time.Now()}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	m := map[gnet.EventLoop]*loop{}
	e.loops.Store(&m)
	e.state.Store(st)
	list := make([]*BindOptions, 0, len(opts.Binds))
	for i := range opts.Binds {
		b := opts.Binds[i]
		if err := e.setupBind(&b); err != nil {
			return nil, err
		}
		list = append(list, &b)
	}
	e.binds.Store(newBindTable(list, opts.Loops))
	return e, nil
}

// Publish installs a new State (ACL, backends, pools); loops pick it up on their next query.
func (e *Engine) Publish(st *State) { e.state.Store(st) }

// CurrentState returns the State the loops are using.
func (e *Engine) CurrentState() *State { return e.state.Load() }

// Start binds every listener and runs the loops in the background. It returns once the
// listeners are open, or with the error that prevented it.
func (e *Engine) Start() error {
	// A loop blocked in epoll_wait holds a scheduler slot; handshake and health-check
	// goroutines need spare ones (DESIGN.md, gnet traps).
	if runtime.GOMAXPROCS(0) <= e.opts.Loops {
		runtime.GOMAXPROCS(e.opts.Loops + 2)
	}
	// The sockets are opened first, so that an address in use fails Start before
	// anything runs.
	e.listenMu.Lock()
	e.adoptInherited(e.opts.Inherit)
	p, err := e.prepareBinds(e.opts.Binds)
	e.closeUnclaimed()
	e.listenMu.Unlock()
	if err != nil {
		return err
	}
	e.start = p
	go func() {
		defer close(e.stopped)
		// No address: the listeners are the engine's own sockets, handed to the loops
		// once they run (listen.go).
		e.runErr = gnet.Rotate(&handler{e: e}, nil,
			gnet.WithMulticore(true),
			gnet.WithNumEventLoop(e.opts.Loops),
			gnet.WithReusePort(true),
			gnet.WithReuseAddr(true),
			gnet.WithTCPNoDelay(gnet.TCPNoDelay),
			gnet.WithSocketRecvBuffer(4<<20),
			gnet.WithSocketSendBuffer(4<<20),
			gnet.WithLogger(gnetLogger{e.log}),
			gnet.WithLogLevel(logging.ErrorLevel),
		)
	}()
	select {
	case <-e.booted:
	case <-e.stopped:
		e.start.Abort()
		if e.runErr == nil {
			e.runErr = errors.New("engine stopped before it booted")
		}
		return fmt.Errorf("engine: %w", e.runErr)
	}
	if n := e.eng.NumEventLoops(); n != e.opts.Loops {
		e.start.Abort()
		_ = e.Stop()
		return fmt.Errorf("engine: gnet runs %d event loops, %d asked", n, e.opts.Loops)
	}
	e.listenMu.Lock()
	e.listening = true
	e.commitBinds(e.start, 0, nil)
	e.start = nil
	e.listenMu.Unlock()
	return nil
}

// Drain stops taking new queries, waits until every query in flight is answered or ctx
// ends, then ends every stream connection gracefully and stops the loops.
func (e *Engine) Drain(ctx context.Context) error {
	e.draining.Store(true)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for e.Stats().Outstanding > 0 {
		select {
		case <-ctx.Done():
			e.log.Warn("drain timeout: stopping with queries in flight", "outstanding", e.Stats().Outstanding)
			return e.Stop()
		case <-tick.C:
		}
	}
	e.goodbye(ctx)
	return e.Stop()
}

// goodbye ends every stream connection politely before the loops stop: DoT sends
// close_notify, DoH a GOAWAY (HTTP/2) or Connection: close (HTTP/1.1); then each
// connection is half-closed and lingers (linger.go). It returns when every connection is
// gone, or when the linger bound or ctx ends.
func (e *Engine) goodbye(ctx context.Context) {
	for _, l := range e.loopList() {
		_ = l.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			outer := l.begin()
			defer l.end(outer)
			for c := range l.clients {
				if !c.closed && !c.lingering {
					c.closing = true
					l.markDirty(c)
				}
			}
			return nil
		}))
	}
	// Each loop's sweep closes what lingers past lingerTimeout; allow it one more tick.
	deadline := time.NewTimer(lingerTimeout + 200*time.Millisecond)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for e.connections() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			return
		case <-tick.C:
		}
	}
}

// connections counts the open client stream connections.
func (e *Engine) connections() int64 {
	var n int64
	for _, l := range e.loopList() {
		n += l.connCount.Load()
	}
	return n
}

// Stop closes everything at once.
func (e *Engine) Stop() error {
	e.cancel()
	select {
	case <-e.booted:
	default:
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := e.eng.Stop(ctx)
	<-e.stopped
	e.listenMu.Lock()
	for _, fd := range e.detached {
		_ = unix.Close(fd)
	}
	e.detached = nil
	e.listenMu.Unlock()
	return err
}

// Done is closed when the engine has stopped.
func (e *Engine) Done() <-chan struct{} { return e.stopped }

// loopFor returns the state of the loop el, creating it on first sight: gnet does not list
// its loops, so each one is discovered by the first event it delivers.
func (e *Engine) loopFor(el gnet.EventLoop) *loop {
	if l, ok := (*e.loops.Load())[el]; ok {
		return l
	}
	e.loopsMu.Lock()
	defer e.loopsMu.Unlock()
	old := *e.loops.Load()
	if l, ok := old[el]; ok {
		return l
	}
	l := newLoop(e, el, e.loopSeq)
	e.loopSeq++
	m := make(map[gnet.EventLoop]*loop, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[el] = l
	e.loops.Store(&m)
	go l.tick(e.ctx)
	return l
}

func (e *Engine) loopList() []*loop {
	m := *e.loops.Load()
	out := make([]*loop, 0, len(m))
	for _, l := range m {
		out = append(out, l)
	}
	return out
}

// bindFor maps a listener address to its bind in t.
func (t *bindTable) bindFor(addr net.Addr) *BindOptions {
	var ap netip.AddrPort
	switch a := addr.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	default:
		return nil
	}
	return t.byAddr[unmapped(ap)]
}

// gnetLogger sends gnet's own messages to slog, at debug level for all but errors: gnet
// logs every refused UDP read as an error, which a down backend would turn into a flood.
type gnetLogger struct{ l *slog.Logger }

func (g gnetLogger) Debugf(f string, a ...any) { g.l.Debug(fmt.Sprintf(f, a...), "component", "gnet") }
func (g gnetLogger) Infof(f string, a ...any)  { g.l.Debug(fmt.Sprintf(f, a...), "component", "gnet") }
func (g gnetLogger) Warnf(f string, a ...any)  { g.l.Debug(fmt.Sprintf(f, a...), "component", "gnet") }
func (g gnetLogger) Errorf(f string, a ...any) { g.l.Debug(fmt.Sprintf(f, a...), "component", "gnet") }
func (g gnetLogger) Fatalf(f string, a ...any) { g.l.Error(fmt.Sprintf(f, a...), "component", "gnet") }
