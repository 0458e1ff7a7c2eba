package doh

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

const clientPreface = http2.ClientPreface

const (
	errCodeNo              = http2.ErrCodeNo
	errCodeEnhanceYourCalm = http2.ErrCodeEnhanceYourCalm

	// defaultMaxFrame is SETTINGS_MAX_FRAME_SIZE's initial value; we never
	// raise it, so one buffered frame is at most 16 kB + 9.
	defaultMaxFrame = 16384
	// connRecvWindow is the connection receive window we grant. Bodies are
	// small; MaxConnMemory bounds what is really held.
	connRecvWindow = 1 << 20
	// hpackBombFactor: a header block decoding to this many times
	// MaxHeaderListSize is an attack, not a big request (431 below it).
	hpackBombFactor = 4
	// headerTableSize is the HPACK dynamic table size both ways (RFC default).
	headerTableSize = 4096
)

// h2stream is one request stream. Streams are recycled through the
// connection's free list, keeping their buffers.
type h2stream struct {
	id       uint32
	recvDone bool // END_STREAM received
	emitted  bool // query handed to the engine, not yet answered
	answered bool // response HEADERS queued
	reset    bool // reset by the client while the engine holds the query
	ignore   bool // answered early: drop further DATA
	sendWin  int64
	recvWin  int64

	body    []byte
	pending []byte // response DATA held back by flow control
	target  []byte // :path

	// Header block state.
	method     method
	ctype      ctype
	declLen    int64 // content-length, -1 if absent
	xff        []byte
	scheme     bool
	hasMethod  bool
	counted    int // body bytes counted in h2conn.bodyBytes
	badHeaders bool
	tooLarge   bool
	sawRegular bool
}

type h2conn struct {
	s   *Session
	fr  *http2.Framer
	dec *hpack.Decoder
	enc *hpack.Encoder
	hb  outBuf // HPACK-encoded response headers

	prefaceDone  bool
	gotSettings  bool
	goneAway     bool
	lastStreamID uint32 // highest client stream ID seen

	streams []*h2stream
	free    []*h2stream

	// Header block in progress (HEADERS then CONTINUATIONs).
	hdr          *h2stream // nil when the block's stream is refused or ignored
	hdrEndStream bool
	hdrTrailers  bool
	hdrRefused   bool
	hdrBytes     int // encoded bytes of the block
	hdrDecoded   int // decoded size (RFC 9113 6.5.2 accounting)
	hdrConts     int

	peerMaxFrame   uint32
	peerInitWindow int64
	sendConn       int64
	recvConn       int64
	recvConsumed   int64
	initRecvWindow int64

	bodyBytes    int
	blockedBytes int

	resets, settings, pings rate

	fields []field
}

func (s *Session) startH2() {
	c := &h2conn{
		s:            s,
		peerMaxFrame: defaultMaxFrame,
		// Before the client's SETTINGS arrive its windows are the defaults.
		peerInitWindow: 65535,
		sendConn:       65535,
		recvConn:       connRecvWindow,
		// The stream window covers a whole body, so no stream WINDOW_UPDATE
		// is ever needed; a client may send up to 65535 before it sees our
		// SETTINGS, so never advertise less.
		initRecvWindow: int64(max(s.cfg.maxBody+1024, 65535)),
	}
	c.fr = http2.NewFramer(&s.out, h2reader{s})
	c.fr.SetReuseFrames()
	c.fr.SetMaxReadFrameSize(defaultMaxFrame)
	c.dec = hpack.NewDecoder(headerTableSize, c.onField)
	c.dec.SetMaxStringLength(int(s.cfg.maxHeaderList))
	c.enc = hpack.NewEncoder(&c.hb)
	s.h2 = c
	c.fr.WriteSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: s.cfg.maxStreams},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: uint32(c.initRecvWindow)},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: s.cfg.maxHeaderList},
		http2.Setting{ID: http2.SettingEnablePush, Val: 0},
	)
	c.fr.WriteWindowUpdate(0, connRecvWindow-65535)
}

// h2reader hands the Framer the buffered input. feed only lets the Framer
// read once a whole frame is buffered, so it never sees a short read.
type h2reader struct{ s *Session }

