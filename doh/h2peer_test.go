package doh

import (
	"bytes"
	"encoding/base64"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2peer drives a Session in memory as an HTTP/2 client that may break the
// rules: frames are written with x/net's Framer (illegal writes allowed),
// fed to the session, and the session's output is read back frame by frame.
type h2peer struct {
	t       *testing.T
	s       *Session
	in      bytes.Buffer
	fr      *http2.Framer
	hb      bytes.Buffer
	enc     *hpack.Encoder
	dec     *hpack.Decoder
	queries []Query
	err     error // the last Feed error
	// answer: Respond to every query as soon as it is emitted.
	answer bool
}

// seen is one frame the session wrote.
type seen struct {
	typ    http2.FrameType
	stream uint32
	code   http2.ErrCode // RST_STREAM, GOAWAY
	end    bool          // END_STREAM
	fields []hpack.HeaderField
	data   []byte
	last   uint32 // GOAWAY's last stream ID
}

func (f seen) status() string {
	for _, h := range f.fields {
		if h.Name == ":status" {
			return h.Value
		}
	}
	return ""
}

func newPeer(t *testing.T, opts *Options) *h2peer {
	t.Helper()
	p := &h2peer{t: t, s: NewSession(opts, HTTP2, time.Now), answer: true}
	p.fr = http2.NewFramer(&p.in, nil)
	p.fr.AllowIllegalWrites = true
	p.enc = hpack.NewEncoder(&p.hb)
	p.dec = hpack.NewDecoder(4096, nil)
	p.in.WriteString(http2.ClientPreface)
	p.fr.WriteSettings()
	p.exchange() // our SETTINGS, WINDOW_UPDATE, SETTINGS ACK
	return p
}

func (p *h2peer) block(fields ...string) []byte {
	p.hb.Reset()
	for i := 0; i < len(fields); i += 2 {
		p.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return bytes.Clone(p.hb.Bytes())
}

func (p *h2peer) headers(id uint32, end bool, fields ...string) {
	p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: p.block(fields...), EndHeaders: true, EndStream: end})
}

// postHead is a well-formed POST head; extra fields are appended.
func postHead(extra ...string) []string {
	return append([]string{":method", "POST", ":scheme", "https", ":path", "/dns-query", ":authority", "x", "content-type", "application/dns-message"}, extra...)
}

func getHead(t testing.TB, name string) []string {
	q := packQuery(t, name, dns.TypeA)
	return []string{":method", "GET", ":scheme", "https", ":path", "/dns-query?dns=" + b64(q), ":authority", "x"}
}

// exchange feeds what was written since the last call and returns the
// frames the session wrote in answer.
func (p *h2peer) exchange() []seen {
	p.t.Helper()
	in := bytes.Clone(p.in.Bytes())
	p.in.Reset()
	var emitted []Query
	p.err = p.s.Feed(in, func(q Query) {
		q.Msg = bytes.Clone(q.Msg)
		emitted = append(emitted, q)
		if p.answer {
			_, ans := answerFor(q.Msg)
			p.s.Respond(q.ID, ans)
		}
	})
	p.queries = append(p.queries, emitted...)
	return p.read()
}

// read parses the session's pending output.
func (p *h2peer) read() []seen {
	p.t.Helper()
	out := p.s.AppendOutput(nil)
	fr := http2.NewFramer(nil, bytes.NewReader(out))
	var fs []seen
	for {
		f, err := fr.ReadFrame()
		if err == io.EOF {
			return fs
		}
		if err != nil {
			p.t.Fatalf("session output: %v", err)
		}
		x := seen{typ: f.Header().Type, stream: f.Header().StreamID}
		switch f := f.(type) {
		case *http2.HeadersFrame:
			x.end = f.StreamEnded()
			hf, err := p.dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				p.t.Fatalf("response headers: %v", err)
			}
			x.fields = hf
		case *http2.DataFrame:
			x.end = f.StreamEnded()
			x.data = bytes.Clone(f.Data())
		case *http2.RSTStreamFrame:
			x.code = f.ErrCode
		case *http2.GoAwayFrame:
			x.code, x.last = f.ErrCode, f.LastStreamID
		}
		fs = append(fs, x)
	}
}

// find returns the first frame of type typ on stream id.
func find(fs []seen, typ http2.FrameType, id uint32) (seen, bool) {
	for _, f := range fs {
		if f.typ == typ && f.stream == id {
			return f, true
		}
	}
	return seen{}, false
}

func wantRST(t *testing.T, fs []seen, id uint32, code http2.ErrCode) {
	t.Helper()
	f, ok := find(fs, http2.FrameRSTStream, id)
	if !ok || f.code != code {
		t.Fatalf("want RST_STREAM %v on stream %d, got %v", code, id, describe(fs))
	}
}

func wantGoAway(t *testing.T, fs []seen, code http2.ErrCode) seen {
	t.Helper()
	f, ok := find(fs, http2.FrameGoAway, 0)
	if !ok || f.code != code {
		t.Fatalf("want GOAWAY %v, got %v", code, describe(fs))
	}
	return f
}

func wantNo(t *testing.T, fs []seen, typ http2.FrameType) {
	t.Helper()
	for _, f := range fs {
		if f.typ == typ {
			t.Fatalf("unexpected %v: %v", typ, describe(fs))
		}
	}
}

func describe(fs []seen) string {
	var b bytes.Buffer
	for _, f := range fs {
		b.WriteString(f.typ.String() + "[" + strconv.Itoa(int(f.stream)))
		switch f.typ {
		case http2.FrameRSTStream, http2.FrameGoAway:
			b.WriteString(" " + f.code.String())
		case http2.FrameHeaders:
			b.WriteString(" " + f.status())
		}
		b.WriteString("] ")
	}
	return b.String()
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
