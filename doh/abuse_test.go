package doh

import (
	"bytes"
	"encoding/base64"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/dnsfront/dnsfront/internal/testutil"
)

// rawH2 is a hand-driven HTTP/2 client built on the x/net Framer, able to
// send what well-behaved clients never do.
type rawH2 struct {
	t    *testing.T
	conn net.Conn
	fr   *http2.Framer
	enc  *hpack.Encoder
	hbuf bytes.Buffer
}

func dialRaw(t *testing.T, h *harness, settings ...http2.Setting) *rawH2 {
	t.Helper()
	c, err := net.Dial("tcp", h.addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := &rawH2{t: t, conn: c, fr: http2.NewFramer(c, c)}
	r.fr.AllowIllegalWrites = true
	r.enc = hpack.NewEncoder(&r.hbuf)
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	r.fr.WriteSettings(settings...)
	return r
}

func (r *rawH2) block(fields ...string) []byte {
	r.hbuf.Reset()
	for i := 0; i < len(fields); i += 2 {
		r.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return bytes.Clone(r.hbuf.Bytes())
}

func (r *rawH2) post(id uint32, endStream bool, extra ...string) {
	f := append([]string{":method", "POST", ":scheme", "https", ":path", "/dns-query", ":authority", "x", "content-type", "application/dns-message"}, extra...)
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: r.block(f...), EndHeaders: true, EndStream: endStream})
}

func (r *rawH2) get(id uint32, name string, qtype uint16) {
	q := base64.RawURLEncoding.EncodeToString(packQuery(r.t, name, qtype))
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndHeaders: true, EndStream: true,
		BlockFragment: r.block(":method", "GET", ":scheme", "https", ":path", "/dns-query?dns="+q, ":authority", "x")})
}

// untilGoAway reads frames until GOAWAY or the connection ends, answering
// nothing. It returns the GOAWAY (nil if none) and the frames' RST codes.
func (r *rawH2) untilGoAway() (*http2.GoAwayFrame, []http2.ErrCode) {
	var rsts []http2.ErrCode
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			return nil, rsts
		}
		switch f := f.(type) {
		case *http2.GoAwayFrame:
			return f, rsts
		case *http2.RSTStreamFrame:
			rsts = append(rsts, f.ErrCode)
		}
	}
}

func abuseOpts() *Options {
	o := DefaultOptions()
	o.MaxRapidResets = 10
	o.MaxSettingsFrames = 10
	o.MaxPingFrames = 10
	return o
}

func expectCalm(t *testing.T, h *harness, r *rawH2, kind Abuse) {
	t.Helper()
	ga, _ := r.untilGoAway()
	if ga == nil || ga.ErrCode != http2.ErrCodeEnhanceYourCalm {
		t.Fatalf("want GOAWAY ENHANCE_YOUR_CALM, got %v", ga)
	}
	// The server closes after the GOAWAY.
	if _, err := r.fr.ReadFrame(); err == nil {
		t.Errorf("connection still open after GOAWAY")
	}
	waitFor(t, func() bool { return h.snapshot().Abuse[kind] == 1 }, kind.String()+" counted")
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, what, cond)
}

func TestAbuseRapidReset(t *testing.T) {
	h := newHarness(t, abuseOpts(), false)
	r := dialRaw(t, h)
	for i := range 20 {
		id := uint32(2*i + 1)
		r.post(id, false)
		r.fr.WriteRSTStream(id, http2.ErrCodeCancel)
	}
	expectCalm(t, h, r, AbuseRapidReset)
}

// TestRapidResetAfterAnswer: resetting streams already answered is not an attack.
func TestResetAfterAnswerIsFine(t *testing.T) {
	h := newHarness(t, abuseOpts(), false)
	r := dialRaw(t, h)
	for i := range 20 {
		id := uint32(2*i + 1)
		r.get(id, "a.example", dns.TypeA)
		for { // wait for the answer
			f, err := r.fr.ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			if d, ok := f.(*http2.DataFrame); ok && d.StreamID == id && d.StreamEnded() {
				break
			}
			if g, ok := f.(*http2.GoAwayFrame); ok {
				t.Fatalf("GOAWAY %v", g.ErrCode)
			}
		}
		r.fr.WriteRSTStream(id, http2.ErrCodeCancel)
	}
	if h.snapshot().Abuse[AbuseRapidReset] != 0 {
		t.Errorf("counted as rapid reset")
	}
}

func TestAbuseContinuationFlood(t *testing.T) {
	h := newHarness(t, abuseOpts(), false)
	r := dialRaw(t, h)
	blk := r.block(":method", "POST", ":scheme", "https", ":path", "/dns-query")
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk, EndHeaders: false})
	for i := range 100 {
		frag := r.block("x-pad", strings.Repeat("p", i%10))
		r.fr.WriteContinuation(1, false, frag)
	}
	expectCalm(t, h, r, AbuseContinuationFlood)
}

func TestAbuseHPACKBomb(t *testing.T) {
	h := newHarness(t, abuseOpts(), false)
	r := dialRaw(t, h)
	// The first occurrence enters the dynamic table; each repeat is one
	// byte on the wire and 4 kB decoded.
	f := []string{":method", "GET", ":scheme", "https", ":path", "/dns-query"}
	for range 40 {
		f = append(f, "x-bomb", strings.Repeat("b", 4000))
	}
	blk := r.block(f...)
	if len(blk) > 4200 {
		t.Fatalf("encoder did not index: %d bytes", len(blk))
	}
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk, EndHeaders: true, EndStream: true})
	expectCalm(t, h, r, AbuseHPACKBomb)
}

