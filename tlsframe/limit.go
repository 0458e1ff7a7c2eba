package tlsframe

import (
	"net/netip"
	"sync/atomic"
)

// ClientLimiter applies per-client limits to TLS sessions (dnsdist's tuning.tcp: new and
// resumed sessions per second, concurrent handshakes, a ban): the defence against a
// handshake flood from one client. Begin runs on the loop when a client's ClientHello is
// complete, before any handshake work; when it reports true, exactly one of Done (the
// handshake succeeded, resumed or not) or Abort (it failed, was shed, or the connection
// closed first) follows, from a handshake goroutine or the loop. It must be safe for
// concurrent use and must not block.
type ClientLimiter interface {
	Begin(peer netip.Addr) bool
	Done(peer netip.Addr, resumed bool)
	Abort(peer netip.Addr)
}

type limiterBox struct{ l ClientLimiter }

// limiters is the Handshaker's current ClientLimiter, swapped by a reload; a handshake
// keeps the one it began with, so that its Done or Abort reaches the limiter that counted it.
type limiters struct{ p atomic.Pointer[limiterBox] }

// SetClientLimiter puts l in force for the handshakes that begin from now on; nil removes
// the limits.
func (h *Handshaker) SetClientLimiter(l ClientLimiter) {
	if l == nil {
		h.limit.p.Store(nil)
		return
	}
	h.limit.p.Store(&limiterBox{l})
}

// limitBegin asks the limiter in force whether c's handshake may start and remembers it
// on c. It runs on c's loop.
func (h *Handshaker) limitBegin(c *Conn) bool {
	b := h.limit.p.Load()
	if b == nil {
		return true
	}
	if !b.l.Begin(c.peer.Addr().Unmap()) {
		return false
	}
	c.limiter = b.l
	return true
}

// limitEnd reports the end of c's handshake to the limiter that began it: success when err
// is nil and the handshake happened, Abort otherwise.
func (c *Conn) limitEnd(ok bool) {
	l := c.limiter
	if l == nil {
		return
	}
	c.limiter = nil
	if ok && c.tls != nil {
		l.Done(c.peer.Addr().Unmap(), c.tls.ConnectionState().DidResume)
		return
	}
	l.Abort(c.peer.Addr().Unmap())
}
