package doh

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Requests builds a client byte stream: preface, SETTINGS, then for each
// query a POST (HEADERS + DATA) and a GET.
func h2Requests(t testing.TB, names ...string) []byte {
	var buf bytes.Buffer
	buf.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&buf, nil)
	fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	block := func(f ...string) []byte {
		hb.Reset()
		for i := 0; i < len(f); i += 2 {
			enc.WriteField(hpack.HeaderField{Name: f[i], Value: f[i+1]})
		}
		return bytes.Clone(hb.Bytes())
	}
	id := uint32(1)
	for _, n := range names {
		q := packQuery(t, n, dns.TypeA)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndHeaders: true,
			BlockFragment: block(":method", "POST", ":scheme", "https", ":path", "/dns-query", "content-type", "application/dns-message", "content-length", strconv.Itoa(len(q)))})
		fr.WriteData(id, false, q[:5])
		fr.WriteData(id, true, q[5:])
		id += 2
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndHeaders: true, EndStream: true,
			BlockFragment: block(":method", "GET", ":scheme", "https", ":path", "/dns-query?dns="+base64.RawURLEncoding.EncodeToString(q))})
		id += 2
	}
	return buf.Bytes()
}

func h1Requests(t testing.TB, names ...string) []byte {
	var buf bytes.Buffer
	for _, n := range names {
		q := packQuery(t, n, dns.TypeA)
		buf.WriteString("POST /dns-query HTTP/1.1\r\nHost: x\r\nContent-Type: application/dns-message\r\nContent-Length: " + strconv.Itoa(len(q)) + "\r\n\r\n")
		buf.Write(q)
		buf.WriteString("GET /dns-query?dns=" + base64.RawURLEncoding.EncodeToString(q) + " HTTP/1.1\r\nHost: x\r\n\r\n")
		buf.WriteString("POST /dns-query HTTP/1.1\r\nHost: x\r\nContent-Type: application/dns-message\r\nTransfer-Encoding: chunked\r\n\r\n")
		buf.WriteString(strconv.FormatInt(int64(len(q)-3), 16) + ";ext=1\r\n")
		buf.Write(q[:len(q)-3])
		buf.WriteString("\r\n3\r\n")
		buf.Write(q[len(q)-3:])
		buf.WriteString("\r\n0\r\nX-Trailer: y\r\n\r\n")
	}
	return buf.Bytes()
}

// feedSplit feeds in chunks of size step, answering each pass's queries in
// reverse order, and returns the output and the questions answered.
func feedSplit(t testing.TB, s *Session, in []byte, step int) ([]byte, []string) {
	var out []byte
	var names []string
	var qs []Query
	for len(in) > 0 {
		n := min(step, len(in))
		qs = qs[:0]
		if err := s.Feed(in[:n], func(q Query) { qs = append(qs, q) }); err != nil {
			t.Fatalf("Feed: %v", err)
		}
		in = in[n:]
		for i := len(qs) - 1; i >= 0; i-- {
			var m dns.Msg
			if err := m.Unpack(qs[i].Msg); err != nil {
				t.Fatalf("emitted query does not parse: %v", err)
			}
			names = append(names, m.Question[0].Name)
			_, ans := answerFor(qs[i].Msg)
			s.Respond(qs[i].ID, ans)
		}
		out = s.AppendOutput(out)
	}
	return out, names
}

func TestOneByteSplitsH2(t *testing.T) {
	for _, proto := range []Proto{HTTP2, Detect} {
		s := NewSession(DefaultOptions(), proto, time.Now)
		out, names := feedSplit(t, s, h2Requests(t, "a.example", "b.example"), 1)
		if len(names) != 4 {
			t.Fatalf("%v: %d queries emitted: %v", proto, len(names), names)
		}
		// Read the server's byte stream back with a Framer.
		fr := http2.NewFramer(nil, bytes.NewReader(out))
		dec := hpack.NewDecoder(4096, nil)
		bodies := map[uint32][]byte{}
		statuses := 0
		for {
			f, err := fr.ReadFrame()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			switch f := f.(type) {
			case *http2.HeadersFrame:
				hf, err := dec.DecodeFull(f.HeaderBlockFragment())
				if err != nil || hf[0].Value != "200" {
					t.Fatalf("headers %v %v", hf, err)
				}
				statuses++
			case *http2.DataFrame:
				bodies[f.StreamID] = append(bodies[f.StreamID], f.Data()...)
			case *http2.GoAwayFrame, *http2.RSTStreamFrame:
				t.Fatalf("unexpected %v", f)
			}
		}
		if statuses != 4 || len(bodies) != 4 {
			t.Fatalf("%d responses, %d bodies", statuses, len(bodies))
		}
		for id, b := range bodies {
			var m dns.Msg
			if err := m.Unpack(b); err != nil || len(m.Answer) != 2 {
				t.Errorf("stream %d: %v %v", id, err, &m)
			}
		}
	}
}

