package doh

import (
	"bytes"
	"net/http"
	"net/netip"
	"strconv"

	"github.com/valyala/bytebufferpool"
)

// HTTP/1.1 is parsed by hand rather than with http.ReadRequest: ReadRequest
// allocates a Request, a Header map, a URL and strings for every request
// (dozens of allocations), wants a blocking reader, and leaves the limits
// (head size, body size, pipelining depth) to wrappers. The parser below is
// strict where request smuggling lives (Content-Length with
// Transfer-Encoding, duplicate lengths, obs-fold, spaces before the colon
// are all 400 and close), resumable across arbitrary splits, and does not
// allocate in steady state.

// h1req is one request in the pipeline, answered in order.
type h1req struct {
	id      uint64
	emitted bool // the engine holds body
	done    bool // out holds the complete response
	close   bool // close the connection after this response
	head    bool // a HEAD request: its response carries no body (RFC 9110 §9.3.2)
	// body and out are the storage of pooled buffers, returned once the
	// response is written, so that an idle connection holds neither.
	body    []byte
	out     []byte
	bodyBuf *bytebufferpool.ByteBuffer
	outBuf  *bytebufferpool.ByteBuffer
}

func (r *h1req) takeBuffers() {
	r.bodyBuf, r.outBuf = bytebufferpool.Get(), bytebufferpool.Get()
	r.body, r.out = r.bodyBuf.B[:0], r.outBuf.B[:0]
}

func (r *h1req) releaseBuffers() {
	r.bodyBuf.B, r.outBuf.B = r.body[:0], r.out[:0]
	bytebufferpool.Put(r.bodyBuf)
	bytebufferpool.Put(r.outBuf)
	r.body, r.out, r.bodyBuf, r.outBuf = nil, nil, nil, nil
}

type h1state uint8

const (
	h1Head h1state = iota
	h1Body
	h1ChunkSize
	h1ChunkData
	h1ChunkEnd
	h1Trailers
	h1Stopped // a response will close the connection: read nothing more
)

type h1conn struct {
	s      *Session
	queue  []*h1req
	free   []*h1req
	nextID uint64

	state     h1state
	scan      int   // head bytes already searched for the blank line
	remaining int64 // body or chunk bytes still to read
	trailer   int   // trailer bytes read

	// The request whose body is being read.
	cur       *h1req
	curReject reject // non-zero: discard the body, then answer this
	keepAlive bool
	expect    bool
	isPost    bool
	discarded int
	xff       netip.Addr
	// hdrs are the current request's path and header fields for the rules, copied
	// from the head (its bytes may be gone before a POST's body has arrived) into a
	// pooled buffer returned when the request reaches the engine or is refused.
	hdrs Headers

	heldBytes int
}

func newH1(s *Session) *h1conn {
	return &h1conn{s: s, nextID: 1}
}

func (c *h1conn) feed(emit func(Query)) error {
	s := c.s
	for !s.closed {
		progress, err := c.step(emit)
		if err != nil || !progress {
			return err
		}
	}
	return nil
}

