package doh

import (
	"strconv"
	"testing"

	"github.com/miekg/dns"
	"golang.org/x/net/http2"
)

// Regression tests for the stream life cycle (RFC 9113 5.1), each named for
// the h2spec case it once failed.

func TestStateTableIsComplete(t *testing.T) {
	// Every (state, frame) pair has been decided: the zero value
	// (actIgnore, idle) is only right where the table says so.
	for s := streamState(0); s < numStates; s++ {
		for e := recvEvent(0); e < numRecvEvents; e++ {
			tr := recvTable[s][e]
			if tr.act == actIgnore && tr.next != s {
				t.Errorf("%v × event %d: ignoring a frame must not change the state (next %v)", s, e, tr.next)
			}
		}
	}
	if recvTable[stateIdle][recvData].act != actConnProtocol {
		t.Error("DATA on an idle stream must be a connection error")
	}
}

// 5.1/5: DATA on a half-closed (remote) stream.
func TestDataOnHalfClosedRemote(t *testing.T) {
	p := newPeer(t, nil)
	p.answer = false // keep stream 1 half-closed (remote)
	p.headers(1, true, getHead(t, "a.example")...)
	p.fr.WriteData(1, true, []byte("test"))
	fs := p.exchange()
	wantRST(t, fs, 1, http2.ErrCodeStreamClosed)
	// The engine still answers; the answer is dropped, not sent.
	_, ans := answerFor(p.queries[0].Msg)
	p.s.Respond(p.queries[0].ID, ans)
	wantNo(t, p.read(), http2.FrameHeaders)
	if p.s.Stats().Abandoned != 1 || len(p.s.h2.streams) != 0 {
		t.Fatalf("abandoned %d, streams %d", p.s.Stats().Abandoned, len(p.s.h2.streams))
	}
}

// 5.1/8: DATA after the client's RST_STREAM.
func TestDataAfterClientReset(t *testing.T) {
	p := newPeer(t, nil)
	p.headers(1, false, postHead()...)
	p.fr.WriteRSTStream(1, http2.ErrCodeCancel)
	p.fr.WriteData(1, true, []byte("test"))
	wantRST(t, p.exchange(), 1, http2.ErrCodeStreamClosed)
}

// 5.1/11 and 6.1/2: DATA on a closed stream.
func TestDataOnClosedStream(t *testing.T) {
	p := newPeer(t, nil)
	p.headers(1, true, getHead(t, "a.example")...)
	fs := p.exchange()
	if f, ok := find(fs, http2.FrameHeaders, 1); !ok || f.status() != "200" {
		t.Fatalf("no answer: %s", describe(fs))
	}
	p.fr.WriteData(1, true, []byte("test"))
	wantRST(t, p.exchange(), 1, http2.ErrCodeStreamClosed)

	// HEADERS on a closed stream ends the connection.
	p = newPeer(t, nil)
	p.headers(1, true, getHead(t, "a.example")...)
	p.exchange()
	p.headers(1, true, getHead(t, "a.example")...)
	wantGoAway(t, p.exchange(), http2.ErrCodeStreamClosed)
}

// Frames still in flight for a stream we reset are ignored, DATA counted
// against the connection window.
func TestFramesAfterOurResetIgnored(t *testing.T) {
	p := newPeer(t, nil)
	p.headers(1, false, postHead(":method", "GET")...) // duplicate :method: we reset
	fs := p.exchange()
	wantRST(t, fs, 1, http2.ErrCodeProtocol)
	p.fr.WriteData(1, false, make([]byte, 1000))
	p.fr.WriteWindowUpdate(1, 10)
	p.fr.WriteData(1, true, nil)
	p.headers(3, true, getHead(t, "a.example")...)
	fs = p.exchange()
	wantNo(t, fs, http2.FrameRSTStream)
	wantNo(t, fs, http2.FrameGoAway)
	if f, ok := find(fs, http2.FrameHeaders, 3); !ok || f.status() != "200" {
		t.Fatalf("stream 3 not answered: %s", describe(fs))
	}
	if got := p.s.h2.recvConn; got != connRecvWindow-1000 {
		t.Errorf("connection window %d, want %d", got, connRecvWindow-1000)
	}
}