func (r h2reader) Read(p []byte) (int, error) {
	n := copy(p, r.s.avail())
	if n == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	r.s.off += n
	return n, nil
}

func (c *h2conn) feed(emit func(Query)) error {
	s := c.s
	if !c.prefaceDone {
		in := s.avail()
		n := min(len(in), len(clientPreface))
		if string(in[:n]) != clientPreface[:n] {
			return c.connError(http2.ErrCodeProtocol, "bad connection preface")
		}
		if n < len(clientPreface) {
			return nil
		}
		s.off += len(clientPreface)
		c.prefaceDone = true
	}
	for !s.closed {
		in := s.avail()
		if len(in) < 9 {
			return nil
		}
		length := int(in[0])<<16 | int(in[1])<<8 | int(in[2])
		// An oversized frame fails in ReadFrame right after its header.
		if length <= defaultMaxFrame && len(in) < 9+length {
			return nil
		}
		f, err := c.fr.ReadFrame()
		if err != nil {
			return c.readError(err)
		}
		if !c.gotSettings {
			if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
				return c.connError(http2.ErrCodeProtocol, "first frame is not SETTINGS")
			}
			c.gotSettings = true
		}
		if err := c.frame(f, emit); err != nil {
			return err
		}
		if m := s.memory(); m > s.cfg.maxMem {
			if c.blockedBytes > s.cfg.maxMem/2 {
				return s.abuse(AbuseZeroWindow, "responses held by flow control: "+strconv.Itoa(c.blockedBytes)+" bytes")
			}
			return s.abuse(AbuseMemory, "buffered "+strconv.Itoa(m)+" bytes")
		}
	}
	return errClosed
}

func (c *h2conn) readError(err error) error {
	var ce http2.ConnectionError
	var se http2.StreamError
	switch {
	case errors.Is(err, http2.ErrFrameTooLarge):
		return c.connError(http2.ErrCodeFrameSize, "frame too large")
	case errors.As(err, &se):
		c.rstStream(se.StreamID, se.Code)
		return nil
	case errors.As(err, &ce):
		detail := "frame error"
		if d := c.fr.ErrorDetail(); d != nil {
			detail = d.Error()
		}
		return c.connError(http2.ErrCode(ce), detail)
	}
	return c.connError(http2.ErrCodeProtocol, err.Error())
}

// connError ends the connection with GOAWAY and the error code.
func (c *h2conn) connError(code http2.ErrCode, why string) error {
	c.s.stats.ProtocolErrors++
	c.goAway(code, nil)
	c.s.closed = true
	return fmt.Errorf("doh: h2 %v: %s", code, why)
}

func (c *h2conn) goAway(code http2.ErrCode, debug []byte) {
	if c.goneAway && code == errCodeNo {
		return
	}
	c.goneAway = true
	c.fr.WriteGoAway(c.lastStreamID, code, debug)
}

func (c *h2conn) frame(f http2.Frame, emit func(Query)) error {
	s := c.s
	switch f := f.(type) {
	case *http2.SettingsFrame:
		if c.settings.hit(s.now(), s.cfg.abuseWindow, s.cfg.maxSettings) {
			return s.abuse(AbuseSettingsFlood, "SETTINGS frames over limit")
		}
		if f.IsAck() {
			return nil
		}
		if err := f.ForeachSetting(c.setting); err != nil {
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				return c.connError(http2.ErrCode(ce), "bad setting")
			}
			return c.connError(http2.ErrCodeProtocol, err.Error())
		}
		c.fr.WriteSettingsAck()
		c.flushBlocked()
	case *http2.PingFrame:
		if c.pings.hit(s.now(), s.cfg.abuseWindow, s.cfg.maxPings) {
			return s.abuse(AbusePingFlood, "PING frames over limit")
		}
		if !f.IsAck() {
			c.fr.WritePing(true, f.Data)
		}
	case *http2.HeadersFrame:
		return c.headers(f, emit)
	case *http2.ContinuationFrame:
		c.hdrConts++
		c.hdrBytes += len(f.HeaderBlockFragment())
		if c.hdrConts > s.cfg.maxContinuations || c.hdrBytes > 2*int(s.cfg.maxHeaderList) {
			return s.abuse(AbuseContinuationFlood, "header block of "+strconv.Itoa(c.hdrConts)+" CONTINUATION frames, "+strconv.Itoa(c.hdrBytes)+" bytes")
		}
		return c.headerFragment(f.HeaderBlockFragment(), f.HeadersEnded(), emit)
	case *http2.DataFrame:
		return c.data(f, emit)
	case *http2.WindowUpdateFrame:
		return c.windowUpdate(f)
	case *http2.RSTStreamFrame:
		return c.rstFromClient(f)
	case *http2.GoAwayFrame:
		// The client will open no more streams; answer what it asked.
		s.draining = true
	case *http2.PushPromiseFrame:
		return c.connError(http2.ErrCodeProtocol, "PUSH_PROMISE from client")
	}
	// PRIORITY, PRIORITY_UPDATE and unknown frames are ignored (RFC 9113 5.5, 5.3.2).
	return nil
}

