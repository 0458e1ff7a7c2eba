package doh

import (
	"math"
	"time"

	"golang.org/x/net/http2"
)

// HTTP/2 flow control (RFC 9113 5.2, 6.9).
//
// Receiving: the connection window is refilled as soon as half of it is
// used, so it never stalls a client; what input costs in memory is bounded
// by MaxConnMemory, not by windows. A stream's window covers a whole
// request body (MaxBodySize), so a collected body never needs a stream
// WINDOW_UPDATE; body that is only counted (after an early response, or
// sent with a GET) is given back at once so that the client can finish.
//
// Sending: a response body waits in its stream's pending buffer for both
// windows. blockedBytes is the sum of every pending buffer; it is what the
// zero-window defences measure.
//
// Invariants:
//   - recvConn ≥ 0 and every stream's recvWin ≥ 0, or the peer broke flow
//     control (FLOW_CONTROL_ERROR, connection or stream).
//   - No send window exceeds 2^31-1: a WINDOW_UPDATE or SETTINGS that would
//     is a FLOW_CONTROL_ERROR (a stream error for a stream's window).
//   - blockedBytes == Σ len(st.pending) over c.streams.
//   - DATA counts against the connection window in every stream state, even
//     for a stream we reset (RFC 9113 6.9).

const (
	// connRecvWindow is the connection receive window we grant. Bodies are
	// small; MaxConnMemory bounds what is really held.
	connRecvWindow = 1 << 20
	// maxWindow is 2^31-1 (RFC 9113 6.9.1).
	maxWindow = math.MaxInt32
)

// recvConnData accounts a DATA frame against the connection window.
func (c *h2conn) recvConnData(n int64) error {
	c.recvConn -= n
	if c.recvConn < 0 {
		return c.fail(connErr(http2.ErrCodeFlowControl, "DATA beyond the connection window"))
	}
	c.recvConsumed += n
	if c.recvConsumed >= connRecvWindow/2 {
		c.writeWindowUpdate(0, uint32(c.recvConsumed))
		c.recvConn += c.recvConsumed
		c.recvConsumed = 0
	}
	return nil
}

// giveBack returns a dropped DATA frame's bytes to the stream's window.
func (c *h2conn) giveBack(st *h2stream, n int64) {
	if n > 0 {
		c.writeWindowUpdate(st.id, uint32(n))
		st.recvWin += n
	}
}

// windowUpdate grows a send window.
func (c *h2conn) windowUpdate(st *h2stream, inc int64) error {
	if st == nil {
		c.sendConn += inc
		if c.sendConn > maxWindow {
			return c.fail(connErr(http2.ErrCodeFlowControl, "connection window over 2^31-1"))
		}
	} else {
		st.sendWin += inc
		if st.sendWin > maxWindow {
			return c.fail(streamErr(st.id, http2.ErrCodeFlowControl, "stream window over 2^31-1"))
		}
	}
	c.flushBlocked()
	return nil
}

// initialWindow applies a new SETTINGS_INITIAL_WINDOW_SIZE to every stream
// (RFC 9113 6.9.2): the difference is added, and may make a window negative.
func (c *h2conn) initialWindow(v uint32) *h2Error {
	delta := int64(v) - c.peerInitWindow
	c.peerInitWindow = int64(v)
	for _, st := range c.streams {
		st.sendWin += delta
		if st.sendWin > maxWindow {
			return connErr(http2.ErrCodeFlowControl, "SETTINGS_INITIAL_WINDOW_SIZE takes a stream window over 2^31-1")
		}
	}
	return nil
}

// send writes as much of st.pending as the windows allow.
func (c *h2conn) send(st *h2stream) {
	for len(st.pending) > 0 {
		n := min(int64(len(st.pending)), st.sendWin, c.sendConn, int64(c.peerMaxFrame))
		if n <= 0 {
			return
		}
		end := n == int64(len(st.pending))
		c.writeData(st.id, end, st.pending[:n])
		st.sendWin -= n
		c.sendConn -= n
		c.blockedBytes -= int(n)
		st.pending = st.pending[:copy(st.pending, st.pending[n:])]
		if end {
			c.sentEnd(st)
		}
	}
}

// dropPending forgets a response the client will not get.
func (c *h2conn) dropPending(st *h2stream) {
	c.blockedBytes -= len(st.pending)
	st.pending = st.pending[:0]
}

func (c *h2conn) flushBlocked() {
	if c.blockedBytes == 0 {
		return
	}
	for i := 0; i < len(c.streams); {
		st := c.streams[i]
		if len(st.pending) > 0 {
			c.send(st)
			if i < len(c.streams) && c.streams[i] != st {
				continue // st was released: streams[i] is the next one
			}
		}
		i++
	}
	c.updateBlocked()
}

func (c *h2conn) updateBlocked() {
	s := c.s
	if c.blockedBytes == 0 {
		s.blockedSince = time.Time{}
	} else if s.blockedSince.IsZero() {
		s.blockedSince = s.now()
	}
}
