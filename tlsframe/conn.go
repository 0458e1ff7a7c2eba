package tlsframe

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/valyala/bytebufferpool"
)

// Connection states. The loop moves hello→handshaking (submit) and
// done→established; the handshake goroutine moves handshaking→done; OnClose
// moves any state to closed.
const (
	stateHello       int32 = iota // buffering the first record
	stateHandshaking              // queued or running on a handshake goroutine
	stateDone                     // handshake returned; flights may still be queued
	stateEstablished              // records are read and written on the loop
	stateClosed
)

var (
	errHandshakeInput = errors.New("tlsframe: client sent too much data before the handshake completed")
	errNotEstablished = errors.New("tlsframe: write before the handshake completed")
)

// Conn is the TLS side of one client connection on a gnet loop.
//
// Concurrency: every method runs on the connection's event loop. The
// handshake runs on a Handshaker goroutine that owns the tls.Conn until it
// stores stateDone, and wakes the connection when the loop has something to
// act on (handBack; else the loop takes over at the client's next bytes or
// at close); flightWritten and expire are
// the only other entry points off the caller's path, and they touch atomics,
// the adapter's lock and gnet's concurrency-safe calls only.
type Conn struct {
	ad      adapter
	tls     *tls.Conn // set by the handshake goroutine before stateDone
	hsErr   error     // idem
	store   *Store
	loop    int
	hs      *Handshaker
	peer    netip.AddrPort
	gc      gnet.Conn
	state   atomic.Int32
	pending atomic.Int32 // flight AsyncWrites not yet run by the loop
	timer   *time.Timer
	out     *bytebufferpool.ByteBuffer // plaintext queued by Write
	err     error                      // construction error, reported by OnTraffic

	// guarded by hs.mu
	job     jobState
	elem    any           // *list.Element while queued
	limiter ClientLimiter // the per-client limits that admitted the handshake (limit.go)

	sni    string // the client's server name, read once established (servername.go)
	sniSet bool

	trimmed bool // crypto/tls's handshake-grown read buffers are released (release.go)
}

// NewConn attaches TLS to a freshly accepted gnet connection. Call it in
// OnOpen, on the loop numbered loop (0 <= loop < st.Loops()); peer is the
// client address (cached by the caller: RemoteAddr is loop-only). The
// handshake deadline starts now.
func NewConn(gc gnet.Conn, st *Store, loop int, hs *Handshaker, peer netip.AddrPort) *Conn {
	c := &Conn{store: st, loop: loop, hs: hs, peer: peer, gc: gc}
	c.ad.c = c
	c.ad.cond.L = &c.ad.mu
	c.ad.gc = gc
	c.ad.laddr = gc.LocalAddr()
	c.ad.raddr = gc.RemoteAddr()
	slot, err := st.slot(loop)
	if err != nil {
		c.err = err
		return c
	}
	c.ad.slot = slot
	if slot.view.Load() == nil {
		c.err = fmt.Errorf("tlsframe: peer %s: no certificate published for this listener", peer)
		return c
	}
	c.timer = time.AfterFunc(hs.opts.Timeout, c.expire)
	return c
}

// Peer is the client address given to NewConn.
func (c *Conn) Peer() netip.AddrPort { return c.peer }

// Established reports whether the handshake completed and the loop owns the
// TLS connection.
func (c *Conn) Established() bool { return c.state.Load() == stateEstablished }

// ConnectionState is the negotiated state (ALPN, version, resumption); valid
// once Established.
func (c *Conn) ConnectionState() tls.ConnectionState {
	if !c.Established() {
		return tls.ConnectionState{}
	}
	return c.tls.ConnectionState()
}

