package doh

import (
	"bytes"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// idleClientBytes is what Go's HTTP/2 client (the one `dnsfront bench
// conns` uses) sends for one POST query on a new connection: the preface,
// its SETTINGS and connection WINDOW_UPDATE, the ACK of our SETTINGS, and a
// request whose fields enter the HPACK dynamic table.
func idleClientBytes(tb testing.TB) []byte {
	q := packQuery(tb, "www.example", dns.TypeA)
	var b, hb bytes.Buffer
	b.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&b, nil)
	fr.WriteSettings(
		http2.Setting{ID: http2.SettingEnablePush, Val: 0},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: 4 << 20},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: 10 << 20},
	)
	fr.WriteWindowUpdate(0, 1<<30)
	fr.WriteSettingsAck()
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{
		{":authority", "dns.test:22443"}, {":method", "POST"}, {":path", "/dns-query"}, {":scheme", "https"},
		{"content-type", "application/dns-message"}, {"accept", "application/dns-message"},
		{"content-length", strconv.Itoa(len(q))}, {"accept-encoding", "gzip"}, {"user-agent", "Go-http-client/2.0"},
	} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true})
	fr.WriteData(1, true, q)
	return b.Bytes()
}

// liveHeap is the heap's live bytes after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// retainedPerIdleSession opens n sessions of proto, has each answer one
// query the way the engine does (Feed, Respond, AppendOutput into a buffer
// shared by the loop), and returns the live heap bytes each one keeps once
// idle.
func retainedPerIdleSession(tb testing.TB, proto Proto, in []byte, n int) float64 {
	opts := DefaultOptions()
	_, answer := answerFor(packQuery(tb, "www.example", dns.TypeA))
	var out []byte
	sessions := make([]*Session, n)
	before := liveHeap()
	for i := range sessions {
		s := NewSession(opts, proto, time.Now)
		var id uint64
		var got bool
		if err := s.Feed(in, func(q Query) { id, got = q.ID, true }); err != nil {
			tb.Fatal(err)
		}
		if !got {
			tb.Fatal("no query emitted")
		}
		s.Respond(id, answer)
		out = s.AppendOutput(out[:0])
		sessions[i] = s
	}
	after := liveHeap()
	if p := os.Getenv("DOH_IDLE_HEAPPROFILE"); p != "" {
		writeHeapProfile(tb, p)
	}
	runtime.KeepAlive(sessions)
	return float64(after-before) / float64(n)
}

// maxIdleH2Session bounds the live bytes of an idle HTTP/2 session that
// has answered one query (1.7 kB when it was set): the Session and h2conn
// structs, the HPACK decoder with the client's indexed fields in one
// buffer, our encoder's table of response fields, and a recycled stream
// without buffers. Input, output, request and response bodies are pooled
// while idle; x/net's Framer and hpack.Encoder are not used. Before these
// changes an idle session kept 4.4 kB.
const maxIdleH2Session = 2048

// TestIdleH2SessionMemory fails when an idle HTTP/2 session keeps more
// than maxIdleH2Session bytes of live heap.
func TestIdleH2SessionMemory(t *testing.T) {
	in := idleClientBytes(t)
	per := retainedPerIdleSession(t, HTTP2, in, 2000)
	t.Logf("idle HTTP/2 session: %.0f live bytes", per)
	if per > maxIdleH2Session {
		t.Errorf("an idle HTTP/2 session keeps %.0f bytes, want ≤ %d", per, maxIdleH2Session)
	}
}

// maxIdleH1Session bounds an idle HTTP/1.1 session the same way (0.6 kB
// when it was set, 1.6 kB before its request buffers were pooled).
const maxIdleH1Session = 768

func TestIdleH1SessionMemory(t *testing.T) {
	q := packQuery(t, "www.example", dns.TypeA)
	in := append([]byte("POST /dns-query HTTP/1.1\r\nHost: dns.test\r\nUser-Agent: Go-http-client/1.1\r\nContent-Type: application/dns-message\r\nAccept: application/dns-message\r\nContent-Length: "+strconv.Itoa(len(q))+"\r\n\r\n"), q...)
	per := retainedPerIdleSession(t, HTTP1, in, 2000)
	t.Logf("idle HTTP/1.1 session: %.0f live bytes", per)
	if per > maxIdleH1Session {
		t.Errorf("an idle HTTP/1.1 session keeps %.0f bytes, want ≤ %d", per, maxIdleH1Session)
	}
}

// writeHeapProfile writes the heap profile with the idle sessions live, for
// `go test -run TestIdle -memprofilerate=1` with DOH_IDLE_HEAPPROFILE set:
// `go tool pprof -sample_index=inuse_space -top doh.test FILE`.
func writeHeapProfile(tb testing.TB, path string) {
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		tb.Fatal(err)
	}
}
