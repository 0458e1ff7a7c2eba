package doh

import (
	"bytes"
	"encoding/base64"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Bench is a warm HTTP/2 session and one request's bytes. Header fields
// are sent never-indexed so the same bytes are valid for every stream; only
// the stream ID is patched.
type h2Bench struct {
	s         *Session
	in        []byte
	idOffsets []int
	answer    []byte
	out       []byte
	pending   Query
	emit      func(Query)
	n         int
}

func newH2Bench(tb testing.TB, post bool) *h2Bench {
	q := packQuery(tb, "www.example", dns.TypeA)
	_, answer := answerFor(q)
	s := NewSession(DefaultOptions(), HTTP2, time.Now)
	var pre bytes.Buffer
	pre.WriteString(http2.ClientPreface)
	http2.NewFramer(&pre, nil).WriteSettings()
	s.Feed(pre.Bytes(), func(Query) {})

	var req, hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	field := func(n, v string) { enc.WriteField(hpack.HeaderField{Name: n, Value: v, Sensitive: true}) }
	fr := http2.NewFramer(&req, nil)
	var idOffsets []int
	if post {
		field(":method", "POST")
		field(":scheme", "https")
		field(":path", "/dns-query")
		field("content-type", "application/dns-message")
		field("content-length", strconv.Itoa(len(q)))
		idOffsets = append(idOffsets, req.Len()+5)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true})
		idOffsets = append(idOffsets, req.Len()+5)
		fr.WriteData(1, true, q)
	} else {
		field(":method", "GET")
		field(":scheme", "https")
		field(":path", "/dns-query?dns="+base64.RawURLEncoding.EncodeToString(q))
		idOffsets = append(idOffsets, req.Len()+5)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true, EndStream: true})
	}
	fr.WriteWindowUpdate(0, uint32(len(answer))) // keep the connection window open
	b := &h2Bench{s: s, in: req.Bytes(), idOffsets: idOffsets, answer: answer}
	b.out = s.AppendOutput(nil)
	b.emit = func(q Query) { b.pending = q }
	return b
}

// request sends one request on the next stream and answers it.
func (b *h2Bench) request(tb testing.TB) {
	id := uint32(2*b.n + 1)
	b.n++
	for _, off := range b.idOffsets {
		b.in[off], b.in[off+1], b.in[off+2], b.in[off+3] = byte(id>>24), byte(id>>16), byte(id>>8), byte(id)
	}
	if err := b.s.Feed(b.in, b.emit); err != nil {
		tb.Fatal(err)
	}
	b.s.Respond(b.pending.ID, b.answer)
	b.out = b.s.AppendOutput(b.out[:0])
}

// benchH2 measures one request/response on a warm HTTP/2 session.
func benchH2(b *testing.B, post bool) {
	h := newH2Bench(b, post)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		h.request(b)
	}
	if h.s.Stats().Responses[Status200] != uint64(b.N) {
		b.Fatalf("%d answers for %d requests", h.s.Stats().Responses[Status200], b.N)
	}
}

// TestH2RequestAllocations keeps an HTTP/2 request, from its bytes to its
// answer's bytes, at no more than 2 allocations (none today).
func TestH2RequestAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race: sync.Pool drops buffers at random; run without -race")
	}
	for _, post := range []bool{true, false} {
		h := newH2Bench(t, post)
		h.request(t) // warm the stream free list and buffers
		if n := testing.AllocsPerRun(200, func() { h.request(t) }); n > 2 {
			t.Errorf("post=%v: %v allocations per request, want ≤ 2", post, n)
		}
	}
}

func BenchmarkH2POST(b *testing.B) { benchH2(b, true) }
func BenchmarkH2GET(b *testing.B)  { benchH2(b, false) }

func BenchmarkH1POST(b *testing.B) {
	q := packQuery(b, "www.example", dns.TypeA)
	_, answer := answerFor(q)
	in := append([]byte("POST /dns-query HTTP/1.1\r\nHost: x\r\nContent-Type: application/dns-message\r\nContent-Length: "+strconv.Itoa(len(q))+"\r\n\r\n"), q...)
	s := NewSession(DefaultOptions(), HTTP1, time.Now)
	var pending Query
	emit := func(q Query) { pending = q }
	var out []byte
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := s.Feed(in, emit); err != nil {
			b.Fatal(err)
		}
		s.Respond(pending.ID, answer)
		out = s.AppendOutput(out[:0])
	}
	if s.Stats().Responses[Status200] != uint64(b.N) {
		b.Fatalf("%d answers for %d requests", s.Stats().Responses[Status200], b.N)
	}
}
