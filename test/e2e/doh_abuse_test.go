package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/http2"

	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/dnsfront/dnsfront/internal/testutil"
)

// goodClient queries the DoH bind over one HTTP/2 connection every few milliseconds
// until stopped, counting answers, failures and the connections it had to open.
type goodClient struct {
	answers, conns atomic.Int64
	mu             sync.Mutex
	errs           []string
	stop           chan struct{}
	done           chan struct{}
}

func startGoodClient(t *testing.T, c *http.Client, url string) *goodClient {
	g := &goodClient{stop: make(chan struct{}), done: make(chan struct{})}
	wire := packDoH(t, NewQuery("www.doh.test", dns.TypeA))
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		if !i.Reused {
			g.conns.Add(1)
		}
	}}
	go func() {
		defer close(g.done)
		for {
			select {
			case <-g.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace),
				http.MethodPost, url, strings.NewReader(string(wire)))
			req.Header.Set("content-type", "application/dns-message")
			resp, err := c.Do(req)
			if err != nil {
				g.fail(err.Error())
				continue
			}
			m := new(dns.Msg)
			var body [512]byte
			n, _ := io.ReadFull(resp.Body, body[:])
			resp.Body.Close()
			if resp.StatusCode != 200 || m.Unpack(body[:n]) != nil || len(m.Answer) != 2 {
				g.fail(fmt.Sprintf("status %d, %d bytes", resp.StatusCode, n))
				continue
			}
			g.answers.Add(1)
		}
	}()
	return g
}

func (g *goodClient) fail(s string) {
	g.mu.Lock()
	g.errs = append(g.errs, s)
	g.mu.Unlock()
}

// Stop stops the client and returns its failures.
func (g *goodClient) Stop() []string {
	close(g.stop)
	<-g.done
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.errs
}

