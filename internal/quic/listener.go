package quic

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dnsfront/dnsfront/doh"
	"github.com/dnsfront/dnsfront/engine"
	"github.com/dnsfront/dnsfront/tlsframe"
	quicgo "github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// Options configure one QUIC bind. Zero values take the defaults named on each field.
type Options struct {
	Addr     netip.AddrPort
	Protocol string // "DoQ" or "DoH3"
	Pool     string // the backend pool serving the bind
	// Store holds the bind's certificates; its snapshot is read at every ClientHello.
	Store *tlsframe.Store
	// IdleTimeout closes a connection without traffic (default 5 s, dnsdist's).
	IdleTimeout time.Duration
	// HandshakeTimeout bounds a handshake (default 5 s, as on TCP).
	HandshakeTimeout time.Duration
	// MaxStreams is QUIC's MAX_STREAMS for client bidirectional streams: the queries
	// (DoQ) or requests (DoH3) a connection may have open at once (default 100).
	MaxStreams int64
	// MaxConns bounds the established connections (0: no bound).
	MaxConns int
	// MaxHandshakes bounds the handshakes in flight; a new connection beyond it is
	// refused (CONNECTION_REFUSED) before any cryptography (default 1024).
	MaxHandshakes int
	// MaxHandshakesPerClient bounds one client address's handshakes in flight (0: no
	// bound), as tls.max_handshakes_per_client does for DoT.
	MaxHandshakesPerClient int
	// RetryThreshold: with more handshakes than this in flight, new connections must
	// validate their address with a Retry first (default 64; -1: always).
	RetryThreshold int
	// Allow0RTT accepts 0-RTT data; off by default because it can be replayed.
	Allow0RTT bool
	// DoH configures the HTTP side of a DoH3 bind (paths, body size, headers).
	DoH *doh.Options
	// StreamTimeout bounds how long a DoQ stream may take to deliver its query and FIN
	// (default 5 s).
	StreamTimeout time.Duration
	Logger        *slog.Logger
}

// Defaults.
const (
	DefaultIdleTimeout      = 5 * time.Second
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultMaxStreams       = 100
	DefaultMaxHandshakes    = 1024
	DefaultRetryThreshold   = 64
	DefaultStreamTimeout    = 5 * time.Second
)

// DoQ error codes (RFC 9250 section 4.3), for connections and streams alike.
const (
	DoQNoError          = 0x0
	DoQInternalError    = 0x1
	DoQProtocolError    = 0x2
	DoQRequestCancelled = 0x3
	DoQExcessiveLoad    = 0x4
)

// h3ExcessiveLoad is H3_EXCESSIVE_LOAD (RFC 9114 section 8.1).
const h3ExcessiveLoad = 0x107

// Listener is one DoQ or DoH3 bind.
type Listener struct {
	opts Options
	eng  *engine.Engine
	log  *slog.Logger
	udp  *net.UDPConn
	tr   *quicgo.Transport
	ln   quicListener
	h3   *http3.Server // DoH3 only
	tls  tlsView

	handshaking atomic.Int64
	requests    atomic.Int64 // DoH3 requests being handled
	limit       atomic.Pointer[limiterBox]
	stats       counters

	mu        sync.Mutex
	conns     map[*conn]struct{}
	perClient map[netip.Addr]int // handshakes in flight by client address
	closing   bool
	accepted  sync.WaitGroup // the accept loop
	served    sync.WaitGroup // connection goroutines
}

type quicListener interface {
	Accept(context.Context) (*quicgo.Conn, error)
	Close() error
}

// conn is one established connection.
type conn struct {
	qc     *quicgo.Conn
	client *engine.ExternalClient
	peer   netip.AddrPort
	// stop ends the DoQ stream accept loop (graceful close); streams wait for in-flight
	// queries before the connection closes.
	stop    context.CancelFunc
	streams sync.WaitGroup
}

// infoKey finds a connection's connInfo in its context (and in the contexts of its
// streams and HTTP/3 requests, which derive from it).
type infoKey struct{}

// connInfo follows a connection from its first Initial: it counts among the handshakes in
// flight until the handshake completes or fails, whichever comes first, and then carries
// the established connection.
type connInfo struct {
	l       *Listener
	peer    netip.Addr
	limiter tlsframe.ClientLimiter // the per-client limiter that admitted it, if any
	done    atomic.Bool
	stop    func() bool // the context.AfterFunc that ends the handshake on failure
	conn    atomic.Pointer[conn]
}

