package engine

import (
	"time"

	"golang.org/x/sys/unix"
)

// Lingering close. Closing a TCP socket whose receive queue holds unread bytes, or that
// receives bytes after it closed, makes the kernel answer with RST; a client that gets the
// RST before it has read our last answer, GOAWAY or close_notify loses them (RFC 9112
// §9.6 describes the problem for HTTP). So a connection we end is never closed outright:
// its last bytes are written, then it is half-closed (FIN after those bytes), and what the
// client still sends is read and discarded until it closes its side, or until a bound in
// time or bytes is reached. Only then does the socket go.
const (
	// lingerTimeout bounds the wait for the client's FIN: a client that has read our FIN
	// closes within a round trip; two seconds covers slow links without holding sockets
	// of clients that never close.
	lingerTimeout = 2 * time.Second
	// lingerMaxInput bounds what a lingering connection may still send: more than a
	// socket's worth of unread pipelined queries is a client that is not closing.
	lingerMaxInput = 64 << 10
)

// linger ends c gracefully: the stream's last bytes (close_notify, the session's GOAWAY or
// final HTTP/1.1 answers) unless final is false (the TLS state is broken), then the
// half-close and the drain. c's answered queries must be flushed already.
func (l *loop) linger(c *clientConn, final bool) {
	if c.closed || c.lingering {
		return
	}
	c.lingering = true
	c.closing = false
	c.lingerUntil = l.e.mono(time.Now().Add(lingerTimeout))
	l.lingering++ // before the last write: a failed one closes c, and OnClose counts it out
	if final && c.stream != nil {
		c.stream.shutdown(c.gc)
	}
	l.halfClose(c)
}

// halfClose sends our FIN once gnet has written everything queued for c: shutting down
// the write side before would cut the last answers off.
func (l *loop) halfClose(c *clientConn) {
	if c.finSent || c.closed || c.gc.OutboundBuffered() > 0 {
		return
	}
	c.finSent = true
	if err := unix.Shutdown(c.gc.Fd(), unix.SHUT_WR); err != nil {
		c.closeNow()
	}
}

// onLingerTraffic discards what a lingering client sent; the connection goes when the
// client closes (gnet reads EOF) or past lingerMaxInput.
func (l *loop) onLingerTraffic(c *clientConn) {
	n, _ := c.gc.Discard(-1)
	c.drained += n
	l.halfClose(c)
	if c.drained > lingerMaxInput {
		c.closeNow()
	}
}

// sweepLinger sends the FINs that waited for gnet's outbound buffer and closes the
// connections whose linger time is up.
func (l *loop) sweepLinger(now int64) {
	if l.lingering == 0 {
		return
	}
	for c := range l.clients {
		if !c.lingering {
			continue
		}
		l.halfClose(c)
		if now > c.lingerUntil {
			c.closeNow()
		}
	}
}
