package doh

import "github.com/valyala/bytebufferpool"

// The HTTP/2 stream life cycle (RFC 9113 5.1), seen from a server that never
// pushes (so the reserved states do not exist):
//
//	                     idle
//	       recv H        |        recv H+ES
//	     ,---------------+----------------.
//	     v                                 v
//	   open ------------ recv ES ------> half-closed (remote)
//	     |                                 |
//	     | send ES (answered early)        | send ES (response complete)
//	     v                                 v
//	half-closed (local) -- recv ES ----> closed <-- recv R / send R, from any state
//
// recvTable below is that diagram as data: for each state, what each frame
// from the client does. It is written so that it can be read against the
// RFC line by line; the handlers in h2conn.go look the action up here and
// never decide a state change on their own. Our own sends move a stream with
// afterSend.
//
// "closed" is split in two, as RFC 9113 5.1 does in prose: a stream we reset
// (stateResetByUs) may still receive frames the client sent before it saw
// our RST_STREAM, and those are ignored; on any other closed stream a frame
// other than PRIORITY, WINDOW_UPDATE or RST_STREAM is an error. The
// streams we reset and no longer hold are remembered in resetMemory, a small
// ring: a frame for a reset stream older than that is treated as on a closed
// stream.
//
// Invariants:
//   - A stream is in h2conn.streams while it is open or half-closed, and
//     after it closes while the engine still holds its query (engineHolds)
//     or its response is still held by flow control. It is released (back
//     to the free list) as soon as neither is true.
//   - An early response (before the client's END_STREAM) leaves the stream
//     half-closed (local): it stays, counted against MaxConcurrentStreams,
//     until the client ends or resets it, so the client's remaining DATA is
//     read and discarded instead of being an error. Only when the connection
//     is closing is such a stream reset with NO_ERROR (RFC 9113 8.1) and
//     released at once.
//   - Every ID we reset lands in resetMemory, so its frames in flight are
//     ignored; resetMemory holds at most resetMemorySize IDs.

type streamState uint8

const (
	stateIdle streamState = iota
	stateOpen
	stateHalfClosedRemote // the client sent END_STREAM; we owe the response
	stateHalfClosedLocal  // we sent END_STREAM; the client is still sending
	stateClosed
	stateResetByUs // closed by our RST_STREAM: frames in flight are ignored
	numStates
)

func (s streamState) String() string {
	return [numStates]string{"idle", "open", "half-closed (remote)", "half-closed (local)", "closed", "closed (reset by us)"}[s]
}

// recvEvent is a frame from the client, as far as stream states care.
type recvEvent uint8

const (
	recvHeaders      recvEvent = iota // HEADERS (with its CONTINUATIONs), no END_STREAM
	recvHeadersEnd                    // HEADERS with END_STREAM
	recvData                          // DATA, no END_STREAM
	recvDataEnd                       // DATA with END_STREAM
	recvReset                         // RST_STREAM
	recvWindowUpdate                  // WINDOW_UPDATE
	recvPriority                      // PRIORITY
	numRecvEvents
)

// action is what a received frame does to its stream.
type action uint8

const (
	actIgnore         action = iota // drop it (DATA still counts against the connection window)
	actRequest                      // a request head: validate, route, maybe emit the query
	actTrailers                     // trailers: validate, end the request
	actBody                         // request body: collect (POST) or count (GET)
	actDiscard                      // body after our early response: count, drop
	actClientReset                  // the client reset the stream
	actWindow                       // grow the stream's send window
	actStreamClosed                 // stream error STREAM_CLOSED
	actStreamProtocol               // stream error PROTOCOL_ERROR
	actConnClosed                   // connection error STREAM_CLOSED
	actConnProtocol                 // connection error PROTOCOL_ERROR
)

type transition struct {
	act  action
	next streamState // the state once the action succeeds
}