func (c *h2conn) setting(st http2.Setting) error {
	if err := st.Valid(); err != nil {
		return err
	}
	switch st.ID {
	case http2.SettingInitialWindowSize:
		delta := int64(st.Val) - c.peerInitWindow
		c.peerInitWindow = int64(st.Val)
		for _, str := range c.streams {
			str.sendWin += delta
			if str.sendWin > math.MaxInt32 {
				return http2.ConnectionError(http2.ErrCodeFlowControl)
			}
		}
	case http2.SettingMaxFrameSize:
		c.peerMaxFrame = st.Val
	case http2.SettingHeaderTableSize:
		c.enc.SetMaxDynamicTableSizeLimit(min(st.Val, headerTableSize))
	}
	return nil
}

func (c *h2conn) find(id uint32) *h2stream {
	for _, st := range c.streams {
		if st.id == id {
			return st
		}
	}
	return nil
}

func (c *h2conn) headers(f *http2.HeadersFrame, emit func(Query)) error {
	s := c.s
	id := f.StreamID
	c.hdr, c.hdrTrailers, c.hdrRefused = nil, false, false
	c.hdrEndStream = f.StreamEnded()
	c.hdrBytes, c.hdrDecoded, c.hdrConts = len(f.HeaderBlockFragment()), 0, 0
	if id%2 == 0 {
		return c.connError(http2.ErrCodeProtocol, "even stream ID "+strconv.Itoa(int(id)))
	}
	if id <= c.lastStreamID {
		st := c.find(id)
		if st == nil || st.recvDone {
			return c.connError(http2.ErrCodeStreamClosed, "HEADERS on closed stream")
		}
		if !c.hdrEndStream {
			return c.connError(http2.ErrCodeProtocol, "trailers without END_STREAM")
		}
		c.hdrTrailers = true
		c.hdr = st
	} else {
		c.lastStreamID = id
		if c.goneAway || s.draining || len(c.streams) >= int(s.cfg.maxStreams) {
			// The header block must still be decoded to keep HPACK in step.
			c.hdrRefused = true
		} else {
			st := c.newStream(id)
			c.hdr = st
		}
	}
	if c.hdrBytes > 2*int(s.cfg.maxHeaderList) {
		return s.abuse(AbuseContinuationFlood, "header block of "+strconv.Itoa(c.hdrBytes)+" bytes")
	}
	return c.headerFragment(f.HeaderBlockFragment(), f.HeadersEnded(), emit)
}

func (c *h2conn) newStream(id uint32) *h2stream {
	var st *h2stream
	if n := len(c.free); n > 0 {
		st = c.free[n-1]
		c.free = c.free[:n-1]
		body, pending, target, xff := st.body[:0], st.pending[:0], st.target[:0], st.xff[:0]
		*st = h2stream{body: body, pending: pending, target: target, xff: xff}
	} else {
		st = &h2stream{}
	}
	st.id = id
	st.declLen = -1
	st.sendWin = c.peerInitWindow
	st.recvWin = c.initRecvWindow
	c.streams = append(c.streams, st)
	return st
}

