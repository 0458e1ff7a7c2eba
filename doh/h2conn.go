package doh

import (
	"encoding/binary"
	"strconv"

	"golang.org/x/net/http2"
)

// The HTTP/2 connection: the preface, the frame loop, connection-level
// frames (SETTINGS, PING, GOAWAY), and the hand-off of stream frames to the
// state machine of h2streams.go.
//
// Invariants:
//   - Every stream frame is dispatched through recvTable; no handler changes
//     a stream's state except to the table's next state or through
//     afterSend.
//   - A connection error queues GOAWAY with the error and sets s.closed; no
//     more input is read. A stream error queues RST_STREAM and the
//     connection goes on; a stream error on an idle stream is a connection
//     error (no RST_STREAM may name an idle stream).
//   - Closing is three separate things: our drain (Shutdown: GOAWAY first,
//     then answer what is in flight), the client's GOAWAY (answer what is in
//     flight, then our GOAWAY), and an error (GOAWAY with the code, at once).
//     In the first two, finished turns true only once every stream that
//     needs an answer has it and our GOAWAY is queued: that is when Closed
//     reports true and the engine closes the socket.

const clientPreface = http2.ClientPreface

const (
	errCodeNo              = http2.ErrCodeNo
	errCodeEnhanceYourCalm = http2.ErrCodeEnhanceYourCalm
)

type h2ErrCode = http2.ErrCode

type h2conn struct {
	s    *Session
	dec  *hpackDecoder
	enc  hpackEncoder
	emit func(Query)
	// emitting holds the path and fields of the query being emitted, taken from its
	// stream and given back to the pool when emit returns: they are read only then.
	emitting Headers

	prefaceDone  bool
	gotSettings  bool
	goneAway     bool   // our GOAWAY is queued
	peerGoAway   bool   // the client sent GOAWAY
	finished     bool   // closing, nothing left to answer: close after the output
	lastStreamID uint32 // highest client stream ID seen
	// lastAccepted is the highest stream taken for processing (not refused):
	// the last stream our GOAWAY names (RFC 9113 6.8).
	lastAccepted uint32

	streams []*h2stream
	free    []*h2stream
	resets  *resetMemory // allocated at the first reset

	// The header block in progress.
	blockOpen      bool // HEADERS seen, END_HEADERS not yet
	blockStream    uint32
	blockEndStream bool
	blockPriority  bool
	blockDependsOn uint32
	blockConts     int
	block          []byte // fragments, when the block spans frames
	head           head

	peerMaxFrame   uint32
	peerInitWindow int64
	sendConn       int64
	recvConn       int64
	recvConsumed   int64
	initRecvWindow int64

	bodyBytes    int
	blockedBytes int

	resetRate, settings, pings rate
}

func (s *Session) startH2() {
	c := &h2conn{
		s:            s,
		peerMaxFrame: maxFrameSize,
		// Before the client's SETTINGS arrive its windows are the defaults.
		peerInitWindow: 65535,
		sendConn:       65535,
		recvConn:       connRecvWindow,
		// The stream window covers a whole body, so a collected body never
		// needs a stream WINDOW_UPDATE; a client may send up to 65535 before
		// it sees our SETTINGS, so never advertise less.
		initRecvWindow: int64(max(s.cfg.maxBody+1024, 65535)),
	}
	c.dec = newHPACKDecoder(headerTableSize, int(s.cfg.maxHeaderList), c)
	c.enc.init()
	c.head.declLen = -1
	s.h2 = c
	c.writeSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: s.cfg.maxStreams},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: uint32(c.initRecvWindow)},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: s.cfg.maxHeaderList},
		http2.Setting{ID: http2.SettingEnablePush, Val: 0},
	)
	c.writeWindowUpdate(0, connRecvWindow-65535)
}