// The memory of reset streams is bounded.
func TestResetMemoryBounded(t *testing.T) {
	var m resetMemory
	for id := uint32(1); id < 2*resetMemorySize*2; id += 2 {
		m.add(id)
	}
	if m.has(1) {
		t.Error("oldest reset still remembered")
	}
	if !m.has(2*resetMemorySize*2 - 1) {
		t.Error("newest reset forgotten")
	}
}

// 5.3.1/1 and 5.3.1/2: a stream that depends on itself.
func TestSelfDependency(t *testing.T) {
	p := newPeer(t, nil)
	p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: p.block(getHead(t, "a.example")...),
		EndHeaders: true, EndStream: true, Priority: http2.PriorityParam{StreamDep: 1, Weight: 15}})
	fs := p.exchange()
	wantRST(t, fs, 1, http2.ErrCodeProtocol)
	wantNo(t, fs, http2.FrameHeaders)

	p = newPeer(t, nil)
	p.answer = false
	p.headers(1, true, getHead(t, "a.example")...)
	p.fr.WritePriority(1, http2.PriorityParam{StreamDep: 1, Weight: 15})
	wantRST(t, p.exchange(), 1, http2.ErrCodeProtocol)

	// On an idle stream no RST_STREAM may be sent: a connection error.
	p = newPeer(t, nil)
	p.fr.WritePriority(5, http2.PriorityParam{StreamDep: 5})
	wantGoAway(t, p.exchange(), http2.ErrCodeProtocol)
}

// 6.9.1/3: a WINDOW_UPDATE that takes a stream's window over 2^31-1.
func TestStreamWindowOverflow(t *testing.T) {
	p := newPeer(t, nil)
	p.headers(1, false, getHead(t, "a.example")...) // answered at once, half-closed (local)
	p.fr.WriteWindowUpdate(1, 1<<31-1)
	p.fr.WriteWindowUpdate(1, 1<<31-1)
	fs := p.exchange()
	wantRST(t, fs, 1, http2.ErrCodeFlowControl)
	wantNo(t, fs, http2.FrameGoAway)
}

// An early response leaves the stream half-closed (local): the rest of the
// body is read and dropped, with no error, until the client's END_STREAM.
func TestEarlyResponseKeepsStream(t *testing.T) {
	p := newPeer(t, nil)
	p.headers(1, false, ":method", "POST", ":scheme", "https", ":path", "/dns-query", "content-type", "text/plain")
	fs := p.exchange()
	if f, ok := find(fs, http2.FrameHeaders, 1); !ok || f.status() != "415" {
		t.Fatalf("want 415: %s", describe(fs))
	}
	wantNo(t, fs, http2.FrameRSTStream)
	if st, _ := p.s.h2.stateOf(1); st != stateHalfClosedLocal {
		t.Fatalf("stream 1 %v after the early response", st)
	}
	p.fr.WriteData(1, false, make([]byte, 100))
	fs = p.exchange()
	wantNo(t, fs, http2.FrameRSTStream)
	if _, ok := find(fs, http2.FrameWindowUpdate, 1); !ok {
		t.Errorf("dropped body not given back to the stream window: %s", describe(fs))
	}
	p.fr.WriteData(1, true, make([]byte, 100))
	fs = p.exchange()
	wantNo(t, fs, http2.FrameRSTStream)
	if len(p.s.h2.streams) != 0 {
		t.Fatalf("stream not released after END_STREAM")
	}
	if st, _ := p.s.h2.stateOf(1); st != stateClosed {
		t.Fatalf("stream 1 %v after END_STREAM", st)
	}
}

// When the connection closes anyway, a stream answered early is reset with
// NO_ERROR (RFC 9113 8.1) rather than waited for.
func TestEarlyResponseResetOnShutdown(t *testing.T) {
	p := newPeer(t, nil)
	p.headers(1, false, ":method", "PUT", ":scheme", "https", ":path", "/dns-query")
	p.exchange()
	if p.s.Closed() {
		t.Fatal("closed early")
	}
	p.s.Shutdown()
	fs := p.read()
	wantGoAway(t, fs, http2.ErrCodeNo)
	wantRST(t, fs, 1, http2.ErrCodeNo)
	if !p.s.Closed() {
		t.Fatal("not closed after the drain")
	}
}