// end takes the handshake off the ones in flight, once: ok when it completed (qc is then
// the connection), a failure otherwise. The per-client limiter hears Done or Abort.
func (h *connInfo) end(ok bool, qc *quicgo.Conn) {
	if h.done.CompareAndSwap(false, true) {
		if h.limiter != nil {
			if ok {
				h.limiter.Done(h.peer, qc.ConnectionState().TLS.DidResume)
			} else {
				h.limiter.Abort(h.peer)
			}
		}
		h.l.handshaking.Add(-1)
		l := h.l
		l.mu.Lock()
		if l.perClient[h.peer]--; l.perClient[h.peer] <= 0 {
			delete(l.perClient, h.peer)
		}
		l.mu.Unlock()
	}
}

// Listen opens the bind's UDP socket and starts accepting.
func Listen(eng *engine.Engine, o Options) (*Listener, error) {
	if o.Protocol != "DoQ" && o.Protocol != "DoH3" {
		return nil, fmt.Errorf("quic: protocol %q (want DoQ or DoH3)", o.Protocol)
	}
	if o.Store == nil {
		return nil, fmt.Errorf("quic: %s bind %s has no certificates", o.Protocol, o.Addr)
	}
	setDefault(&o.IdleTimeout, DefaultIdleTimeout)
	setDefault(&o.HandshakeTimeout, DefaultHandshakeTimeout)
	setDefault(&o.MaxStreams, DefaultMaxStreams)
	setDefault(&o.MaxHandshakes, DefaultMaxHandshakes)
	setDefault(&o.StreamTimeout, DefaultStreamTimeout)
	if o.RetryThreshold == 0 {
		o.RetryThreshold = DefaultRetryThreshold
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	udp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(o.Addr))
	if err != nil {
		return nil, fmt.Errorf("quic: %s bind %s: %w", o.Protocol, o.Addr, err)
	}
	l := &Listener{
		opts:      o,
		eng:       eng,
		log:       o.Logger.With("listener", o.Addr.String(), "protocol", o.Protocol),
		udp:       udp,
		conns:     map[*conn]struct{}{},
		perClient: map[netip.Addr]int{},
	}
	alpn := "doq"
	if o.Protocol == "DoH3" {
		alpn = http3.NextProtoH3
	}
	l.tls = tlsView{store: o.Store, alpn: []string{alpn}}
	l.tr = &quicgo.Transport{
		Conn:                udp,
		VerifySourceAddress: l.verifySourceAddress,
		ConnContext:         l.connContext,
	}
	qc := &quicgo.Config{
		// The handshake gets HandshakeTimeout in all: quic-go aborts one that is idle for
		// HandshakeIdleTimeout or lasts twice as long.
		HandshakeIdleTimeout: o.HandshakeTimeout / 2,
		MaxIdleTimeout:       o.IdleTimeout,
		MaxIncomingStreams:   o.MaxStreams,
		Allow0RTT:            o.Allow0RTT,
	}
	if o.Protocol == "DoQ" {
		// DoQ uses only client bidirectional streams (RFC 9250 section 4.2).
		qc.MaxIncomingUniStreams = -1
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS13, GetConfigForClient: l.tls.configForClient}
	if o.Allow0RTT {
		l.ln, err = l.tr.ListenEarly(tc, qc)
	} else {
		l.ln, err = l.tr.Listen(tc, qc)
	}
	if err != nil {
		_ = udp.Close()
		return nil, fmt.Errorf("quic: %s bind %s: %w", o.Protocol, o.Addr, err)
	}
	if o.Protocol == "DoH3" {
		l.h3 = &http3.Server{
			Handler:        &dohHandler{l: l, cfg: newDoHConfig(o.DoH)},
			MaxHeaderBytes: int(dohHeaderLimit(o.DoH)),
			IdleTimeout:    dohIdle(o.DoH),
			Logger:         l.log,
		}
	}
	l.accepted.Add(1)
	go l.acceptLoop()
	return l, nil
}

type limiterBox struct{ l tlsframe.ClientLimiter }