// step advances the parser by one unit and reports whether it made progress.
func (c *h1conn) step(emit func(Query)) (bool, error) {
	s := c.s
	in := s.avail()
	switch c.state {
	case h1Stopped:
		s.off = len(s.in) // drop what follows a closing request
		return false, nil
	case h1Head:
		if s.draining || len(c.queue) >= int(s.cfg.maxStreams) {
			return false, nil // pipelining depth reached: parse later
		}
		// Ignore empty lines before a request line (RFC 9112 2.2).
		for len(in) > 0 && (in[0] == '\r' || in[0] == '\n') && c.scan == 0 {
			s.off++
			in = in[1:]
		}
		end := c.headEnd(in)
		if end < 0 {
			if len(in) > int(s.cfg.maxHeaderList) {
				s.stats.Abuse[AbuseHeaderListSize]++
				c.fatal(reject{431, statusBody(431)})
				return true, nil
			}
			return false, nil
		}
		if end > int(s.cfg.maxHeaderList) {
			s.stats.Abuse[AbuseHeaderListSize]++
			c.fatal(reject{431, statusBody(431)})
			return true, nil
		}
		c.scan = 0
		c.head(in[:end])
		s.off += end
		return true, nil
	case h1Body:
		n := min(int64(len(in)), c.remaining)
		if n == 0 && c.remaining > 0 {
			return false, nil
		}
		c.bodyBytes(in[:n])
		s.off += int(n)
		c.remaining -= n
		if c.remaining == 0 {
			c.endOfRequest(emit)
		}
		return true, nil
	case h1ChunkSize:
		i := bytes.IndexByte(in, '\n')
		if i < 0 {
			if len(in) > 1024 {
				c.fatal(reject{400, "bad request: chunk size line too long\n"})
				return true, nil
			}
			return false, nil
		}
		line := bytes.TrimSuffix(in[:i], []byte("\r"))
		if j := bytes.IndexByte(line, ';'); j >= 0 {
			line = line[:j]
		}
		size, ok := parseHex(bytes.TrimSpace(line))
		if !ok {
			c.fatal(reject{400, "bad request: bad chunk size\n"})
			return true, nil
		}
		s.off += i + 1
		if size == 0 {
			c.state, c.trailer = h1Trailers, 0
		} else {
			c.state, c.remaining = h1ChunkData, size
		}
		return true, nil
	case h1ChunkData:
		n := min(int64(len(in)), c.remaining)
		if n == 0 {
			return false, nil
		}
		c.bodyBytes(in[:n])
		s.off += int(n)
		c.remaining -= n
		if c.remaining == 0 {
			c.state = h1ChunkEnd
		}
		return true, nil
	case h1ChunkEnd:
		switch {
		case len(in) >= 2 && in[0] == '\r' && in[1] == '\n':
			s.off += 2
		case len(in) >= 1 && in[0] == '\n':
			s.off++
		case len(in) == 0 || len(in) == 1 && in[0] == '\r':
			return false, nil
		default:
			c.fatal(reject{400, "bad request: chunk not followed by CRLF\n"})
			return true, nil
		}
		c.state = h1ChunkSize
		return true, nil
	case h1Trailers:
		i := bytes.IndexByte(in, '\n')
		if i < 0 {
			if c.trailer+len(in) > int(s.cfg.maxHeaderList) {
				c.fatal(reject{431, statusBody(431)})
				return true, nil
			}
			return false, nil
		}
		c.trailer += i + 1
		s.off += i + 1
		if i == 0 || i == 1 && in[0] == '\r' {
			c.endOfRequest(emit)
		}
		return true, nil
	}
	return false, nil
}

// headEnd returns the length of the request head including its blank line,
// or -1. It resumes where the last call stopped, so a head arriving one byte
// at a time is scanned once.
func (c *h1conn) headEnd(in []byte) int {
	for {
		i := bytes.IndexByte(in[c.scan:], '\n')
		if i < 0 {
			// Keep a trailing '\r' unscanned so a following '\n' finds its line start.
			c.scan = max(0, len(in)-1)
			for c.scan > 0 && in[c.scan-1] != '\n' {
				c.scan--
			}
			return -1
		}
		lineStart := c.scan
		c.scan += i + 1
		line := in[lineStart : c.scan-1]
		if len(line) == 0 || len(line) == 1 && line[0] == '\r' {
			if lineStart > 0 {
				return c.scan
			}
		}
	}
}

func parseHex(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 8 {
		return 0, false
	}
	var n int64
	for _, ch := range b {
		switch {
		case '0' <= ch && ch <= '9':
			n = n<<4 | int64(ch-'0')
		case 'a' <= ch && ch <= 'f':
			n = n<<4 | int64(ch-'a'+10)
		case 'A' <= ch && ch <= 'F':
			n = n<<4 | int64(ch-'A'+10)
		default:
			return 0, false
		}
	}
	return n, true
}