// 3.8/1: the client's GOAWAY. Streams in flight are answered, then our
// GOAWAY goes out, and only then is the session done.
func TestClientGoAwayAnswersInFlight(t *testing.T) {
	p := newPeer(t, nil)
	p.answer = false
	p.headers(1, true, getHead(t, "a.example")...)
	p.headers(3, false, postHead()...)
	p.fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	var ping [8]byte
	copy(ping[:], "in-fight")
	p.fr.WritePing(false, ping)
	fs := p.exchange()
	wantNo(t, fs, http2.FrameGoAway)
	if _, ok := find(fs, http2.FramePing, 0); !ok {
		t.Errorf("PING after GOAWAY not answered: %s", describe(fs))
	}
	if p.s.Closed() {
		t.Fatal("closed with streams in flight")
	}
	// A new stream after the client's GOAWAY is refused, retryable.
	p.headers(5, true, getHead(t, "c.example")...)
	wantRST(t, p.exchange(), 5, http2.ErrCodeRefusedStream)
	// Stream 3 finishes its body, then the engine answers both.
	q := packQuery(t, "b.example", dns.TypeA)
	p.fr.WriteData(3, true, q)
	p.exchange()
	if len(p.queries) != 2 {
		t.Fatalf("%d queries emitted", len(p.queries))
	}
	for i, q := range p.queries {
		_, ans := answerFor(q.Msg)
		p.s.Respond(q.ID, ans)
		if done := p.s.Closed(); done != (i == 1) {
			t.Fatalf("after answer %d: Closed %v", i+1, done)
		}
	}
	fs = p.read()
	for _, id := range []uint32{1, 3} {
		if f, ok := find(fs, http2.FrameHeaders, id); !ok || f.status() != "200" {
			t.Errorf("stream %d not answered: %s", id, describe(fs))
		}
	}
	g := wantGoAway(t, fs, http2.ErrCodeNo)
	if g.last != 3 {
		t.Errorf("GOAWAY last stream %d, want 3 (5 was refused)", g.last)
	}
	if fs[len(fs)-1].typ != http2.FrameGoAway {
		t.Errorf("GOAWAY is not the last frame: %s", describe(fs))
	}
}

// A client GOAWAY with nothing in flight: our GOAWAY at once, then done.
func TestClientGoAwayIdle(t *testing.T) {
	p := newPeer(t, nil)
	p.fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	wantGoAway(t, p.exchange(), http2.ErrCodeNo)
	if !p.s.Closed() {
		t.Fatal("not closed")
	}
}

func TestMalformedRequests(t *testing.T) {
	q := packQuery(t, "a.example", dns.TypeA)
	cl := strconv.Itoa(len(q))
	get := getHead(t, "a.example")
	cases := []struct {
		name   string
		fields []string
		body   []byte // sent with END_STREAM after the head when non-nil
	}{
		{"8.1.2.2/2 te gzip", append(get[:len(get):len(get)], "te", "gzip"), nil},
		{"8.1.2.2/1 connection", append(get[:len(get):len(get)], "connection", "keep-alive"), nil},
		{"transfer-encoding", append(get[:len(get):len(get)], "transfer-encoding", "chunked"), nil},
		{"8.1.2.3/5 duplicate :method", append([]string{":method", "GET"}, get...), nil},
		{"8.1.2.3/6 duplicate :scheme", append([]string{":scheme", "https"}, get...), nil},
		{"8.1.2.3/7 duplicate :path", append([]string{":path", "/dns-query"}, get...), nil},
		{"unknown pseudo-header", append([]string{":foo", "bar"}, get...), nil},
		{"response pseudo-header", append([]string{":status", "200"}, get...), nil},
		{"pseudo after regular", append([]string{"accept", "*/*"}, get...), nil},
		{"uppercase name", append(get[:len(get):len(get)], "Accept", "*/*"), nil},
		{"missing :scheme", []string{":method", "GET", ":path", "/dns-query?dns=" + b64(q)}, nil},
		{"empty :path", []string{":method", "GET", ":scheme", "https", ":path", ""}, nil},
		{"bad :scheme", []string{":method", "GET", ":scheme", "ftp", ":path", "/dns-query?dns=" + b64(q)}, nil},
		{"control character in value", append(get[:len(get):len(get)], "x-a", "b\x01"), nil},
		{"8.1.2.6/1 content-length over body", postHead("content-length", strconv.Itoa(len(q)-1)), q},
		{"8.1.2.6/2 content-length under body", postHead("content-length", strconv.Itoa(len(q)+1)), q},
		{"content-length on a GET", append(get[:len(get):len(get)], "content-length", "5"), []byte{}},
		{"two content-lengths", postHead("content-length", cl, "content-length", "1"), q},
		{"content-length not a number", postHead("content-length", "+5"), q},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPeer(t, nil)
			p.headers(1, tc.body == nil, tc.fields...)
			if tc.body != nil {
				p.fr.WriteData(1, true, tc.body)
			}
			fs := p.exchange()
			wantRST(t, fs, 1, http2.ErrCodeProtocol)
			if f, ok := find(fs, http2.FrameHeaders, 1); ok && f.status() == "200" {
				t.Fatalf("malformed request answered: %s", describe(fs))
			}
			if len(p.queries) != 0 {
				t.Fatal("malformed request reached the engine")
			}
			// The connection goes on.
			p.headers(3, true, get...)
			if f, ok := find(p.exchange(), http2.FrameHeaders, 3); !ok || f.status() != "200" {
				t.Fatal("connection unusable after the stream error")
			}
		})
	}
}

