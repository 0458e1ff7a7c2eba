package doh

import (
	"encoding/binary"
	"errors"
	"slices"
	"strconv"

	"github.com/valyala/bytebufferpool"
	"golang.org/x/net/http2"
)

// Header blocks: assembling HEADERS and CONTINUATION frames, decoding them,
// and judging the fields with the rules Go's own server applies
// (x/net/http2 Framer.ReadMetaHeaders and net/http's checks, RFC 9113 8.2
// and 8.3), and encoding response headers.
//
// Invariants:
//   - A header block is decoded exactly once, whole, at END_HEADERS, whatever
//     becomes of its stream (refused, reset, trailers): HPACK state is shared
//     by the connection and must see every block.
//   - A block in progress is bounded: at most MaxContinuationFrames
//     CONTINUATIONs and 2 × MaxHeaderListSize encoded bytes (the
//     CONTINUATION-flood defence), and decoding stops at hpackBombFactor ×
//     MaxHeaderListSize decoded bytes (the HPACK-bomb defence); both end the
//     connection with ENHANCE_YOUR_CALM.
//   - A malformed request (RFC 9113 8.1.1) is a stream error PROTOCOL_ERROR,
//     never a response: the first rule broken is kept in head.bad for the log.

const (
	// hpackBombFactor: a header block decoding to this many times
	// MaxHeaderListSize is an attack, not a big request (431 below it).
	hpackBombFactor = 4
	// headerTableSize is the HPACK dynamic table size both ways (RFC default).
	headerTableSize = 4096
)

// head is what the fields of the block being decoded say. It is reset at
// each block.
type head struct {
	trailers bool
	decoded  int // RFC 9113 6.5.2 size of the fields so far
	tooLarge bool
	bad      string // the first rule broken; "" if none

	sawRegular                               bool
	method                                   method
	connect                                  bool
	hasMethod, hasScheme, hasPath, hasAuthor bool
	ctype                                    ctype
	declLen                                  int64
	target                                   []byte // :path
	xff                                      []byte
	fields                                   Headers // the regular fields, for the rules; request moves them to the stream
}

func (h *head) reset(trailers bool) {
	target, xff := h.target[:0], h.xff[:0]
	h.fields.release()
	*h = head{trailers: trailers, declLen: -1, target: target, xff: xff}
}

func (h *head) malformed(why string) {
	if h.bad == "" {
		h.bad = why
	}
}

// field is the HPACK decoder's sink: every field of every block passes here.
func (c *h2conn) field(name, value []byte) bool {
	h := &c.head
	h.decoded += len(name) + len(value) + 32
	if h.decoded > hpackBombFactor*int(c.s.cfg.maxHeaderList) {
		return false
	}
	if h.decoded > int(c.s.cfg.maxHeaderList) {
		h.tooLarge = true
	}
	if h.tooLarge || h.bad != "" {
		return true // keep decoding for the HPACK state only
	}
	if !validFieldValue(value) {
		h.malformed("invalid character in the value of " + string(name))
		return true
	}
	if len(name) > 0 && name[0] == ':' {
		c.pseudo(name, value)
		return true
	}
	h.sawRegular = true
	if !validFieldName(name) {
		h.malformed("invalid field name " + strconv.Quote(string(name)))
		return true
	}
	if !h.trailers {
		h.fields.add(name, value)
	}
	switch string(name) {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		// Connection-specific fields make a message malformed (RFC 9113 8.2.2).
		h.malformed("connection-specific field " + string(name))
	case "te":
		if string(value) != "trailers" {
			h.malformed("te other than trailers")
		}
	case "content-length":
		n, ok := parseContentLength(value)
		if !ok || (h.declLen >= 0 && h.declLen != n) {
			h.malformed("bad content-length")
		}
		h.declLen = n
	case "content-type":
		h.ctype = parseContentType(value)
	case "x-forwarded-for":
		if c.s.cfg.trustXFF {
			h.xff = append(h.xff[:0], value...)
		}
	}
	return true
}