func (c *h2conn) release(st *h2stream) {
	for i, x := range c.streams {
		if x == st {
			c.streams = append(c.streams[:i], c.streams[i+1:]...)
			break
		}
	}
	c.bodyBytes -= st.counted
	c.blockedBytes -= len(st.pending)
	if cap(st.body) > 4096 {
		st.body = nil
	}
	if cap(st.pending) > 4096 {
		st.pending = nil
	}
	c.free = append(c.free, st)
}

// onField is the HPACK decoder's emit function. It accounts every decoded
// field, kept or not, so that a block decoding to far more than it weighs
// on the wire (an HPACK bomb) is seen.
func (c *h2conn) onField(hf hpack.HeaderField) {
	c.hdrDecoded += int(hf.Size())
	st := c.hdr
	if st == nil || c.hdrTrailers {
		return
	}
	if c.hdrDecoded > int(c.s.cfg.maxHeaderList) {
		st.tooLarge = true
		return
	}
	name := hf.Name
	if len(name) > 0 && name[0] == ':' {
		if st.sawRegular {
			st.badHeaders = true
			return
		}
		switch name {
		case ":method":
			st.hasMethod = true
			st.method = parseMethod([]byte(hf.Value))
		case ":path":
			st.target = append(st.target[:0], hf.Value...)
		case ":scheme":
			st.scheme = true
		case ":authority":
		default:
			st.badHeaders = true
		}
		return
	}
	st.sawRegular = true
	switch name {
	case "content-type":
		st.ctype = parseContentType([]byte(hf.Value))
	case "content-length":
		n, err := strconv.ParseInt(hf.Value, 10, 64)
		if err != nil || n < 0 {
			st.badHeaders = true
		}
		st.declLen = n
	case "x-forwarded-for":
		st.xff = append(st.xff[:0], hf.Value...)
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		// Connection-specific fields make an HTTP/2 request malformed (RFC 9113 8.2.2).
		st.badHeaders = true
	}
	for i := 0; i < len(name); i++ {
		if 'A' <= name[i] && name[i] <= 'Z' {
			st.badHeaders = true
		}
	}
}

func (c *h2conn) headerFragment(frag []byte, ended bool, emit func(Query)) error {
	s := c.s
	if _, err := c.dec.Write(frag); err != nil {
		if errors.Is(err, hpack.ErrStringLength) {
			return s.abuse(AbuseHPACKBomb, "header string over max_header_list_size")
		}
		return c.connError(http2.ErrCodeCompression, err.Error())
	}
	if c.hdrDecoded > hpackBombFactor*int(s.cfg.maxHeaderList) {
		return s.abuse(AbuseHPACKBomb, "header block decodes to "+strconv.Itoa(c.hdrDecoded)+" bytes from "+strconv.Itoa(c.hdrBytes))
	}
	if !ended {
		return nil
	}
	if err := c.dec.Close(); err != nil {
		return c.connError(http2.ErrCodeCompression, err.Error())
	}
	st := c.hdr
	c.hdr = nil
	if c.hdrRefused {
		s.stats.Abuse[AbuseRefusedStream]++
		c.fr.WriteRSTStream(c.lastStreamID, http2.ErrCodeRefusedStream)
		return nil
	}
	if c.hdrTrailers {
		return c.endOfBody(st, emit)
	}
	st.recvDone = c.hdrEndStream
	if st.tooLarge {
		s.stats.Abuse[AbuseHeaderListSize]++
		c.reject(st, reject{431, statusBody(431)})
		return nil
	}
	if st.badHeaders || !st.scheme || len(st.target) == 0 || !st.hasMethod {
		s.stats.ProtocolErrors++
		c.rstStream(st.id, http2.ErrCodeProtocol)
		return nil
	}
	if rj := s.cfg.route(st.method, st.target, st.ctype, &st.body); !rj.ok() {
		c.reject(st, rj)
		return nil
	}
	if st.method == methodPOST {
		if st.declLen > int64(s.cfg.maxBody) {
			c.reject(st, reject{413, statusBody(413)})
			return nil
		}
		if st.recvDone {
			return c.endOfBody(st, emit)
		}
		return nil
	}
	// GET: route decoded the query into st.body.
	c.bodyBytes += len(st.body)
	st.counted += len(st.body)
	if !st.recvDone {
		// A GET with a body is odd but legal; answer now, drop the body.
		st.ignore = true
	}
	return c.query(st, emit)
}