func (c *h2conn) feed(emit func(Query)) error {
	s := c.s
	c.emit = emit
	if !c.prefaceDone {
		in := s.avail()
		n := min(len(in), len(clientPreface))
		if string(in[:n]) != clientPreface[:n] {
			return c.fail(connErr(http2.ErrCodeProtocol, "bad connection preface"))
		}
		if n < len(clientPreface) {
			return nil
		}
		s.off += len(clientPreface)
		c.prefaceDone = true
	}
	for !s.closed {
		f, n, perr := parseFrame(s.avail())
		if n == 0 {
			if perr != nil {
				return c.fail(perr)
			}
			return nil
		}
		s.off += n
		if c.blockOpen && (f.typ != frameContinuation || f.stream != c.blockStream) {
			return c.fail(connErr(http2.ErrCodeProtocol, frameName(f.typ)+" inside a header block"))
		}
		if !c.blockOpen && f.typ == frameContinuation {
			return c.fail(connErr(http2.ErrCodeProtocol, "CONTINUATION without HEADERS"))
		}
		if !c.gotSettings {
			if f.typ != frameSettings || f.has(flagAck) {
				return c.fail(connErr(http2.ErrCodeProtocol, "first frame is not SETTINGS"))
			}
			c.gotSettings = true
		}
		var err error
		if perr != nil {
			err = c.fail(perr)
		} else {
			err = c.frame(&f)
		}
		if err != nil {
			return err
		}
		c.maybeFinish()
		if m := s.memory(); m > s.cfg.maxMem {
			if c.blockedBytes > s.cfg.maxMem/2 {
				return s.abuse(AbuseZeroWindow, "responses held by flow control: "+itoa(c.blockedBytes)+" bytes")
			}
			return s.abuse(AbuseMemory, "buffered "+itoa(m)+" bytes")
		}
	}
	return errClosed
}

// fail acts on a protocol error: GOAWAY and close for a connection error,
// RST_STREAM for a stream error. It returns the error for Feed to return
// (nil for a stream error: the connection goes on).
func (c *h2conn) fail(e *h2Error) error {
	c.s.stats.ProtocolErrors++
	if e.stream != 0 {
		if st, _ := c.stateOf(e.stream); st != stateIdle {
			c.resetStream(e.stream, e.code)
			return nil
		}
		e = connErr(e.code, e.why+" (on an idle stream)")
	}
	c.goAway(e.code)
	c.s.closed = true
	return e
}

func (c *h2conn) goAway(code h2ErrCode) {
	if c.goneAway && code == errCodeNo {
		return
	}
	c.goneAway = true
	c.writeGoAway(c.lastAccepted, code)
}

// closing reports whether the connection takes no new streams.
func (c *h2conn) closing() bool { return c.s.draining || c.peerGoAway || c.goneAway }

// maybeFinish ends a closing connection once nothing needs an answer.
func (c *h2conn) maybeFinish() {
	s := c.s
	if c.finished || s.closed || !(s.draining || c.peerGoAway) {
		return
	}
	for i := 0; i < len(c.streams); {
		st := c.streams[i]
		if st.state == stateHalfClosedLocal && !st.needsAnswer() {
			// Answered early and the connection is closing anyway: ask the
			// client to stop sending (RFC 9113 8.1).
			c.resetStream(st.id, errCodeNo)
			continue
		}
		if st.needsAnswer() {
			return
		}
		i++
	}
	c.goAway(errCodeNo)
	c.finished = true
}

func (c *h2conn) frame(f *frame) error {
	s := c.s
	switch f.typ {
	case frameSettings:
		if c.settings.hit(s.now(), s.cfg.abuseWindow, s.cfg.maxSettings) {
			return s.abuse(AbuseSettingsFlood, "SETTINGS frames over limit")
		}
		if f.has(flagAck) {
			return nil
		}
		for p := f.payload; len(p) >= 6; p = p[6:] {
			if err := c.setting(http2.SettingID(binary.BigEndian.Uint16(p)), binary.BigEndian.Uint32(p[2:])); err != nil {
				return c.fail(err)
			}
		}
		c.writeSettingsAck()
		c.flushBlocked()
	case framePing:
		if c.pings.hit(s.now(), s.cfg.abuseWindow, s.cfg.maxPings) {
			return s.abuse(AbusePingFlood, "PING frames over limit")
		}
		if !f.has(flagAck) {
			c.writePingAck(f.payload)
		}
	case frameGoAway:
		// The client opens no more streams: answer those it has, then close
		// (maybeFinish).
		c.peerGoAway = true
	case frameHeaders:
		if f.stream%2 == 0 {
			return c.fail(connErr(http2.ErrCodeProtocol, "HEADERS on even stream "+itoa(int(f.stream))))
		}
		return c.startBlock(f)
	case frameContinuation:
		return c.continuation(f)
	case frameData:
		return c.data(f)
	case frameRSTStream:
		return c.rstStream(f)
	case frameWindowUpdate:
		return c.windowUpdateFrame(f)
	case framePriority:
		if f.dependsOn == f.stream {
			return c.fail(streamErr(f.stream, http2.ErrCodeProtocol, "stream depends on itself"))
		}
		// Priorities are advice we do not take (RFC 9113 5.3.2).
	}
	// Unknown frame types and PRIORITY_UPDATE are ignored (RFC 9113 5.5).
	return nil
}