func (c *h2conn) pseudo(name, value []byte) {
	h := &c.head
	switch {
	case h.trailers:
		h.malformed("pseudo-header field in trailers")
		return
	case h.sawRegular:
		h.malformed("pseudo-header field after a regular field")
		return
	}
	var seen *bool
	switch string(name) {
	case ":method":
		seen = &h.hasMethod
		h.method = parseMethod(value)
		h.connect = string(value) == "CONNECT"
	case ":scheme":
		seen = &h.hasScheme
		if string(value) != "https" && string(value) != "http" {
			h.malformed(":scheme is neither https nor http")
		}
	case ":path":
		seen = &h.hasPath
		h.target = append(h.target[:0], value...)
	case ":authority":
		seen = &h.hasAuthor
	default:
		// :status is a response field; :protocol needs SETTINGS_ENABLE_CONNECT_PROTOCOL,
		// which we do not send.
		h.malformed("unknown pseudo-header field " + string(name))
		return
	}
	if *seen {
		h.malformed("duplicate " + string(name))
	}
	*seen = true
}

// checkRequest applies RFC 9113 8.3.1 to a complete request head.
func (h *head) checkRequest() {
	switch {
	case h.connect:
		// 8.5: CONNECT carries only :method and :authority. A well-formed one
		// is answered 405 by route.
		if h.hasScheme || h.hasPath || !h.hasAuthor {
			h.malformed("malformed CONNECT")
		}
	case !h.hasMethod:
		h.malformed("missing :method")
	case !h.hasScheme:
		h.malformed("missing :scheme")
	case !h.hasPath || len(h.target) == 0:
		h.malformed("missing or empty :path")
	}
}