func (c *h2conn) endOfBody(st *h2stream, emit func(Query)) error {
	st.recvDone = true
	if st.ignore {
		c.maybeRelease(st)
		return nil
	}
	if st.declLen >= 0 && st.declLen != int64(len(st.body)) {
		c.s.stats.ProtocolErrors++
		c.rstStream(st.id, http2.ErrCodeProtocol)
		return nil
	}
	return c.query(st, emit)
}

func (c *h2conn) query(st *h2stream, emit func(Query)) error {
	if rj := checkBody(st.body); !rj.ok() {
		c.reject(st, rj)
		return nil
	}
	q := Query{ID: uint64(st.id), Msg: st.body}
	if c.s.cfg.trustXFF && len(st.xff) > 0 {
		q.ForwardedFor = forwardedFor(st.xff)
	}
	st.emitted = true
	c.s.stats.Queries++
	emit(q) // may Respond at once and recycle st: do not touch st after this
	return nil
}

func (c *h2conn) data(f *http2.DataFrame, emit func(Query)) error {
	s := c.s
	n := int64(f.Length)
	c.recvConn -= n
	if c.recvConn < 0 {
		return c.connError(http2.ErrCodeFlowControl, "DATA beyond the connection window")
	}
	// Refill the connection window as soon as half of it is used: what the
	// bytes cost in memory is bounded by MaxConnMemory, not by the window.
	c.recvConsumed += n
	if c.recvConsumed >= connRecvWindow/2 {
		c.fr.WriteWindowUpdate(0, uint32(c.recvConsumed))
		c.recvConn += c.recvConsumed
		c.recvConsumed = 0
	}
	st := c.find(f.StreamID)
	if st == nil {
		if f.StreamID > c.lastStreamID {
			return c.connError(http2.ErrCodeProtocol, "DATA on idle stream")
		}
		return nil // a stream we reset or refused: ignore (RFC 9113 5.1)
	}
	if st.recvDone {
		c.rstStream(st.id, http2.ErrCodeStreamClosed)
		return nil
	}
	st.recvWin -= n
	if st.recvWin < 0 {
		c.rstStream(st.id, http2.ErrCodeFlowControl)
		return nil
	}
	if !st.ignore {
		d := f.Data()
		if len(st.body)+len(d) > s.cfg.maxBody {
			c.reject(st, reject{413, statusBody(413)})
		} else {
			st.body = append(st.body, d...)
			c.bodyBytes += len(d)
			st.counted += len(d)
		}
	}
	if f.StreamEnded() {
		return c.endOfBody(st, emit)
	}
	return nil
}

func (c *h2conn) windowUpdate(f *http2.WindowUpdateFrame) error {
	inc := int64(f.Increment)
	if f.StreamID == 0 {
		c.sendConn += inc
		if c.sendConn > math.MaxInt32 {
			return c.connError(http2.ErrCodeFlowControl, "connection window over 2^31-1")
		}
	} else if st := c.find(f.StreamID); st != nil {
		st.sendWin += inc
		if st.sendWin > math.MaxInt32 {
			c.rstStream(st.id, http2.ErrCodeFlowControl)
			return nil
		}
	} else if f.StreamID > c.lastStreamID {
		return c.connError(http2.ErrCodeProtocol, "WINDOW_UPDATE on idle stream")
	}
	c.flushBlocked()
	return nil
}

func (c *h2conn) rstFromClient(f *http2.RSTStreamFrame) error {
	s := c.s
	st := c.find(f.StreamID)
	if st == nil {
		if f.StreamID > c.lastStreamID {
			return c.connError(http2.ErrCodeProtocol, "RST_STREAM on idle stream")
		}
		return nil
	}
	if !st.answered || len(st.pending) > 0 {
		if c.resets.hit(s.now(), s.cfg.abuseWindow, s.cfg.maxResets) {
			return s.abuse(AbuseRapidReset, "client reset over "+strconv.Itoa(s.cfg.maxResets)+" unanswered streams")
		}
	}
	c.blockedBytes -= len(st.pending)
	st.pending = st.pending[:0]
	if st.emitted {
		// The engine still holds st.body: keep the stream, counted against
		// MaxConcurrentStreams, until it answers (the rapid-reset defence of
		// RFC 9113 errata and Go's net/http).
		st.reset = true
		return nil
	}
	c.release(st)
	return nil
}