// OnTraffic consumes the gnet inbound buffer. Before and during the
// handshake it buffers; once established it decrypts every complete record
// and calls deliver with the plaintext (valid only during the call; deliver
// may be called several times, and may call Write). Partial records stay
// inside the tls.Conn. Any error means: close the connection (io.EOF after
// the client's close_notify).
func (c *Conn) OnTraffic(gc gnet.Conn, deliver func(plaintext []byte)) error {
	if c.err != nil {
		_, _ = gc.Discard(-1)
		return c.err
	}
	switch c.state.Load() {
	case stateHello:
		if err := c.ad.appendInput(gc); err != nil {
			return err
		}
		if c.ad.in == nil {
			return nil
		}
		// No goroutine exists yet: the loop may look at in unlocked.
		complete, err := firstRecord(c.ad.in.B[c.ad.off:])
		if err != nil {
			return fmt.Errorf("%w (peer %s)", err, c.peer)
		}
		if !complete {
			return nil
		}
		c.state.Store(stateHandshaking)
		return c.hs.submit(c)
	case stateHandshaking:
		if err := c.ad.appendInput(gc); err != nil || c.state.Load() != stateDone {
			return err
		}
		// Handed back while we appended: the goroutine saw no input and did
		// not wake us (handBack), so these bytes are ours to take on now.
		return c.takeOver(gc, deliver)
	case stateDone:
		return c.takeOver(gc, deliver)
	case stateEstablished:
		return c.readPass(gc, deliver)
	default:
		_, _ = gc.Discard(-1)
		return net.ErrClosed
	}
}

// takeOver moves a handed-back connection onto the loop (stateDone →
// stateEstablished) and reads what is buffered.
func (c *Conn) takeOver(gc gnet.Conn, deliver func(plaintext []byte)) error {
	if c.pending.Load() > 0 {
		// The last flight write's callback wakes us again (we have buffered
		// input now, mustTakeOver); answering before it would overtake the
		// server's Finished.
		return c.ad.appendInput(gc)
	}
	c.timer.Stop()
	if c.hsErr != nil {
		_, _ = gc.Discard(-1)
		return c.hsErr
	}
	c.establish()
	return c.readPass(gc, deliver)
}

// establish is the loop's side of the hand-back, once no flight is queued
// and the handshake succeeded.
func (c *Conn) establish() {
	c.timer.Stop()
	c.ad.onLoop = true
	c.state.Store(stateEstablished)
	if c.ad.in != nil && c.ad.off == len(c.ad.in.B) {
		c.ad.releaseInput()
	}
}

// readPass decrypts everything buffered. tls.Conn.Read may return bytes and
// an error together: the bytes are delivered first.
func (c *Conn) readPass(gc gnet.Conn, deliver func([]byte)) error {
	s := c.ad.slot
	if s.plain == nil {
		s.plain = make([]byte, maxPlaintext)
	}
	for {
		n, err := c.tls.Read(s.plain)
		if n > 0 {
			// Records crypto/tls wrote while reading (a KeyUpdate answer) leave before
			// deliver runs: the record buffer is the loop's, shared by the bind's
			// connections, and what deliver sets off may flush another connection.
			if ferr := c.flushRecords(gc); ferr != nil {
				return ferr
			}
			deliver(s.plain[:n])
		}
		if err != nil {
			// Our own would-block, which crypto/tls does not keep as the
			// connection's error because it is a net.Error whose Temporary() is
			// true (adapter.go).
			if errors.Is(err, errWouldBlock) {
				if !c.trimmed {
					// Everything read is consumed: what the handshake grew can go.
					c.trimmed = releaseTLSBuffers(c.tls)
				}
				break
			}
			_ = c.flushRecords(gc) // an alert crypto/tls queued
			return err
		}
	}
	// Records crypto/tls wrote while reading (a KeyUpdate answer).
	return c.flushRecords(gc)
}

// Write queues plaintext for the next Flush (on the loop).
func (c *Conn) Write(plaintext []byte) {
	if c.out == nil {
		c.out = bytebufferpool.Get()
		c.out.B = c.out.B[:0]
	}
	c.out.B = append(c.out.B, plaintext...)
}

// Flush encrypts everything queued by Write into records (one per 16 KiB)
// and sends them with one gnet write. Call it on the loop, in OnTraffic or
// later (an answer arriving from a backend on the same loop).
func (c *Conn) Flush(gc gnet.Conn) error {
	if c.out == nil {
		return nil
	}
	if c.state.Load() != stateEstablished {
		if c.state.Load() == stateClosed {
			return net.ErrClosed
		}
		return errNotEstablished
	}
	_, err := c.tls.Write(c.out.B)
	bytebufferpool.Put(c.out)
	c.out = nil
	if err != nil {
		c.ad.slot.out = c.ad.slot.out[:0]
		return err
	}
	return c.flushRecords(gc)
}

func (c *Conn) flushRecords(gc gnet.Conn) error {
	s := c.ad.slot
	if len(s.out) == 0 {
		return nil
	}
	_, err := gc.Write(s.out)
	s.out = s.out[:0]
	return err
}