// head parses a complete request head and sets up reading its body.
func (c *h1conn) head(h []byte) {
	s := c.s
	line, rest := nextLine(h)
	sp1 := bytes.IndexByte(line, ' ')
	sp2 := bytes.LastIndexByte(line, ' ')
	if sp1 <= 0 || sp2 <= sp1+1 {
		c.fatal(reject{400, "bad request: malformed request line\n"})
		return
	}
	m, target, version := parseMethod(line[:sp1]), line[sp1+1:sp2], line[sp2+1:]
	switch string(version) {
	case "HTTP/1.1":
		c.keepAlive = true
	case "HTTP/1.0":
		c.keepAlive = false
	default:
		c.fatal(reject{400, "bad request: unsupported HTTP version\n"})
		return
	}
	var (
		ct             ctype
		contentLength  int64 = -1
		chunked, sawTE bool
		xff            []byte
	)
	c.expect = false
	c.hdrs.release()
	for {
		line, rest = nextLine(rest)
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			c.fatal(reject{400, "bad request: obsolete line folding\n"})
			return
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !validToken(line[:colon]) {
			c.fatal(reject{400, "bad request: malformed header line\n"})
			return
		}
		name, value := line[:colon], bytes.TrimSpace(line[colon+1:])
		c.hdrs.add(name, value)
		switch {
		case bytes.EqualFold(name, []byte("content-length")):
			n, ok := parseDecimal(value)
			if !ok || contentLength >= 0 && n != contentLength {
				c.fatal(reject{400, "bad request: bad content-length\n"})
				return
			}
			contentLength = n
		case bytes.EqualFold(name, []byte("transfer-encoding")):
			if sawTE || !bytes.EqualFold(value, []byte("chunked")) {
				c.fatal(reject{400, "bad request: unsupported transfer-encoding\n"})
				return
			}
			sawTE, chunked = true, true
		case bytes.EqualFold(name, []byte("content-type")):
			ct = parseContentType(value)
		case bytes.EqualFold(name, []byte("connection")):
			if containsToken(value, "close") {
				c.keepAlive = false
			} else if containsToken(value, "keep-alive") {
				c.keepAlive = true
			}
		case bytes.EqualFold(name, []byte("expect")):
			c.expect = bytes.EqualFold(value, []byte("100-continue"))
		case bytes.EqualFold(name, []byte("x-forwarded-for")):
			xff = value
		}
	}
	if chunked && contentLength >= 0 {
		c.fatal(reject{400, "bad request: both content-length and transfer-encoding\n"})
		return
	}
	c.hdrs.setPath(target)
	r := c.newReq()
	r.head = m == methodHEAD
	c.cur = r
	c.curReject = s.cfg.route(m, target, ct, &r.body)
	if !c.keepAlive || s.draining {
		r.close = true
	}
	c.isPost = m == methodPOST
	c.discarded = 0
	if !c.curReject.ok() || m != methodGET {
		r.body = r.body[:0] // a GET's query was decoded by route
	}
	c.xff = netip.Addr{}
	if c.curReject.ok() && s.cfg.trustXFF && len(xff) > 0 {
		c.xff = forwardedFor(xff)
	}
	switch {
	case chunked:
		c.state = h1ChunkSize
	case contentLength > int64(s.cfg.maxMem):
		c.fatal(reject{413, statusBody(413)})
		return
	case contentLength > int64(s.cfg.maxBody):
		// Read and drop the body before answering, up to MaxConnMemory:
		// closing with unread input makes the kernel reset the connection
		// and the client would never see the 413.
		c.curReject = reject{413, statusBody(413)}
		r.close = true
		c.state, c.remaining = h1Body, contentLength
	case contentLength > 0:
		c.state, c.remaining = h1Body, contentLength
	default:
		c.state, c.remaining = h1Body, 0
	}
	if m == methodPOST && c.curReject.ok() && c.state == h1Body && c.remaining == 0 {
		c.curReject = reject{400, "bad request: empty body\n"}
	}
	if c.expect && c.curReject.ok() && len(c.queue) == 1 && (chunked || c.remaining > 0) {
		s.out.appendString("HTTP/1.1 100 Continue\r\n\r\n")
	}
}

func (c *h1conn) newReq() *h1req {
	var r *h1req
	if n := len(c.free); n > 0 {
		r = c.free[n-1]
		c.free = c.free[:n-1]
		*r = h1req{}
	} else {
		r = &h1req{}
	}
	r.takeBuffers()
	r.id = c.nextID
	c.nextID++
	c.queue = append(c.queue, r)
	return r
}

// bodyBytes takes body bytes of the current request.
func (c *h1conn) bodyBytes(b []byte) {
	r := c.cur
	if !c.curReject.ok() || !c.isPost {
		c.discarded += len(b)
		if c.discarded > c.s.cfg.maxMem {
			c.fatal(reject{413, statusBody(413)})
		}
		return
	}
	if len(r.body)+len(b) > c.s.cfg.maxBody {
		c.fatal(reject{413, statusBody(413)})
		return
	}
	r.body = append(r.body, b...)
	c.heldBytes += len(b)
}