// rstStream resets a stream we give up on.
func (c *h2conn) rstStream(id uint32, code http2.ErrCode) {
	c.fr.WriteRSTStream(id, code)
	if st := c.find(id); st != nil {
		if st.emitted {
			st.reset = true
			c.blockedBytes -= len(st.pending)
			st.pending = st.pending[:0]
			return
		}
		c.release(st)
	}
}

// reject answers a stream with an error status before it reaches the engine.
func (c *h2conn) reject(st *h2stream, rj reject) {
	st.ignore = true
	c.writeResponse(st, rj.status, []byte(rj.body), false)
}

func (c *h2conn) respond(id uint64, status int, msg []byte) {
	s := c.s
	st := c.find(uint32(id))
	if st == nil || id > math.MaxUint32 || !st.emitted {
		s.stats.Abandoned++
		return
	}
	st.emitted = false
	if st.reset || s.closed {
		s.stats.Abandoned++
		c.release(st)
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
		s.abuse(AbuseZeroWindow, "responses held by flow control: "+strconv.Itoa(c.blockedBytes)+" bytes")
	}
}

func (c *h2conn) writeResponse(st *h2stream, status int, body []byte, isDNS bool) {
	s := c.s
	s.stats.Responses[statusFor(status)]++
	st.answered = true
	c.hb.b = c.hb.b[:0]
	c.enc.WriteField(hpack.HeaderField{Name: ":status", Value: strconv.Itoa(status)})
	c.fields = s.cfg.responseFields(c.fields[:0], status, body, isDNS)
	for _, f := range c.fields {
		c.enc.WriteField(hpack.HeaderField{Name: f.name, Value: f.value})
	}
	block := c.hb.b
	max := int(c.peerMaxFrame)
	first := min(len(block), max)
	c.fr.WriteHeaders(http2.HeadersFrameParam{
		StreamID:      st.id,
		BlockFragment: block[:first],
		EndStream:     len(body) == 0,
		EndHeaders:    first == len(block),
	})
	for block = block[first:]; len(block) > 0; {
		n := min(len(block), max)
		c.fr.WriteContinuation(st.id, n == len(block), block[:n])
		block = block[n:]
	}
	st.pending = append(st.pending, body...)
	c.blockedBytes += len(body)
	c.send(st)
	c.maybeRelease(st)
	c.updateBlocked()
}

// send writes as much of st.pending as the windows allow.
func (c *h2conn) send(st *h2stream) {
	for len(st.pending) > 0 {
		n := int64(len(st.pending))
		n = min(n, st.sendWin, c.sendConn, int64(c.peerMaxFrame))
		if n <= 0 {
			return
		}
		end := n == int64(len(st.pending))
		c.fr.WriteData(st.id, end, st.pending[:n])
		st.sendWin -= n
		c.sendConn -= n
		c.blockedBytes -= int(n)
		st.pending = st.pending[:copy(st.pending, st.pending[n:])]
	}
}

// maybeRelease frees a stream whose response is fully written and whose
// request is fully read (or will be ignored).
func (c *h2conn) maybeRelease(st *h2stream) {
	if !st.answered || len(st.pending) > 0 {
		return
	}
	if !st.recvDone {
		// We answered before the request ended (an error): tell the client
		// to stop sending (RFC 9113 8.1).
		c.fr.WriteRSTStream(st.id, http2.ErrCodeNo)
	}
	c.release(st)
}

func (c *h2conn) flushBlocked() {
	if c.blockedBytes == 0 {
		return
	}
	for i := 0; i < len(c.streams); {
		st := c.streams[i]
		if len(st.pending) > 0 && st.answered {
			c.send(st)
			if len(st.pending) == 0 {
				c.maybeRelease(st)
				continue
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
