package doh

import (
	"errors"
	"net/netip"
	"strconv"
	"time"

	"github.com/valyala/bytebufferpool"
)

// Query is one DNS query a client sent.
type Query struct {
	// ID names the query within its session for Respond and Fail.
	ID uint64
	// Msg is the DNS message as the client sent it (RFC 8484 clients use
	// DNS ID 0). It is owned by the session and valid until Respond or Fail
	// for ID returns.
	Msg []byte
	// ForwardedFor is the right-most X-Forwarded-For address when
	// Options.TrustForwardedFor is set and the header parses; else invalid.
	ForwardedFor netip.Addr
	// Path is the request's path without its query string, and Headers its header
	// fields, for the rules' HTTPPath and HTTPHeader selectors. Both are views into the
	// session's buffers, valid until emit returns.
	Path    []byte
	Headers *Headers
}

// Session is one DoH connection's HTTP state. It is not safe for concurrent
// use: every method runs on the connection's event loop.
type Session struct {
	cfg   *config // shared by the sessions of one Options
	proto Proto
	now   func() time.Time

	// Input and output live in pooled buffers that go back to the pool as
	// soon as they are empty: an idle session holds neither.
	in    []byte // received; in[off:] is not yet parsed; inBuf.B's storage
	inBuf *bytebufferpool.ByteBuffer
	off   int
	out   outBuf // to be written

	closed   bool // close once out is flushed; input is ignored
	draining bool // Shutdown: finish what is in flight, accept nothing new

	lastActive   time.Time
	blockedSince time.Time // output held by flow control since; zero if none

	stats Stats
	h2    *h2conn
	h1    *h1conn
}

// outBuf is the output waiting for AppendOutput, in a pooled buffer taken
// on the first write and returned once AppendOutput has copied it.
type outBuf struct{ buf *bytebufferpool.ByteBuffer }

func (o *outBuf) Write(p []byte) (int, error) {
	o.append(p...)
	return len(p), nil
}

func (o *outBuf) append(p ...byte) {
	if o.buf == nil {
		o.buf = bytebufferpool.Get()
	}
	o.buf.B = append(o.buf.B, p...)
}

func (o *outBuf) appendString(p string) {
	if o.buf == nil {
		o.buf = bytebufferpool.Get()
	}
	o.buf.B = append(o.buf.B, p...)
}

// bytes returns the buffer's contents for a writer that appends in place
// (the response header block) and hands the result back with set.
func (o *outBuf) bytes() []byte {
	if o.buf == nil {
		o.buf = bytebufferpool.Get()
	}
	return o.buf.B
}

func (o *outBuf) set(b []byte) { o.buf.B = b }

func (o *outBuf) len() int {
	if o.buf == nil {
		return 0
	}
	return len(o.buf.B)
}

// release returns the buffer to the pool.
func (o *outBuf) release() {
	if o.buf != nil {
		bytebufferpool.Put(o.buf)
		o.buf = nil
	}
}

// errClosed is returned by Feed once the session has decided to close.
var errClosed = errors.New("doh: session closed")

// NewSession returns a session for one accepted connection. proto is HTTP2
// or HTTP1 as negotiated by ALPN, or Detect on cleartext binds. now is the
// clock (the loop's cached time is fine). For HTTP2 the server preface is
// queued at once: call AppendOutput after NewSession.
func NewSession(opts *Options, proto Proto, now func() time.Time) *Session {
	if now == nil {
		now = time.Now
	}
	s := &Session{cfg: opts.config(), proto: proto, now: now}
	s.lastActive = now()
	switch proto {
	case HTTP2:
		s.startH2()
	case HTTP1:
		s.h1 = newH1(s)
	}
	return s
}

// Feed parses received bytes, which may be split anywhere, and calls emit for
// each complete DNS query, in order. emit may call Respond or Fail. A non-nil
// error says why the session gave up on the connection (for the log):
// flush AppendOutput (it may hold a GOAWAY) and close.
func (s *Session) Feed(in []byte, emit func(Query)) error {
	if s.closed {
		return errClosed
	}
	s.lastActive = s.now()
	if s.inBuf == nil {
		s.inBuf = bytebufferpool.Get()
		s.in = s.inBuf.B[:0]
	}
	s.in = append(s.in, in...)
	defer s.compactInput()
	if len(s.in)-s.off > s.cfg.maxMem {
		return s.abuse(AbuseMemory, "input buffer over max_conn_memory")
	}
	var err error
	if s.proto == Detect {
		if !s.detect() {
			return nil
		}
	}
	switch s.proto {
	case HTTP2:
		err = s.h2.feed(emit)
	case HTTP1:
		err = s.h1.feed(emit)
		if err == nil && !s.closed && s.memory() > s.cfg.maxMem {
			err = s.abuse(AbuseMemory, "buffered "+strconv.Itoa(s.memory())+" bytes")
		}
	}
	return err
}

// detect picks the protocol of a cleartext connection from its first bytes.
func (s *Session) detect() bool {
	n := min(len(s.in), len(clientPreface))
	if string(s.in[:n]) != clientPreface[:n] {
		s.proto = HTTP1
		s.h1 = newH1(s)
		return true
	}
	if n < len(clientPreface) {
		return false
	}
	s.proto = HTTP2
	s.startH2()
	return true
}

// Respond sends the DNS answer for query id. dnsMsg is copied. An unknown id
// (the client went away) is counted as abandoned and ignored.
func (s *Session) Respond(id uint64, dnsMsg []byte) {
	s.respond(id, 200, dnsMsg)
}