// SetClientLimiter puts l, the per-client TLS limiter the DoT binds use, in force for the
// connections admitted from now on; nil removes the limits. A connection's handshake
// reports its end to the limiter that admitted it.
func (l *Listener) SetClientLimiter(lim tlsframe.ClientLimiter) {
	if lim == nil {
		l.limit.Store(nil)
		return
	}
	l.limit.Store(&limiterBox{lim})
}

// Addr is the bound UDP address (with the port chosen when Options.Addr had 0).
func (l *Listener) Addr() netip.AddrPort {
	return l.udp.LocalAddr().(*net.UDPAddr).AddrPort()
}

// verifySourceAddress asks for a Retry while handshakes pile up: a spoofed flood of
// Initials then costs one Retry packet each (smaller than the Initial, so no
// amplification) instead of a handshake, and only clients that receive at their address
// get to the cryptography.
func (l *Listener) verifySourceAddress(net.Addr) bool {
	t := l.opts.RetryThreshold
	retry := t < 0 || l.handshaking.Load() >= int64(t)
	if retry {
		l.stats.retries.Add(1)
	}
	return retry
}

// connContext admits a connection attempt: the ACL, the cap on handshakes in flight and
// the draining state are checked before any cryptography; a refusal is CONNECTION_REFUSED.
func (l *Listener) connContext(ctx context.Context, ci *quicgo.ClientInfo) (context.Context, error) {
	ua, _ := ci.RemoteAddr.(*net.UDPAddr)
	if ua == nil {
		return nil, errors.New("not a UDP peer")
	}
	peer := ua.AddrPort()
	if !l.eng.Allows(peer.Addr().Unmap()) {
		l.stats.aclDrops.Add(1)
		return nil, errors.New("refused by the ACL")
	}
	if l.eng.Draining() {
		l.stats.refused.Add(1)
		return nil, errors.New("draining")
	}
	if l.handshaking.Load() >= int64(l.opts.MaxHandshakes) {
		l.stats.refused.Add(1)
		return nil, errors.New("too many handshakes in flight")
	}
	h := &connInfo{l: l, peer: peer.Addr().Unmap()}
	if b := l.limit.Load(); b != nil {
		// The per-client TLS limits shared with DoT (tuning.tcp): a banned client, or one
		// with too many handshakes in flight over TCP and QUIC together, is refused here.
		if !b.l.Begin(h.peer) {
			l.stats.clientLimited.Add(1)
			l.stats.refused.Add(1)
			return nil, errors.New("client over its TLS limits")
		}
		h.limiter = b.l
	}
	l.mu.Lock()
	if l.closing || l.opts.MaxHandshakesPerClient > 0 && l.perClient[h.peer] >= l.opts.MaxHandshakesPerClient {
		closing := l.closing
		l.mu.Unlock()
		if h.limiter != nil {
			h.limiter.Abort(h.peer)
		}
		l.stats.refused.Add(1)
		if closing {
			return nil, errors.New("closing")
		}
		return nil, errors.New("too many handshakes from this client")
	}
	l.perClient[h.peer]++
	l.mu.Unlock()
	l.handshaking.Add(1)
	h.stop = context.AfterFunc(ctx, func() { h.end(false, nil) })
	return context.WithValue(ctx, infoKey{}, h), nil
}

func (l *Listener) acceptLoop() {
	defer l.accepted.Done()
	for {
		qc, err := l.ln.Accept(context.Background())
		if err != nil {
			return // the listener closed
		}
		info, _ := qc.Context().Value(infoKey{}).(*connInfo)
		if info != nil {
			info.stop()
			info.end(true, qc)
		}
		l.accept(qc, info)
	}
}