func (c *h1conn) endOfRequest(emit func(Query)) {
	r := c.cur
	c.cur = nil
	c.state = h1Head
	if r.close {
		c.state = h1Stopped
	}
	rj := c.curReject
	if rj.ok() {
		rj = checkBody(r.body)
	}
	if !rj.ok() {
		c.hdrs.release()
		c.heldBytes -= len(r.body)
		c.answer(r, rj.status, []byte(rj.body), false)
		return
	}
	r.emitted = true
	c.s.stats.Queries++
	emit(Query{ID: r.id, Msg: r.body, ForwardedFor: c.xff, Path: c.hdrs.Path(), Headers: &c.hdrs})
	c.hdrs.release()
}

// fatal answers with an error and closes the connection after it: the
// request stream can no longer be trusted to be in step.
func (c *h1conn) fatal(rj reject) {
	r := c.cur
	c.cur = nil
	if r == nil {
		r = c.newReq()
	}
	c.heldBytes -= len(r.body)
	r.body = r.body[:0]
	r.close = true
	c.state = h1Stopped
	c.s.stats.ProtocolErrors++
	c.answer(r, rj.status, []byte(rj.body), false)
}

func (c *h1conn) respond(id uint64, status int, msg []byte) {
	s := c.s
	var r *h1req
	for _, x := range c.queue {
		if x.id == id && x.emitted {
			r = x
			break
		}
	}
	if r == nil || s.closed {
		s.stats.Abandoned++
		return
	}
	r.emitted = false
	c.heldBytes -= len(r.body)
	s.lastActive = s.now()
	if status == 200 {
		c.answer(r, 200, msg, true)
		return
	}
	c.answer(r, status, []byte(statusBody(status)), false)
}

func (c *h1conn) answer(r *h1req, status int, body []byte, isDNS bool) {
	s := c.s
	s.stats.Responses[statusFor(status)]++
	o := append(r.out[:0], "HTTP/1.1 "...)
	o = strconv.AppendInt(o, int64(status), 10)
	o = append(o, ' ')
	o = append(o, http.StatusText(status)...)
	o = append(o, "\r\n"...)
	var fb [8]field
	for _, f := range s.cfg.responseFields(fb[:0], status, body, isDNS) {
		o = append(o, f.name...)
		o = append(o, ": "...)
		o = append(o, f.value...)
		o = append(o, "\r\n"...)
	}
	if r.close {
		o = append(o, "connection: close\r\n"...)
	}
	o = append(o, "\r\n"...)
	if !r.head {
		// After a HEAD response a body would be read as the next response.
		o = append(o, body...)
	}
	r.out = o
	r.done = true
	c.heldBytes += len(o)
}

// flush moves the answered head of the pipeline to the output: responses
// leave in request order.
func (c *h1conn) flush() {
	s := c.s
	n := 0
	for _, r := range c.queue {
		if !r.done {
			break
		}
		s.out.append(r.out...)
		c.heldBytes -= len(r.out)
		n++
		closing := r.close
		r.releaseBuffers()
		c.free = append(c.free, r)
		if closing {
			s.closed = true
			// Requests after a closing one were never read; queries the
			// engine still holds are abandoned when answered.
			n = len(c.queue)
			c.heldBytes = 0
			break
		}
	}
	if n > 0 {
		c.queue = c.queue[:copy(c.queue, c.queue[n:])]
	}
}

func (c *h1conn) shutdown() {
	if len(c.queue) == 0 {
		c.s.closed = true
		return
	}
	last := c.queue[len(c.queue)-1]
	last.close = true
	if last.done {
		// Its response is already built: rebuild the tail of its head
		// with the close header is not worth it; the client sees the
		// connection close after it.
		return
	}
}

func nextLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return b, nil
	}
	line, rest = b[:i], b[i+1:]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

// validToken reports whether b is an RFC 9110 token (a header name).
func validToken(b []byte) bool {
	for _, ch := range b {
		switch {
		case 'a' <= ch && ch <= 'z', 'A' <= ch && ch <= 'Z', '0' <= ch && ch <= '9':
		case bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), ch) >= 0:
		default:
			return false
		}
	}
	return true
}

func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		n = n*10 + int64(ch-'0')
	}
	return n, true
}

// containsToken reports whether a comma-separated header value holds tok.
func containsToken(v []byte, tok string) bool {
	for len(v) > 0 {
		var t []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			t, v = v[:i], v[i+1:]
		} else {
			t, v = v, nil
		}
		if bytes.EqualFold(bytes.TrimSpace(t), []byte(tok)) {
			return true
		}
	}
	return false
}