// Fail answers query id with an HTTP error: 502 for a backend failure, 504
// for a backend timeout.
func (s *Session) Fail(id uint64, status int) {
	s.respond(id, status, nil)
}

func (s *Session) respond(id uint64, status int, msg []byte) {
	switch {
	case s.h2 != nil:
		s.h2.respond(id, status, msg)
	case s.h1 != nil:
		s.h1.respond(id, status, msg)
	default:
		s.stats.Abandoned++
	}
}

// AppendOutput appends every byte waiting to be written to dst and returns
// it. Write the result in one write; it may be empty.
func (s *Session) AppendOutput(dst []byte) []byte {
	if s.h1 != nil {
		s.h1.flush()
	}
	if s.out.buf != nil {
		dst = append(dst, s.out.buf.B...)
		s.out.release()
	}
	return dst
}

// Shutdown starts a graceful close for a server stop: HTTP/2 sends GOAWAY
// with the last stream it will answer, HTTP/1.1 answers what it has with
// Connection: close. Closed reports true once the answers are out.
func (s *Session) Shutdown() {
	if s.closed || s.draining {
		return
	}
	s.draining = true
	switch {
	case s.h2 != nil:
		s.h2.goAway(errCodeNo)
		s.h2.maybeFinish()
	case s.h1 != nil:
		s.h1.shutdown()
	default:
		s.closed = true
	}
}

// Closed reports whether the connection should be closed once the output
// from AppendOutput is written: after an error, an idle timeout, or a
// graceful close (Shutdown, or the client's HTTP/2 GOAWAY) once every
// stream in flight is answered and the last frame (our GOAWAY) is queued.
// Close with a lingering close: the client may still be sending.
func (s *Session) Closed() bool {
	if s.closed {
		return true
	}
	if s.h2 != nil {
		// Set once a drain or the client's GOAWAY has nothing left to
		// answer and our GOAWAY is queued.
		return s.h2.finished
	}
	if !s.draining {
		return false
	}
	switch {
	case s.h1 != nil:
		return len(s.h1.queue) == 0
	}
	return true
}

// Deadline is when Expire should be called if nothing happens before: the
// idle timeout after the last input or response, or after the output was
// first held back by a closed flow-control window.
func (s *Session) Deadline() time.Time {
	d := s.lastActive.Add(s.cfg.idle)
	if !s.blockedSince.IsZero() {
		if b := s.blockedSince.Add(s.cfg.idle); b.Before(d) {
			d = b
		}
	}
	return d
}

// Expire closes the session when its deadline has passed (the loop checks
// Deadline; Expire checks again against the clock). It reports whether it
// closed the session; flush AppendOutput then.
func (s *Session) Expire() bool {
	if s.closed || s.now().Before(s.Deadline()) {
		return s.closed
	}
	if !s.blockedSince.IsZero() && !s.now().Before(s.blockedSince.Add(s.cfg.idle)) {
		s.stats.Abuse[AbuseZeroWindow]++
	} else {
		s.stats.IdleTimeouts++
	}
	if s.h2 != nil {
		s.h2.goAway(errCodeNo)
	}
	s.closed = true
	return true
}

// Stats returns the session's counters since it started or since the last
// DrainStats.
func (s *Session) Stats() Stats { return s.stats }

// DrainStats adds the session's counters into dst and zeroes them, so a loop
// can fold each session into its metrics as often as it likes.
func (s *Session) DrainStats(dst *Stats) {
	dst.Add(&s.stats)
	s.stats = Stats{}
}

// abuse counts a defence, sends GOAWAY ENHANCE_YOUR_CALM on HTTP/2 and
// marks the session closed.
func (s *Session) abuse(kind Abuse, why string) error {
	s.stats.Abuse[kind]++
	if s.h2 != nil {
		s.h2.goAway(errCodeEnhanceYourCalm)
	}
	s.closed = true
	return &AbuseError{Kind: kind, Detail: why}
}

// AbuseError is the error Feed returns when a defence closed the session.
type AbuseError struct {
	Kind   Abuse
	Detail string
}

func (e *AbuseError) Error() string {
	return "doh: " + e.Kind.String() + ": " + e.Detail
}

// memory is what the connection holds buffered now.
func (s *Session) memory() int {
	n := len(s.in) - s.off + s.out.len()
	if s.h2 != nil {
		n += s.h2.bodyBytes + s.h2.blockedBytes
	}
	if s.h1 != nil {
		n += s.h1.heldBytes
	}
	return n
}

// rate counts events in fixed windows of the abuse period.
type rate struct {
	start time.Time
	n     int
}

// hit records one event and reports whether limit is exceeded.
func (r *rate) hit(now time.Time, period time.Duration, limit int) bool {
	if now.Sub(r.start) >= period {
		r.start, r.n = now, 0
	}
	r.n++
	return r.n > limit
}

// avail is the input not yet parsed.
func (s *Session) avail() []byte { return s.in[s.off:] }

// compactInput moves the unparsed input to the front of its buffer so the
// buffer is reused instead of growing, and gives the buffer back to the
// pool once everything is parsed: most reads hold whole frames or requests,
// so an idle connection holds no input buffer.
func (s *Session) compactInput() {
	if s.inBuf == nil {
		return
	}
	n := copy(s.in, s.in[s.off:])
	s.in, s.off = s.in[:n], 0
	s.inBuf.B = s.in
	if n == 0 {
		bytebufferpool.Put(s.inBuf)
		s.inBuf, s.in = nil, nil
	}
}