// validFieldName: lowercase token characters (RFC 9113 8.2.1, RFC 9110 5.1).
func validFieldName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c >= 0x80 || !tokenChar[c] || ('A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// validFieldValue: no NUL, CR, LF or other control other than HTAB (RFC
// 9113 8.2.1), as httpguts.ValidHeaderFieldValue.
func validFieldValue(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// tokenChar marks the tchar of RFC 9110 5.6.2.
var tokenChar = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func parseContentLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// startBlock begins a header block with the HEADERS frame f.
func (c *h2conn) startBlock(f *frame) error {
	c.blockOpen = true
	c.blockStream = f.stream
	c.blockEndStream = f.has(flagEndStream)
	c.blockPriority, c.blockDependsOn = f.hasPriority, f.dependsOn
	c.blockConts = 0
	c.block = c.block[:0]
	if f.has(flagEndHeaders) {
		// The common case: the whole block in one frame, decoded in place.
		c.blockOpen = false
		return c.endBlock(f.payload)
	}
	return c.addFragment(f.payload)
}

func (c *h2conn) continuation(f *frame) error {
	c.blockConts++
	if c.blockConts > c.s.cfg.maxContinuations {
		return c.s.abuse(AbuseContinuationFlood, "header block of "+itoa(c.blockConts)+" CONTINUATION frames")
	}
	if err := c.addFragment(f.payload); err != nil {
		return err
	}
	if !f.has(flagEndHeaders) {
		return nil
	}
	c.blockOpen = false
	return c.endBlock(c.block)
}

func (c *h2conn) addFragment(p []byte) error {
	if len(c.block)+len(p) > 2*int(c.s.cfg.maxHeaderList) {
		return c.s.abuse(AbuseContinuationFlood, "header block of "+itoa(len(c.block)+len(p))+" bytes")
	}
	c.block = append(c.block, p...)
	return nil
}

// endBlock decodes a complete header block and hands it to the stream
// state machine.
func (c *h2conn) endBlock(block []byte) error {
	s := c.s
	if len(block) > 2*int(s.cfg.maxHeaderList) {
		return s.abuse(AbuseContinuationFlood, "header block of "+itoa(len(block))+" bytes")
	}
	id := c.blockStream
	state, _ := c.stateOf(id)
	c.head.reset(state != stateIdle)
	if err := c.dec.decode(block); err != nil {
		switch {
		case errors.Is(err, errHPACKString):
			return s.abuse(AbuseHPACKBomb, "header string over max_header_list_size")
		case errors.Is(err, errHPACKStop):
			return s.abuse(AbuseHPACKBomb, "header block decodes to over "+itoa(c.head.decoded)+" bytes from "+itoa(len(block)))
		}
		return c.fail(connErr(http2.ErrCodeCompression, err.Error()))
	}
	if cap(c.block) > 64<<10 {
		c.block = nil
	}
	ev := recvHeaders
	if c.blockEndStream {
		ev = recvHeadersEnd
	}
	return c.recvHeaders(id, ev)
}

// writeResponse queues a response: HEADERS (and CONTINUATIONs) now, the body
// as flow control allows. The header block is encoded in place, after room
// for its frame header.
func (c *h2conn) writeResponse(st *h2stream, status int, body []byte, isDNS bool) {
	s := c.s
	s.stats.Responses[statusFor(status)]++
	st.answered = true
	e := &c.enc
	out := s.out.bytes()
	start := len(out)
	out = append(out, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	out = e.begin(out)
	out = e.field(out, ":status", statusString(status), statusIndex(status), 8, true)
	ctype := "text/plain; charset=utf-8"
	if isDNS {
		ctype = "application/dns-message"
	}
	out = e.field(out, "content-type", ctype, 0, 31, true)
	if status == 405 {
		out = e.field(out, "allow", "GET, POST", 0, 22, true)
	}
	out = e.number(out, "content-length", "", int64(len(body)), 28)
	if isDNS && s.cfg.cacheControl {
		ttl, ok := minTTL(body)
		if !ok {
			ttl = 0
		}
		out = e.number(out, "cache-control", "max-age=", int64(ttl), 24)
	}
	for _, f := range s.cfg.custom {
		out = e.field(out, f.Key, f.Value, 0, staticNameIndex(f.Key), true)
	}
	var flags uint8
	if len(body) == 0 {
		flags = flagEndStream
	}
	max := int(c.peerMaxFrame)
	var rest []byte
	n := len(out) - start - frameHeaderLen
	if n > max {
		// Only very large custom headers get here: what does not fit goes
		// in CONTINUATION frames.
		rest = slices.Clone(out[start+frameHeaderLen+max:])
		out, n = out[:start+frameHeaderLen+max], max
	} else {
		flags |= flagEndHeaders
	}
	h := out[start:]
	h[0], h[1], h[2], h[3], h[4] = byte(n>>16), byte(n>>8), byte(n), byte(frameHeaders), flags
	binary.BigEndian.PutUint32(h[5:], st.id)
	s.out.set(out)
	for len(rest) > 0 {
		n := min(len(rest), max)
		var f uint8
		if n == len(rest) {
			f = flagEndHeaders
		}
		c.frameHeader(n, frameContinuation, f, st.id)
		s.out.append(rest[:n]...)
		rest = rest[n:]
	}
	if len(body) == 0 {
		c.sentEnd(st)
		return
	}
	if n := int64(len(body)); n <= st.sendWin && n <= c.sendConn && n <= int64(c.peerMaxFrame) {
		// The usual case: the whole body fits the windows and one frame, and
		// is written at once, without a copy in pending.
		c.writeData(st.id, true, body)
		st.sendWin -= n
		c.sendConn -= n
		c.sentEnd(st)
		return
	}
	if st.pendBuf == nil {
		st.pendBuf = bytebufferpool.Get()
		st.pending = st.pendBuf.B[:0]
	}
	st.pending = append(st.pending, body...)
	c.blockedBytes += len(body)
	c.send(st)
	c.updateBlocked()
}

// statusIndex is the static table index of ":status: code", 0 if none.
func statusIndex(code int) int {
	switch code {
	case 200:
		return 8
	case 204:
		return 9
	case 206:
		return 10
	case 304:
		return 11
	case 400:
		return 12
	case 404:
		return 13
	case 500:
		return 14
	}
	return 0
}

func statusString(code int) string {
	switch code {
	case 200:
		return "200"
	case 400:
		return "400"
	case 403:
		return "403"
	case 404:
		return "404"
	case 405:
		return "405"
	case 413:
		return "413"
	case 415:
		return "415"
	case 431:
		return "431"
	case 502:
		return "502"
	case 504:
		return "504"
	}
	return strconv.Itoa(code)
}
