package doh

import (
	"bytes"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// querySaw is what the engine read from one emitted query while it was being emitted.
type querySaw struct {
	path, tag string
	hasTag    bool
}

func recordSaw(got *[]querySaw) func(Query) {
	return func(q Query) {
		s := querySaw{path: string(q.Path)}
		if q.Headers != nil {
			s.tag, s.hasTag = q.Headers.Header("X-Client-Tag")
			s.tag = string([]byte(s.tag)) // a copy: the view dies with emit
		}
		*got = append(*got, s)
	}
}

// TestH2QueryPathAndHeaders: each HTTP/2 query carries its own request's path and
// header fields, even when another stream's head arrives between its head and its body.
func TestH2QueryPathAndHeaders(t *testing.T) {
	q := packQuery(t, "www.example", dns.TypeA)
	s := NewSession(DefaultOptions(), HTTP2, time.Now)
	var in bytes.Buffer
	in.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&in, nil)
	fr.WriteSettings()
	for _, st := range []struct {
		id        uint32
		path, tag string
	}{{1, "/dns-query", "one"}, {3, "/dns-query?ct", "three"}} {
		var hb bytes.Buffer
		enc := hpack.NewEncoder(&hb)
		for _, f := range [][2]string{{":method", "POST"}, {":scheme", "https"}, {":path", st.path},
			{"content-type", "application/dns-message"}, {"content-length", strconv.Itoa(len(q))}, {"x-client-tag", st.tag}} {
			enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: st.id, BlockFragment: hb.Bytes(), EndHeaders: true})
	}
	fr.WriteData(1, true, q)
	fr.WriteData(3, true, q)
	var got []querySaw
	if err := s.Feed(in.Bytes(), recordSaw(&got)); err != nil {
		t.Fatal(err)
	}
	want := []querySaw{{"/dns-query", "one", true}, {"/dns-query", "three", true}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("queries saw %+v, want %+v", got, want)
	}
}

// TestH1QueryPathAndHeaders: an HTTP/1.1 query carries its path and header fields, the
// names compared without regard to case, also when its body comes in a later read.
func TestH1QueryPathAndHeaders(t *testing.T) {
	q := packQuery(t, "www.example", dns.TypeA)
	s := NewSession(DefaultOptions(), HTTP1, time.Now)
	head := "POST /dns-query?x=1 HTTP/1.1\r\nHost: x\r\nx-CLIENT-tag: blue\r\nContent-Type: application/dns-message\r\nContent-Length: " + strconv.Itoa(len(q)) + "\r\n\r\n"
	var got []querySaw
	if err := s.Feed([]byte(head), recordSaw(&got)); err != nil {
		t.Fatal(err)
	}
	if err := s.Feed(q, recordSaw(&got)); err != nil {
		t.Fatal(err)
	}
	want := querySaw{"/dns-query", "blue", true}
	if len(got) != 1 || got[0] != want {
		t.Fatalf("query saw %+v, want %+v", got, want)
	}
}