// CloseNotify sends close_notify (after anything queued) and closes the
// connection. Before the handshake completed it just closes.
func (c *Conn) CloseNotify(gc gnet.Conn) error {
	_ = c.SendCloseNotify(gc)
	return gc.Close()
}

// SendCloseNotify writes anything queued, then close_notify, and leaves the
// connection open: the caller half-closes it and reads until the client
// closes (a lingering close), so that the kernel does not reset it while the
// client has not read our last records. Before the handshake completed it
// writes nothing.
func (c *Conn) SendCloseNotify(gc gnet.Conn) error {
	if c.state.Load() == stateDone && c.pending.Load() == 0 && c.hsErr == nil {
		// Handed back without a wake and not taken over yet (the client has
		// sent nothing since its Finished): it is established all the same.
		c.establish()
	}
	if c.state.Load() != stateEstablished {
		return nil
	}
	err := c.Flush(gc)
	_ = c.tls.CloseWrite()
	if ferr := c.flushRecords(gc); err == nil {
		err = ferr
	}
	return err
}

// OnClose releases the connection's buffers and stops its handshake: a
// queued one leaves the queue, a running one is woken and ends. Call it from
// the gnet OnClose handler.
func (c *Conn) OnClose() {
	prev := c.state.Swap(stateClosed)
	if c.timer != nil {
		c.timer.Stop()
	}
	c.ad.shut(true)
	if prev == stateHandshaking && c.hs != nil {
		c.hs.cancel(c)
	}
	if c.out != nil {
		bytebufferpool.Put(c.out)
		c.out = nil
	}
}

// flightWritten runs on the loop when a handshake flight has been written.
func (c *Conn) flightWritten() {
	if c.pending.Add(-1) == 0 && c.state.Load() == stateDone && c.mustTakeOver() {
		_ = c.gc.Wake(nil)
	}
}

// mustTakeOver reports whether a handed-back connection has something the
// loop must act on before the next socket event: a handshake error to close
// on, or client bytes already read (in the adapter, or inside the tls.Conn
// when its buffers could not be released). Otherwise the loop takes over
// when the client next sends. The handshake goroutine calls it under ad.mu
// before handing back; the loop once the state is stateDone.
func (c *Conn) mustTakeOver() bool {
	return c.hsErr != nil || !c.trimmed || (c.ad.in != nil && c.ad.off < len(c.ad.in.B))
}

// handBack ends the handshake goroutine's ownership (stateHandshaking →
// stateDone) and reports whether the loop must be woken to take over. Not
// waking saves a task, an eventfd write and a loop wake-up per handshake
// whose client sends nothing with its Finished. The decision and the state
// change are one critical section with appendInput's: bytes the loop
// appended before it are seen here, and a loop appending after it finds
// stateDone and takes over itself (OnTraffic, stateHandshaking).
func (c *Conn) handBack() (wake bool) {
	a := &c.ad
	a.mu.Lock()
	wake = c.mustTakeOver()
	if !wake {
		a.releaseInput()
	}
	handed := c.state.CompareAndSwap(stateHandshaking, stateDone)
	a.mu.Unlock()
	if !handed {
		return false // closed meanwhile: OnClose has done the rest
	}
	if !wake {
		// Done: the deadline is for handshakes; an idle connection is the
		// engine's to time out.
		c.timer.Stop()
	}
	return wake
}

// expire is the handshake deadline, run by the timer's goroutine: it covers
// a half-sent ClientHello, the time spent queued and the handshake itself.
func (c *Conn) expire() {
	if s := c.state.Load(); s >= stateEstablished || (s == stateDone && c.hsErr == nil) {
		return
	}
	c.hs.timedOut.Add(1)
	c.ad.shut(false)
	_ = c.gc.Close()
}

// runHandshake runs on a handshake goroutine.
func (c *Conn) runHandshake() error {
	v := c.ad.slot.view.Load()
	tc := tls.Server(&c.ad, v.cfg)
	err := tc.Handshake()
	c.tls, c.hsErr = tc, err
	if err == nil {
		// Still this goroutine's: drop what the handshake grew (release.go). Trimmed
		// also tells handBack that crypto/tls holds no bytes the loop must read, so it
		// is true only where the buffers could be looked at: else the loop is woken.
		c.trimmed = releaseTLSBuffers(tc) && tlsBuffers().ok
	}
	if c.handBack() {
		_ = c.gc.Wake(nil)
	}
	return err
}