// accept takes an established connection: the connection limit, an engine client pinned
// to one loop, then the protocol's goroutine.
func (l *Listener) accept(qc *quicgo.Conn, info *connInfo) {
	overload := quicgo.ApplicationErrorCode(DoQExcessiveLoad)
	if l.opts.Protocol == "DoH3" {
		overload = h3ExcessiveLoad
	}
	if qc.ConnectionState().Used0RTT {
		l.stats.zeroRTT.Add(1)
	}
	ua, _ := qc.RemoteAddr().(*net.UDPAddr)
	var peer netip.AddrPort
	if ua != nil {
		peer = ua.AddrPort()
	}
	client, err := l.eng.NewExternalClient(l.opts.Protocol, l.opts.Pool, l.Addr(), peer)
	if err != nil {
		l.stats.refused.Add(1)
		_ = qc.CloseWithError(DoQInternalError, "server stopping")
		return
	}
	ctx, cancel := context.WithCancel(qc.Context())
	c := &conn{qc: qc, client: client, peer: peer, stop: cancel}
	l.mu.Lock()
	if l.closing || l.opts.MaxConns > 0 && len(l.conns) >= l.opts.MaxConns {
		l.mu.Unlock()
		cancel()
		l.stats.refused.Add(1)
		_ = qc.CloseWithError(overload, "too many connections")
		return
	}
	l.conns[c] = struct{}{}
	if info != nil {
		info.conn.Store(c)
	}
	l.served.Add(1)
	l.mu.Unlock()
	l.stats.accepted.Add(1)
	l.countHandshake(qc)
	go func() {
		defer l.served.Done()
		defer l.forget(c)
		if l.h3 != nil {
			_ = l.h3.ServeQUICConn(qc)
			return
		}
		l.serveDoQ(ctx, c)
	}()
}

// countHandshake counts the connection's handshake in dnsfront_tls_handshakes_negotiated_total
// with the TCP binds' handshakes. An early (0-RTT) connection is accepted before its
// handshake completes: it is counted when it does.
func (l *Listener) countHandshake(qc *quicgo.Conn) {
	select {
	case <-qc.HandshakeComplete():
		tlsframe.CountHandshake(qc.ConnectionState().TLS)
		return
	default:
	}
	go func() {
		select {
		case <-qc.HandshakeComplete():
			tlsframe.CountHandshake(qc.ConnectionState().TLS)
		case <-qc.Context().Done():
		}
	}()
}

func (l *Listener) forget(c *conn) {
	c.stop()
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// Connections is the number of established connections.
func (l *Listener) Connections() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// Shutdown stops accepting, lets every connection finish the queries it has in flight and
// closes it with DOQ_NO_ERROR (DoQ) or a GOAWAY (DoH3), then closes the socket. When ctx
// ends first, what remains is closed at once.
func (l *Listener) Shutdown(ctx context.Context) error {
	l.mu.Lock()
	l.closing = true
	conns := make([]*conn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	// Handshakes in flight are refused; established connections stay.
	_ = l.ln.Close()
	l.accepted.Wait()
	var err error
	if l.h3 != nil {
		err = l.shutdownH3(ctx)
	} else {
		for _, c := range conns {
			c.stop()
		}
	}
	done := make(chan struct{})
	go func() {
		l.served.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	return errors.Join(err, l.Close())
}

// shutdownH3 sends every connection a GOAWAY, waits for the requests in flight, then
// closes the connections with H3_NO_ERROR: a client that got its answers has no reason to
// keep a connection to a server that said goodbye, but nothing makes it close it before
// its idle timeout.
func (l *Listener) shutdownH3(ctx context.Context) error {
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res := make(chan error, 1)
	go func() { res <- l.h3.Shutdown(gctx) }()
	// Requests whose streams were accepted before the GOAWAY may not have reached the
	// handler yet: give them goAwayGrace before taking zero requests for done.
	grace := time.NewTimer(goAwayGrace)
	defer grace.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	graced := false
	for {
		select {
		case err := <-res:
			return err
		case <-ctx.Done():
			return <-res
		case <-grace.C:
			graced = true
		case <-tick.C:
		}
		if graced && l.requests.Load() == 0 {
			cancel() // http3 closes what is left
			<-res
			return nil
		}
	}
}

// goAwayGrace is how long a DoH3 shutdown waits after its GOAWAY before it takes "no
// request in flight" for the end: requests sent before the GOAWAY arrive within a round
// trip, well under this on the networks DNS clients use.
const goAwayGrace = 200 * time.Millisecond

// Close closes every connection and the socket at once.
func (l *Listener) Close() error {
	l.mu.Lock()
	l.closing = true
	l.mu.Unlock()
	_ = l.ln.Close()
	if l.h3 != nil {
		_ = l.h3.Close()
	}
	// Closing the transport closes its connections; the socket is ours to close.
	err := l.tr.Close()
	l.accepted.Wait()
	l.served.Wait()
	err = errors.Join(err, l.udp.Close())
	if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func setDefault[T int | int64 | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}