// recvTable is RFC 9113 5.1 for a server: state × received frame → action,
// next state. The RFC's words for each state are quoted above its row.
var recvTable = [numStates][numRecvEvents]transition{
	// "Receiving any frame other than HEADERS or PRIORITY on a stream in this
	// state MUST be treated as a connection error of type PROTOCOL_ERROR."
	stateIdle: {
		recvHeaders:      {actRequest, stateOpen},
		recvHeadersEnd:   {actRequest, stateHalfClosedRemote},
		recvData:         {actConnProtocol, stateIdle},
		recvDataEnd:      {actConnProtocol, stateIdle},
		recvReset:        {actConnProtocol, stateIdle},
		recvWindowUpdate: {actConnProtocol, stateIdle},
		recvPriority:     {actIgnore, stateIdle},
	},
	// "A stream in the open state may be used by both peers to send frames
	// of any type." A second HEADERS is a trailer section and must carry
	// END_STREAM (8.1).
	stateOpen: {
		recvHeaders:      {actStreamProtocol, stateOpen},
		recvHeadersEnd:   {actTrailers, stateHalfClosedRemote},
		recvData:         {actBody, stateOpen},
		recvDataEnd:      {actBody, stateHalfClosedRemote},
		recvReset:        {actClientReset, stateClosed},
		recvWindowUpdate: {actWindow, stateOpen},
		recvPriority:     {actIgnore, stateOpen},
	},
	// "If an endpoint receives additional frames, other than WINDOW_UPDATE,
	// PRIORITY, or RST_STREAM, for a stream that is in this state, it MUST
	// respond with a stream error of type STREAM_CLOSED."
	stateHalfClosedRemote: {
		recvHeaders:      {actStreamClosed, stateHalfClosedRemote},
		recvHeadersEnd:   {actStreamClosed, stateHalfClosedRemote},
		recvData:         {actStreamClosed, stateHalfClosedRemote},
		recvDataEnd:      {actStreamClosed, stateHalfClosedRemote},
		recvReset:        {actClientReset, stateClosed},
		recvWindowUpdate: {actWindow, stateHalfClosedRemote},
		recvPriority:     {actIgnore, stateHalfClosedRemote},
	},
	// "A stream that is in the half-closed (local) state cannot be used for
	// sending frames other than WINDOW_UPDATE, PRIORITY, and RST_STREAM."
	// The client may still send: its body is read and dropped.
	stateHalfClosedLocal: {
		recvHeaders:      {actStreamProtocol, stateHalfClosedLocal},
		recvHeadersEnd:   {actTrailers, stateClosed},
		recvData:         {actDiscard, stateHalfClosedLocal},
		recvDataEnd:      {actDiscard, stateClosed},
		recvReset:        {actClientReset, stateClosed},
		recvWindowUpdate: {actWindow, stateHalfClosedLocal},
		recvPriority:     {actIgnore, stateHalfClosedLocal},
	},
	// "An endpoint that receives any frame other than PRIORITY after
	// receiving a RST_STREAM MUST treat that as a stream error of type
	// STREAM_CLOSED." "An endpoint MAY treat receipt of any other type of
	// frame on a closed stream as a connection error of type STREAM_CLOSED":
	// we do for HEADERS (no request may reuse a stream). WINDOW_UPDATE and
	// RST_STREAM may follow our END_STREAM in flight and are ignored.
	stateClosed: {
		recvHeaders:      {actConnClosed, stateClosed},
		recvHeadersEnd:   {actConnClosed, stateClosed},
		recvData:         {actStreamClosed, stateClosed},
		recvDataEnd:      {actStreamClosed, stateClosed},
		recvReset:        {actIgnore, stateClosed},
		recvWindowUpdate: {actIgnore, stateClosed},
		recvPriority:     {actIgnore, stateClosed},
	},
	// "An endpoint MUST ignore frames that it receives on closed streams
	// after it has sent a RST_STREAM frame."
	stateResetByUs: {
		recvHeaders:      {actIgnore, stateResetByUs},
		recvHeadersEnd:   {actIgnore, stateResetByUs},
		recvData:         {actIgnore, stateResetByUs},
		recvDataEnd:      {actIgnore, stateResetByUs},
		recvReset:        {actIgnore, stateResetByUs},
		recvWindowUpdate: {actIgnore, stateResetByUs},
		recvPriority:     {actIgnore, stateResetByUs},
	},
}

// afterSend is the state once we send END_STREAM (end) or RST_STREAM.
func afterSend(s streamState, end, reset bool) streamState {
	switch {
	case reset:
		return stateResetByUs
	case !end:
		return s
	case s == stateOpen:
		return stateHalfClosedLocal
	case s == stateHalfClosedRemote:
		return stateClosed
	}
	return s
}

// resetMemorySize bounds the reset stream IDs remembered; past it, a late
// frame for an old reset stream is handled as on a closed stream. 64 covers
// more than a round trip of resets at the default stream limit.
const resetMemorySize = 64

// resetMemory is a ring of the stream IDs we reset.
type resetMemory struct {
	ids  [resetMemorySize]uint32
	next int
}

// addReset remembers a stream we reset. The ring is allocated at the first
// reset: most connections never reset a stream, and an idle one should not
// carry 260 bytes for it.
func (c *h2conn) addReset(id uint32) {
	if c.resets == nil {
		c.resets = new(resetMemory)
	}
	c.resets.add(id)
}

