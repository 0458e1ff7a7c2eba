package doh

import (
	"math"

	"golang.org/x/net/http2"
)

// Requests on HTTP/2 streams: from a complete head, through the body, to
// the query handed to the engine and the response written back.
//
// Invariants:
//   - A query is emitted once, when the client's END_STREAM has arrived
//     (half-closed (remote)), the head was well formed, the content-length
//     (if any) matched the DATA, and the DNS message passed checkBody.
//   - While the engine holds a query (engineHolds) its stream stays
//     allocated, whatever the client does; Respond or Fail releases it.
//   - A response is written only on a half-closed (remote) stream, or as an
//     early error response on an open one (which then turns half-closed
//     (local)).
//   - The content-length check runs before a frame moves the stream, so a
//     mismatch is always a stream error on a stream still open to the client.

// request handles a request head on a new stream.
func (c *h2conn) request(id uint32, next streamState) error {
	s := c.s
	h := &c.head
	// The fields go to the stream, or back to the pool when there is none.
	fields := h.fields
	h.fields = Headers{}
	if c.closing() || len(c.streams) >= int(s.cfg.maxStreams) {
		fields.release()
		if !c.closing() {
			s.stats.Abuse[AbuseRefusedStream]++
		}
		// REFUSED_STREAM: the client may retry it elsewhere (RFC 9113 8.7).
		c.writeRSTStream(id, http2.ErrCodeRefusedStream)
		c.addReset(id)
		return nil
	}
	c.lastAccepted = id
	if !h.tooLarge {
		h.checkRequest()
		if h.bad != "" {
			fields.release()
			return c.fail(streamErr(id, http2.ErrCodeProtocol, h.bad))
		}
	}
	st := c.newStream(id, next)
	st.hdrs = fields
	st.hdrs.setPath(h.target)
	st.declLen = h.declLen
	st.xff = append(st.xff[:0], h.xff...)
	if h.tooLarge {
		s.stats.Abuse[AbuseHeaderListSize]++
		c.reject(st, reject{431, statusBody(431)})
		return nil
	}
	var rj reject
	if h.connect {
		rj = reject{405, "method not allowed\n"}
	} else {
		rj = s.cfg.route(h.method, h.target, h.ctype, &st.body)
	}
	if !rj.ok() {
		c.reject(st, rj)
		return nil
	}
	if h.method == methodPOST {
		st.collect = true
		if st.declLen > int64(s.cfg.maxBody) {
			c.reject(st, reject{413, statusBody(413)})
			return nil
		}
	} else {
		// GET: route decoded the query into st.body.
		c.bodyBytes += len(st.body)
		st.counted += len(st.body)
	}
	if st.state == stateHalfClosedRemote {
		return c.endRequest(st)
	}
	return nil
}

// trailers ends a request with a trailer section.
func (c *h2conn) trailers(st *h2stream, next streamState) error {
	h := &c.head
	switch {
	case h.tooLarge:
		return c.fail(streamErr(st.id, http2.ErrCodeProtocol, "trailers over max_header_list_size"))
	case h.bad != "":
		return c.fail(streamErr(st.id, http2.ErrCodeProtocol, h.bad))
	case st.declLen >= 0 && st.received != st.declLen:
		return c.fail(streamErr(st.id, http2.ErrCodeProtocol, "content-length "+itoa(int(st.declLen))+", body "+itoa(int(st.received))))
	}
	st.state = next
	return c.endRequest(st)
}

func (c *h2conn) data(f *frame) error {
	s := c.s
	n := int64(f.length)
	if err := c.recvConnData(n); err != nil {
		return err
	}
	end := f.has(flagEndStream)
	ev := recvData
	if end {
		ev = recvDataEnd
	}
	state, st := c.stateOf(f.stream)
	tr := recvTable[state][ev]
	switch tr.act {
	case actConnProtocol:
		return c.fail(connErr(http2.ErrCodeProtocol, "DATA on idle stream "+itoa(int(f.stream))))
	case actStreamClosed:
		return c.fail(streamErr(f.stream, http2.ErrCodeStreamClosed, "DATA on a "+state.String()+" stream"))
	case actIgnore:
		return nil
	}
	// actBody or actDiscard.
	st.recvWin -= n
	if st.recvWin < 0 {
		return c.fail(streamErr(st.id, http2.ErrCodeFlowControl, "DATA beyond the stream window"))
	}
	d := f.payload
	got := st.received + int64(len(d))
	if st.declLen >= 0 && (got > st.declLen || end && got < st.declLen) {
		return c.fail(streamErr(st.id, http2.ErrCodeProtocol, "content-length "+itoa(int(st.declLen))+", body "+itoa(int(got))))
	}
	st.received = got
	st.state = tr.next
	if tr.act == actBody && st.collect && !st.answered {
		if len(st.body)+len(d) > s.cfg.maxBody {
			c.reject(st, reject{413, statusBody(413)})
			return nil
		}
		st.body = append(st.body, d...)
		c.bodyBytes += len(d)
		st.counted += len(d)
	} else if !end {
		c.giveBack(st, n)
	}
	if end {
		return c.endRequest(st)
	}
	return nil
}

// endRequest runs when the client's END_STREAM arrived: the request is
// complete, or the stream, answered early, is done.
func (c *h2conn) endRequest(st *h2stream) error {
	if st.answered || st.state != stateHalfClosedRemote {
		c.settle(st)
		return nil
	}
	return c.query(st)
}

func (c *h2conn) query(st *h2stream) error {
	if rj := checkBody(st.body); !rj.ok() {
		c.reject(st, rj)
		return nil
	}
	c.emitting, st.hdrs = st.hdrs, Headers{}
	q := Query{ID: uint64(st.id), Msg: st.body, Path: c.emitting.Path(), Headers: &c.emitting}
	if len(st.xff) > 0 {
		q.ForwardedFor = forwardedFor(st.xff)
	}
	st.engineHolds = true
	c.s.stats.Queries++
	c.emit(q) // may Respond at once and recycle st: do not touch st after this
	c.emitting.release()
	return nil
}

// reject answers a stream with an error status before it reaches the engine.
func (c *h2conn) reject(st *h2stream, rj reject) {
	c.writeResponse(st, rj.status, []byte(rj.body), false)
}

func (c *h2conn) respond(id uint64, status int, msg []byte) {
	s := c.s
	if id > math.MaxUint32 {
		s.stats.Abandoned++
		return
	}
	st := c.find(uint32(id))
	if st == nil || !st.engineHolds {
		s.stats.Abandoned++
		return
	}
	st.engineHolds = false
	if st.state != stateHalfClosedRemote || s.closed {
		s.stats.Abandoned++
		c.settle(st)
		c.maybeFinish()
		return
	}
	s.lastActive = s.now()
	if status == 200 {
		c.writeResponse(st, 200, msg, true)
	} else {
		c.writeResponse(st, status, []byte(statusBody(status)), false)
	}
	if c.blockedBytes > s.cfg.maxMem/2 {
		// The client reads nothing: stop before it pins more memory.
		s.abuse(AbuseZeroWindow, "responses held by flow control: "+itoa(c.blockedBytes)+" bytes")
		return
	}
	c.maybeFinish()
}