func TestAbuseSettingsFlood(t *testing.T) {
	h := newHarness(t, abuseOpts(), false)
	r := dialRaw(t, h)
	for range 50 {
		r.fr.WriteSettings(http2.Setting{ID: http2.SettingEnablePush, Val: 0})
	}
	expectCalm(t, h, r, AbuseSettingsFlood)
}

func TestAbusePingFlood(t *testing.T) {
	h := newHarness(t, abuseOpts(), false)
	r := dialRaw(t, h)
	for i := range 50 {
		r.fr.WritePing(false, [8]byte{byte(i)})
	}
	expectCalm(t, h, r, AbusePingFlood)
}

// TestAbuseZeroWindowMemory: a client that opens no window while asking for
// large answers is cut off when the held responses pass the memory bound.
func TestAbuseZeroWindowMemory(t *testing.T) {
	o := abuseOpts()
	o.MaxConnMemory = 64 << 10
	h := newHarness(t, o, false)
	r := dialRaw(t, h, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	for i := range 20 {
		r.get(uint32(2*i+1), "big.example", dns.TypeTXT)
	}
	expectCalm(t, h, r, AbuseZeroWindow)
}

// TestAbuseZeroWindowStall: one response held by a closed window ends the
// connection at the idle timeout, even while the client keeps talking.
func TestAbuseZeroWindowStall(t *testing.T) {
	o := abuseOpts()
	o.IdleTimeout = 300 * time.Millisecond
	o.MaxPingFrames = 1000
	h := newHarness(t, o, false)
	r := dialRaw(t, h, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	r.get(1, "big.example", dns.TypeTXT)
	done := make(chan struct{})
	go func() { // keep the connection busy so that only the stall can end it
		defer close(done)
		for range 40 {
			if r.fr.WritePing(false, [8]byte{1}) != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	ga, _ := r.untilGoAway()
	<-done
	if ga == nil {
		t.Fatal("no GOAWAY")
	}
	waitFor(t, func() bool { return h.snapshot().Abuse[AbuseZeroWindow] == 1 }, "zero_window counted")
}

func TestMaxConcurrentStreams(t *testing.T) {
	o := DefaultOptions()
	o.MaxConcurrentStreams = 2
	h := newHarness(t, o, false)
	r := dialRaw(t, h)
	r.post(1, false)
	r.post(3, false)
	r.post(5, false)
	r.fr.WritePing(false, [8]byte{9})
	var refused []uint32
	for len(refused) == 0 {
		f, err := r.fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if rst, ok := f.(*http2.RSTStreamFrame); ok && rst.ErrCode == http2.ErrCodeRefusedStream {
			refused = append(refused, rst.StreamID)
		}
	}
	if refused[0] != 5 {
		t.Errorf("refused %v, want stream 5", refused)
	}
	waitFor(t, func() bool { return h.snapshot().Abuse[AbuseRefusedStream] == 1 }, "refused_stream counted")
}

func TestHeaderListTooLarge(t *testing.T) {
	h := newHarness(t, nil, false)
	r := dialRaw(t, h)
	q := base64.RawURLEncoding.EncodeToString(packQuery(t, "a.example", dns.TypeA))
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, EndStream: true,
		BlockFragment: r.block(":method", "GET", ":scheme", "https", ":path", "/dns-query?dns="+q,
			"x-a", strings.Repeat("a", 5000), "x-b", strings.Repeat("b", 5000))})
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if hf, ok := f.(*http2.HeadersFrame); ok {
			fields, err := hpack.NewDecoder(4096, nil).DecodeFull(hf.HeaderBlockFragment())
			if err != nil || fields[0].Value != "431" {
				t.Fatalf("response %v %v, want 431", fields, err)
			}
			break
		}
	}
	waitFor(t, func() bool { return h.snapshot().Responses[Status431] == 1 }, "431 counted")
}

// TestSmallWindows: a client with a 16-byte stream window and the default
// 64 kB connection window gets every byte of several large answers, the
// server resuming as WINDOW_UPDATEs arrive.
func TestSmallWindows(t *testing.T) {
	h := newHarness(t, nil, false)
	r := dialRaw(t, h, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 16}, http2.Setting{ID: http2.SettingMaxFrameSize, Val: 16384})
	const n = 8 // 8 answers of ~10 kB exceed the connection window too
	bodies := map[uint32]*bytes.Buffer{}
	for i := range n {
		id := uint32(2*i + 1)
		bodies[id] = new(bytes.Buffer)
		r.get(id, "big.example", dns.TypeTXT)
	}
	done := 0
	for done < n {
		f, err := r.fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %d answers: %v", done, err)
		}
		switch f := f.(type) {
		case *http2.DataFrame:
			if len(f.Data()) > 16 {
				t.Fatalf("DATA of %d bytes beyond a 16-byte window", len(f.Data()))
			}
			bodies[f.StreamID].Write(f.Data())
			if len(f.Data()) > 0 {
				r.fr.WriteWindowUpdate(f.StreamID, uint32(len(f.Data())))
				r.fr.WriteWindowUpdate(0, uint32(len(f.Data())))
			}
			if f.StreamEnded() {
				done++
			}
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v", f.ErrCode)
		}
	}
	for id, b := range bodies {
		var m dns.Msg
		if err := m.Unpack(b.Bytes()); err != nil || len(m.Answer) != 40 {
			t.Errorf("stream %d: %d bytes, %v", id, b.Len(), err)
		}
	}
	if s := h.snapshot(); s.Abuse != [NumAbuses]uint64{} {
		t.Errorf("abuse counted: %v", s.Abuse)
	}
}