func (c *h2conn) setting(id http2.SettingID, v uint32) *h2Error {
	switch id {
	case http2.SettingEnablePush:
		if v > 1 {
			return connErr(http2.ErrCodeProtocol, "SETTINGS_ENABLE_PUSH of "+itoa(int(v)))
		}
	case http2.SettingInitialWindowSize:
		if v > maxWindow {
			return connErr(http2.ErrCodeFlowControl, "SETTINGS_INITIAL_WINDOW_SIZE over 2^31-1")
		}
		return c.initialWindow(v)
	case http2.SettingMaxFrameSize:
		if v < maxFrameSize || v > 1<<24-1 {
			return connErr(http2.ErrCodeProtocol, "SETTINGS_MAX_FRAME_SIZE of "+itoa(int(v)))
		}
		c.peerMaxFrame = v
	case http2.SettingHeaderTableSize:
		c.enc.setPeerLimit(v)
	}
	return nil
}

// recvHeaders handles a complete header block on stream id.
func (c *h2conn) recvHeaders(id uint32, ev recvEvent) error {
	state, st := c.stateOf(id)
	tr := recvTable[state][ev]
	selfDep := c.blockPriority && c.blockDependsOn == id
	switch tr.act {
	case actRequest:
		c.lastStreamID = id
		if selfDep {
			return c.fail(streamErr(id, http2.ErrCodeProtocol, "stream depends on itself"))
		}
		return c.request(id, tr.next)
	case actTrailers:
		if selfDep {
			return c.fail(streamErr(id, http2.ErrCodeProtocol, "stream depends on itself"))
		}
		return c.trailers(st, tr.next)
	case actStreamProtocol:
		return c.fail(streamErr(id, http2.ErrCodeProtocol, "HEADERS without END_STREAM after the request head"))
	case actStreamClosed:
		return c.fail(streamErr(id, http2.ErrCodeStreamClosed, "HEADERS on a "+state.String()+" stream"))
	case actConnClosed:
		return c.fail(connErr(http2.ErrCodeStreamClosed, "HEADERS on closed stream "+itoa(int(id))))
	}
	return nil // actIgnore
}

func (c *h2conn) rstStream(f *frame) error {
	s := c.s
	state, st := c.stateOf(f.stream)
	switch recvTable[state][recvReset].act {
	case actConnProtocol:
		return c.fail(connErr(http2.ErrCodeProtocol, "RST_STREAM on idle stream "+itoa(int(f.stream))))
	case actClientReset:
		if !st.answered || len(st.pending) > 0 {
			if c.resetRate.hit(s.now(), s.cfg.abuseWindow, s.cfg.maxResets) {
				return s.abuse(AbuseRapidReset, "client reset over "+itoa(s.cfg.maxResets)+" unanswered streams")
			}
		}
		c.dropPending(st)
		st.state = stateClosed
		// The engine may still hold the query: the stream stays, counted
		// against MaxConcurrentStreams, until it answers (the rapid-reset
		// defence of Go's net/http).
		c.settle(st)
	}
	return nil
}

func (c *h2conn) windowUpdateFrame(f *frame) error {
	inc := int64(f.increment())
	if f.stream == 0 {
		return c.windowUpdate(nil, inc)
	}
	state, st := c.stateOf(f.stream)
	switch recvTable[state][recvWindowUpdate].act {
	case actConnProtocol:
		return c.fail(connErr(http2.ErrCodeProtocol, "WINDOW_UPDATE on idle stream "+itoa(int(f.stream))))
	case actWindow:
		return c.windowUpdate(st, inc)
	}
	return nil
}

func itoa(n int) string { return strconv.Itoa(n) }