func TestOneByteSplitsH1(t *testing.T) {
	for _, proto := range []Proto{HTTP1, Detect} {
		for _, step := range []int{1, 7, 1 << 20} {
			s := NewSession(DefaultOptions(), proto, time.Now)
			out, names := feedSplit(t, s, h1Requests(t, "a.example", "b.example"), step)
			want := []string{"a.example.", "a.example.", "a.example.", "b.example.", "b.example.", "b.example."}
			if len(names) != len(want) {
				t.Fatalf("step %d: emitted %v", step, names)
			}
			br := bufio.NewReader(bytes.NewReader(out))
			for i := range want {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("step %d response %d: %v", step, i, err)
				}
				b, _ := io.ReadAll(resp.Body)
				var m dns.Msg
				if err := m.Unpack(b); err != nil || resp.StatusCode != 200 || m.Question[0].Name != want[i] {
					t.Fatalf("step %d response %d: %d %v %v", step, i, resp.StatusCode, err, &m)
				}
			}
			if s.Closed() {
				t.Errorf("keep-alive session closed")
			}
		}
	}
}

// TestH1PipelineOrder: answers given out of order leave in request order,
// and a later answer waits for an earlier one.
func TestH1PipelineOrder(t *testing.T) {
	s := NewSession(DefaultOptions(), HTTP1, time.Now)
	var qs []Query
	in := h1Requests(t, "a.example")
	if err := s.Feed(in, func(q Query) { qs = append(qs, q) }); err != nil || len(qs) != 3 {
		t.Fatalf("%v, %d queries", err, len(qs))
	}
	_, ans := answerFor(qs[2].Msg)
	s.Respond(qs[2].ID, ans)
	s.Fail(qs[1].ID, 504)
	if out := s.AppendOutput(nil); len(out) != 0 {
		t.Fatalf("responses overtook the first: %q", out)
	}
	_, ans = answerFor(qs[0].Msg)
	s.Respond(qs[0].ID, ans)
	br := bufio.NewReader(bytes.NewReader(s.AppendOutput(nil)))
	for i, want := range []int{200, 504, 200} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != want {
			t.Fatalf("response %d: %v %v, want %d", i, resp, err, want)
		}
		io.Copy(io.Discard, resp.Body)
	}
}

func TestH1ConnectionCloseAndShutdown(t *testing.T) {
	s := NewSession(DefaultOptions(), HTTP1, time.Now)
	var qs []Query
	q := packQuery(t, "a.example", dns.TypeA)
	req := "GET /dns-query?dns=" + base64.RawURLEncoding.EncodeToString(q) + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	s.Feed([]byte(req+req), func(q Query) { qs = append(qs, q) })
	if len(qs) != 1 {
		t.Fatalf("%d queries after Connection: close", len(qs))
	}
	_, ans := answerFor(qs[0].Msg)
	s.Respond(qs[0].ID, ans)
	out := s.AppendOutput(nil)
	if !bytes.Contains(out, []byte("connection: close")) || !s.Closed() {
		t.Errorf("closed %v, out %q", s.Closed(), out)
	}

	s = NewSession(DefaultOptions(), HTTP1, time.Now)
	qs = qs[:0]
	s.Feed([]byte(req[:len(req)-len("Connection: close\r\n\r\n")]+"\r\n"), func(q Query) { qs = append(qs, q) })
	s.Shutdown()
	if s.Closed() {
		t.Fatal("closed with a query in flight")
	}
	s.Respond(qs[0].ID, ans)
	out = s.AppendOutput(nil)
	if !bytes.Contains(out, []byte("connection: close")) || !s.Closed() {
		t.Errorf("after Shutdown: closed %v, out %q", s.Closed(), out)
	}
}

func TestH2ShutdownAndIdle(t *testing.T) {
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	s := NewSession(DefaultOptions(), HTTP2, clock)
	var qs []Query
	if err := s.Feed(h2Requests(t, "a.example"), func(q Query) { qs = append(qs, q) }); err != nil || len(qs) != 2 {
		t.Fatalf("%v %d", err, len(qs))
	}
	s.Shutdown()
	if s.Closed() {
		t.Fatal("closed with streams in flight")
	}
	for _, q := range qs {
		_, ans := answerFor(q.Msg)
		s.Respond(q.ID, ans)
	}
	if !s.Closed() {
		t.Fatal("not closed after the last answer")
	}
	fr := http2.NewFramer(nil, bytes.NewReader(s.AppendOutput(nil)))
	sawGoAway := false
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			break
		}
		if g, ok := f.(*http2.GoAwayFrame); ok && g.ErrCode == http2.ErrCodeNo && g.LastStreamID == 3 {
			sawGoAway = true
		}
	}
	if !sawGoAway {
		t.Error("no GOAWAY NO_ERROR with last stream 3")
	}

	s = NewSession(DefaultOptions(), HTTP2, clock)
	if d := s.Deadline(); !d.Equal(now.Add(DefaultIdleTimeout)) {
		t.Fatalf("deadline %v", d)
	}
	if s.Expire() {
		t.Fatal("expired early")
	}
	now = now.Add(DefaultIdleTimeout)
	if !s.Expire() || !s.Closed() || s.Stats().IdleTimeouts != 1 {
		t.Fatal("idle session did not expire")
	}
}