func (m *resetMemory) add(id uint32) {
	m.ids[m.next] = id
	m.next = (m.next + 1) % resetMemorySize
}

func (m *resetMemory) has(id uint32) bool {
	if m == nil {
		return false
	}
	for _, x := range m.ids {
		if x == id && id != 0 {
			return true
		}
	}
	return false
}

// h2stream is one request stream. Streams are recycled through the
// connection's free list, keeping their buffers.
type h2stream struct {
	id    uint32
	state streamState

	// engineHolds: the query (body) is with the engine until Respond or Fail.
	engineHolds bool
	// answered: our response HEADERS are queued (the request is not
	// cancellable without counting as a rapid reset once this is false).
	answered bool
	// collect: DATA is the POST body; else DATA is counted and dropped
	// (a GET, whose query came in :path).
	collect bool

	sendWin int64
	recvWin int64

	declLen  int64 // content-length, -1 if absent
	received int64 // DATA bytes received, padding excluded

	// body and pending are the storage of pooled buffers, taken when the
	// stream needs them and returned when it is released, so that an idle
	// connection holds none.
	body    []byte
	pending []byte // response DATA held back by flow control
	bodyBuf *bytebufferpool.ByteBuffer
	pendBuf *bytebufferpool.ByteBuffer
	xff     []byte
	// hdrs are the request's path and header fields for the rules, moved from the head
	// (a POST's body comes after other streams' heads) and held until the query is
	// emitted; pooled like body.
	hdrs    Headers
	counted int // body bytes counted in h2conn.bodyBytes
}

// stateOf returns the state of stream id, and the stream while we hold it.
func (c *h2conn) stateOf(id uint32) (streamState, *h2stream) {
	if st := c.find(id); st != nil {
		return st.state, st
	}
	switch {
	case id > c.lastStreamID:
		return stateIdle, nil
	case c.resets.has(id):
		return stateResetByUs, nil
	}
	return stateClosed, nil
}

func (c *h2conn) find(id uint32) *h2stream {
	for _, st := range c.streams {
		if st.id == id {
			return st
		}
	}
	return nil
}

func (c *h2conn) newStream(id uint32, state streamState) *h2stream {
	var st *h2stream
	if n := len(c.free); n > 0 {
		st = c.free[n-1]
		c.free = c.free[:n-1]
		xff := st.xff[:0]
		*st = h2stream{xff: xff}
	} else {
		st = &h2stream{}
	}
	st.bodyBuf = bytebufferpool.Get()
	st.body = st.bodyBuf.B[:0]
	st.id = id
	st.state = state
	st.declLen = -1
	st.sendWin = c.peerInitWindow
	st.recvWin = c.initRecvWindow
	c.streams = append(c.streams, st)
	return st
}

// settle releases a closed stream nothing holds any more.
func (c *h2conn) settle(st *h2stream) {
	if st.state != stateClosed && st.state != stateResetByUs {
		return
	}
	if st.engineHolds || len(st.pending) > 0 {
		return
	}
	for i, x := range c.streams {
		if x == st {
			c.streams = append(c.streams[:i], c.streams[i+1:]...)
			break
		}
	}
	c.bodyBytes -= st.counted
	st.releaseBuffers()
	c.free = append(c.free, st)
}

// releaseBuffers gives the stream's buffers back to the pool.
func (st *h2stream) releaseBuffers() {
	if st.bodyBuf != nil {
		st.bodyBuf.B = st.body[:0]
		bytebufferpool.Put(st.bodyBuf)
	}
	if st.pendBuf != nil {
		st.pendBuf.B = st.pending[:0]
		bytebufferpool.Put(st.pendBuf)
	}
	st.body, st.pending, st.bodyBuf, st.pendBuf = nil, nil, nil, nil
	st.hdrs.release()
}

// resetStream sends RST_STREAM: the stream is closed by us, its queued
// response dropped; it stays allocated only while the engine holds its query.
func (c *h2conn) resetStream(id uint32, code h2ErrCode) {
	c.writeRSTStream(id, code)
	c.addReset(id)
	if st := c.find(id); st != nil {
		st.state = afterSend(st.state, false, true)
		c.dropPending(st)
		c.settle(st)
	}
}

// sentEnd records that the frame carrying our END_STREAM was written.
func (c *h2conn) sentEnd(st *h2stream) {
	st.state = afterSend(st.state, true, false)
	c.settle(st)
}

// needsAnswer reports whether a closing connection must still wait for st:
// its request is being read, its query is with the engine, or its response
// is not all written.
func (st *h2stream) needsAnswer() bool {
	switch st.state {
	case stateOpen, stateHalfClosedRemote:
		return true
	}
	return st.engineHolds || len(st.pending) > 0
}
