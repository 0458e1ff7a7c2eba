package tlsframe

import (
	"net"
	"slices"
	"sync"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/valyala/bytebufferpool"
)

// wouldBlock is what the adapter's Read returns on the loop when no bytes
// are buffered. crypto/tls does not record a net.Error whose Temporary() is
// true as the connection's permanent error (readRecordOrCCS), so the next
// Read after more bytes arrive carries on. contract_test.go pins this.
type wouldBlock struct{}

func (wouldBlock) Error() string   { return "tlsframe: no buffered input (would block)" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

var errWouldBlock net.Error = wouldBlock{}

// adapter is the net.Conn a tls.Conn sees. It has two modes:
//
//   - handshake (onLoop false): the handshake goroutine reads from in,
//     blocking on cond until the loop appends bytes or the connection is
//     closed; writes are copied and sent with gnet's AsyncWrite.
//   - loop (onLoop true, set on the loop after the handshake goroutine is
//     done): reads drain what is left in in, then the gnet inbound buffer,
//     and return wouldBlock when empty; writes append to the loop's scratch
//     buffer, sent with one gnet Write per pass.
//
// Deadlines are ignored: the loop never blocks, and the handshake has its
// own deadline (crypto/tls sets one in closeNotify).
type adapter struct {
	c *Conn

	mu     sync.Mutex // guards in, off and closed while a goroutine may read
	cond   sync.Cond
	in     *bytebufferpool.ByteBuffer
	off    int
	closed bool

	onLoop bool
	gc     gnet.Conn
	slot   *loopSlot
	laddr  net.Addr
	raddr  net.Addr
}

func (a *adapter) Read(p []byte) (int, error) {
	if a.onLoop {
		return a.readLoop(p)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for {
		if a.closed {
			return 0, net.ErrClosed
		}
		if a.in != nil && a.off < len(a.in.B) {
			n := copy(p, a.in.B[a.off:])
			a.off += n
			return n, nil
		}
		a.cond.Wait()
	}
}

// readLoop runs on the loop only; no other goroutine touches in then.
func (a *adapter) readLoop(p []byte) (int, error) {
	if a.in != nil {
		if a.off < len(a.in.B) {
			n := copy(p, a.in.B[a.off:])
			a.off += n
			if a.off == len(a.in.B) {
				a.releaseInput()
			}
			return n, nil
		}
		a.releaseInput()
	}
	n, _ := a.gc.Read(p) // io.ErrShortBuffer when empty
	if n == 0 {
		return 0, errWouldBlock
	}
	return n, nil
}

func (a *adapter) releaseInput() {
	if a.in != nil {
		bytebufferpool.Put(a.in)
		a.in, a.off = nil, 0
	}
}

func (a *adapter) Write(p []byte) (int, error) {
	if a.onLoop {
		a.slot.out = append(a.slot.out, p...)
		return len(p), nil
	}
	a.mu.Lock()
	closed := a.closed
	a.mu.Unlock()
	if closed {
		return 0, net.ErrClosed
	}
	// crypto/tls reuses p after Write returns; the loop sends it later.
	buf := bytebufferpool.Get()
	buf.B = append(buf.B[:0], p...)
	a.c.pending.Add(1)
	err := a.gc.AsyncWrite(buf.B, func(gnet.Conn, error) error {
		bytebufferpool.Put(buf)
		a.c.flightWritten()
		return nil
	})
	if err != nil {
		// The task is queued even when waking the loop failed; its
		// callback still returns the buffer.
		return 0, err
	}
	return len(p), nil
}

// Close is a no-op: the loop owns the socket and closes it.
func (a *adapter) Close() error                     { return nil }
func (a *adapter) LocalAddr() net.Addr              { return a.laddr }
func (a *adapter) RemoteAddr() net.Addr             { return a.raddr }
func (a *adapter) SetDeadline(time.Time) error      { return nil }
func (a *adapter) SetReadDeadline(time.Time) error  { return nil }
func (a *adapter) SetWriteDeadline(time.Time) error { return nil }

// appendInput moves the gnet inbound buffer into in (on the loop, before and
// during the handshake) and wakes a handshake goroutine waiting for it.
func (a *adapter) appendInput(gc gnet.Conn) error {
	n := gc.InboundBuffered()
	if n == 0 {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		_, _ = gc.Discard(n)
		return net.ErrClosed
	}
	if a.in == nil {
		a.in = bytebufferpool.Get()
		a.in.B, a.off = a.in.B[:0], 0
	}
	if a.off == len(a.in.B) {
		a.in.B, a.off = a.in.B[:0], 0
	}
	if len(a.in.B)-a.off+n > maxHandshakeInput {
		_, _ = gc.Discard(n)
		return errHandshakeInput
	}
	l := len(a.in.B)
	a.in.B = slices.Grow(a.in.B, n)[:l+n]
	m, _ := gc.Read(a.in.B[l:])
	a.in.B = a.in.B[:l+m]
	a.cond.Signal()
	return nil
}

// shut marks the adapter closed and wakes a waiting handshake goroutine.
// release also returns the input buffer (on the loop only).
func (a *adapter) shut(release bool) {
	a.mu.Lock()
	a.closed = true
	if release {
		a.releaseInput()
	}
	a.cond.Broadcast()
	a.mu.Unlock()
}

func (a *adapter) isShut() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.closed
}