func TestWellFormedEdgeCases(t *testing.T) {
	q := packQuery(t, "a.example", dns.TypeA)
	get := getHead(t, "a.example")
	t.Run("te trailers", func(t *testing.T) {
		p := newPeer(t, nil)
		p.headers(1, true, append(get, "te", "trailers")...)
		if f, ok := find(p.exchange(), http2.FrameHeaders, 1); !ok || f.status() != "200" {
			t.Fatal("te: trailers refused")
		}
	})
	t.Run("POST with trailers", func(t *testing.T) {
		p := newPeer(t, nil)
		p.headers(1, false, postHead("content-length", strconv.Itoa(len(q)))...)
		p.fr.WriteData(1, false, q)
		p.headers(1, true, "x-checksum", "1")
		if f, ok := find(p.exchange(), http2.FrameHeaders, 1); !ok || f.status() != "200" {
			t.Fatal("POST with trailers not answered")
		}
	})
	t.Run("pseudo-header in trailers", func(t *testing.T) {
		p := newPeer(t, nil)
		p.headers(1, false, postHead()...)
		p.fr.WriteData(1, false, q)
		p.headers(1, true, ":path", "/")
		wantRST(t, p.exchange(), 1, http2.ErrCodeProtocol)
		if len(p.queries) != 0 {
			t.Fatal("query emitted")
		}
	})
	t.Run("trailers without END_STREAM", func(t *testing.T) {
		p := newPeer(t, nil)
		p.headers(1, false, postHead()...)
		p.fr.WriteData(1, false, q)
		p.headers(1, false, "x-a", "b")
		wantRST(t, p.exchange(), 1, http2.ErrCodeProtocol)
	})
	t.Run("GET with a body waits for END_STREAM", func(t *testing.T) {
		p := newPeer(t, nil)
		p.headers(1, false, get...)
		fs := p.exchange()
		wantNo(t, fs, http2.FrameHeaders)
		p.fr.WriteData(1, true, []byte("ignored"))
		if f, ok := find(p.exchange(), http2.FrameHeaders, 1); !ok || f.status() != "200" {
			t.Fatal("GET with a body not answered")
		}
	})
	t.Run("CONNECT", func(t *testing.T) {
		p := newPeer(t, nil)
		p.headers(1, true, ":method", "CONNECT", ":authority", "x:443")
		if f, ok := find(p.exchange(), http2.FrameHeaders, 1); !ok || f.status() != "405" {
			t.Fatal("CONNECT not 405")
		}
	})
}

// Custom response header names are sent lowercase whatever the
// configuration says (RFC 9113 8.2.1).
func TestCustomHeaderNamesLowercased(t *testing.T) {
	opts := DefaultOptions()
	opts.CustomResponseHeaders = []Header{{Key: "X-Served-By", Value: "dnsfront"}, {Key: "x-b", Value: "1"}}
	p := newPeer(t, opts)
	p.headers(1, true, getHead(t, "a.example")...)
	f, ok := find(p.exchange(), http2.FrameHeaders, 1)
	if !ok {
		t.Fatal("no response")
	}
	found := false
	for _, h := range f.fields {
		if h.Name != toLower(h.Name) {
			t.Errorf("uppercase response field %q", h.Name)
		}
		found = found || (h.Name == "x-served-by" && h.Value == "dnsfront")
	}
	if !found {
		t.Errorf("x-served-by missing: %v", f.fields)
	}
	if opts.CustomResponseHeaders[0].Key != "X-Served-By" {
		t.Error("the shared Options were modified")
	}
}

func toLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}