// TestDoHAbuse attacks the TLS DoH bind with raw HTTP/2 clients (rapid reset, CONTINUATION
// flood, HPACK bomb, PING and SETTINGS floods), one connection each, while a well-behaved
// client queries over its own connection. Each attacker must get GOAWAY
// ENHANCE_YOUR_CALM and be closed, the defence must be counted in
// dnsfront_doh_abuse_total{kind}, and the well-behaved client must see no error and keep
// its one connection.
func TestDoHAbuse(t *testing.T) {
	t.Parallel()
	f := startDoHFront(t, dohRecords)
	addr := f.d.Addr("doh")
	good := startGoodClient(t, newDoHClient(t, f.pki, "h2"), dohURL(f.d, "https", "doh", "/dns-query"))
	stopped := false
	defer func() {
		if !stopped {
			good.Stop()
		}
	}()

	attacks := []struct {
		kind string
		run  func(h *h2Raw) error
	}{
		{"rapid_reset", func(h *h2Raw) error {
			// HEADERS of a POST whose body never comes, reset at once: the stream costs the
			// server work and the client nothing (CVE-2023-44487). The limit is 200 per 10 s.
			blk := h.block("POST", "/dns-query", "content-type", "application/dns-message")
			for i := range 300 {
				id := uint32(2*i + 1)
				if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: blk, EndHeaders: true}); err != nil {
					return err
				}
				if err := h.fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
					return err
				}
			}
			return nil
		}},
		{"continuation_flood", func(h *h2Raw) error {
			// One header block in 1 HEADERS and 40 CONTINUATION frames (limit 16), small
			// enough in bytes that only the frame count can stop it (CVE-2024-27316).
			var extra []string
			for i := range 40 {
				extra = append(extra, fmt.Sprintf("x-pad-%d", i), "0123456789")
			}
			blk := h.block("POST", "/dns-query", extra...)
			n := 41
			size := (len(blk) + n - 1) / n
			if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk[:size]}); err != nil {
				return err
			}
			for off := size; off < len(blk); off += size {
				end := min(off+size, len(blk))
				if err := h.fr.WriteContinuation(1, end == len(blk), blk[off:end]); err != nil {
					return err
				}
			}
			return nil
		}},
		{"hpack_bomb", func(h *h2Raw) error {
			// One header value longer than max_header_list_size (8192).
			blk := h.block("GET", "/dns-query?dns=AAAA", "x-bomb", strings.Repeat("b", 10000))
			return h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk, EndHeaders: true, EndStream: true})
		}},
		{"ping_flood", func(h *h2Raw) error {
			for i := range 200 {
				if err := h.fr.WritePing(false, [8]byte{byte(i)}); err != nil {
					return err
				}
			}
			return nil
		}},
		{"settings_flood", func(h *h2Raw) error {
			for range 200 {
				if err := h.fr.WriteSettings(); err != nil {
					return err
				}
			}
			return nil
		}},
	}
	for _, a := range attacks {
		t.Run(a.kind, func(t *testing.T) {
			before := metricOf(t, f.d, "dnsfront_doh_abuse_total", fmt.Sprintf("kind=%q", a.kind))
			// Overlap: the well-behaved client is answered right before each attack.
			n := good.answers.Load()
			testutil.Poll(15*time.Second, func() bool { return good.answers.Load() >= n+2 })
			h := dialH2Raw(t, addr, f.pki)
			// The server may close before all is written: a write error is the defence at
			// work, not a failure.
			werr := a.run(h)
			code, gotGoAway, err := h.awaitGoAway(3 * time.Second)
			switch {
			case gotGoAway && code != http2.ErrCodeEnhanceYourCalm:
				t.Errorf("GOAWAY %v, want ENHANCE_YOUR_CALM", code)
			case !gotGoAway && werr == nil && !isReset(err) && !strings.Contains(fmt.Sprint(err), "EOF"):
				t.Errorf("no GOAWAY and the connection was not closed: %v", err)
			}
			t.Logf("%s: GOAWAY %v (received: %v), read error %v, write error %v", a.kind, code, gotGoAway, err, werr)
			if gotGoAway && !h.closedAfter(3*time.Second) {
				t.Error("the connection stayed open after GOAWAY")
			}
			after, _ := waitMetricOf(t, f.d, 10*time.Second, func(v float64) bool { return v > before },
				"dnsfront_doh_abuse_total", fmt.Sprintf("kind=%q", a.kind))
			if after != before+1 {
				t.Errorf(`dnsfront_doh_abuse_total{kind=%q} went %v → %v, want +1`, a.kind, before, after)
			}
		})
	}
	// Give the good client a few more rounds after the last attack.
	n := good.answers.Load()
	testutil.Poll(15*time.Second, func() bool { return good.answers.Load() >= n+5 })
	errs := good.Stop()
	stopped = true
	if len(errs) > 0 {
		t.Errorf("the well-behaved client got %d errors during the attacks, first: %s", len(errs), errs[0])
	}
	if good.answers.Load() < 10 {
		t.Errorf("the well-behaved client got only %d answers during the attacks", good.answers.Load())
	}
	if c := good.conns.Load(); c != 1 {
		t.Errorf("the well-behaved client opened %d connections, want 1 (its connection must not notice the attacks)", c)
	}
	t.Logf("well-behaved client: %d answers, %d connection(s)", good.answers.Load(), good.conns.Load())
}

// TestDoHAbuseThresholdsFromConfig sets the documented abuse thresholds of the doh block
// (docs/doh.md: max_ping_frames, max_settings_frames, max_rapid_resets,
// max_continuation_frames, abuse_window, max_header_list_size, max_connection_memory) and
// checks that a lowered max_ping_frames is what the server enforces.
func TestDoHAbuseThresholdsFromConfig(t *testing.T) {
	t.Parallel()
	pki := devpki.NewTestPKI(t, t.TempDir())
	be := StartBackend(t, BackendOptions{Records: dohRecords})
	d := startFE(t, feConfig{
		PKI: pki,
		Binds: []feBind{{Port: "doh", Protocol: "DoH", TLS: true, DoH: `{paths: ["/dns-query"], max_ping_frames: 10, ` +
			`max_settings_frames: 10, max_rapid_resets: 10, max_continuation_frames: 4, abuse_window: 10, ` +
			`max_header_list_size: 4096, max_connection_memory: 262144}`}},
		Backends: []feBackend{{Name: "main", Addr: be.Addr}},
	})
	h := dialH2Raw(t, d.Addr("doh"), pki)
	for i := range 15 {
		if err := h.fr.WritePing(false, [8]byte{byte(i)}); err != nil {
			break
		}
	}
	code, ok, err := h.awaitGoAway(3 * time.Second)
	if !ok || code != http2.ErrCodeEnhanceYourCalm {
		t.Errorf("15 PINGs with max_ping_frames 10: GOAWAY %v (received %v, %v), want ENHANCE_YOUR_CALM", code, ok, err)
	}
}
