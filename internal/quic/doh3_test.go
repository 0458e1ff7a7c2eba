package quic

import (
	"bytes"
	"context"
	"encoding/base64"
	"github.com/dnsfront/dnsfront/engine"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/doh"
	"github.com/miekg/dns"
	"github.com/quic-go/quic-go/http3"
	"golang.org/x/crypto/ocsp"
)

func newDoH3(t *testing.T, o Options) (*harness, *http.Client, string) {
	t.Helper()
	o.Protocol = "DoH3"
	h := newHarness(t, o)
	tr := &http3.Transport{TLSClientConfig: h.clientTLS(http3.NextProtoH3)}
	t.Cleanup(func() { _ = tr.Close() })
	return h, &http.Client{Transport: tr}, "https://" + h.ln.Addr().String()
}

func readAnswer(t *testing.T, resp *http.Response) *dns.Msg {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/dns-message" {
		t.Fatalf("content-type %q", ct)
	}
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		t.Fatal(err)
	}
	return m
}

// GET and POST as RFC 8484 says, over HTTP/3: the answer comes from the engine, with
// cache-control from its TTL, and the handshake carries the staple.
func TestDoH3GetAndPost(t *testing.T) {
	h, client, base := newDoH3(t, Options{})
	q := query("www.example.", 0)

	resp, err := client.Get(base + "/dns-query?dns=" + base64.RawURLEncoding.EncodeToString(q))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Proto != "HTTP/3.0" {
		t.Fatalf("protocol %q, want HTTP/3.0", resp.Proto)
	}
	cs := resp.TLS
	if cs == nil || cs.NegotiatedProtocol != "h3" {
		t.Fatalf("TLS state %+v, want ALPN h3", cs)
	}
	if !sameBytes(cs.OCSPResponse, h.staple) {
		t.Fatal("the DoH3 handshake did not carry the bind's staple")
	}
	if r, err := ocsp.ParseResponseForCert(cs.OCSPResponse, cs.PeerCertificates[0], h.pki.Issuer.Cert); err != nil || r.Status != ocsp.Good {
		t.Fatalf("staple does not verify against the issuer as good: %v", err)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "max-age=300" {
		t.Fatalf("cache-control %q, want max-age=300", cc)
	}
	if m := readAnswer(t, resp); len(m.Answer) != 1 {
		t.Fatalf("GET: %d answers", len(m.Answer))
	}

	resp, err = client.Post(base+"/dns-query", "application/dns-message", bytes.NewReader(q))
	if err != nil {
		t.Fatal(err)
	}
	if m := readAnswer(t, resp); len(m.Answer) != 1 {
		t.Fatalf("POST: %d answers", len(m.Answer))
	}
	s := waitCounts(t, h.eng, func(s engine.Stats) bool { return s.Queries["doh3"] == 2 && s.Responses["doh3"] == 2 })
	if s.Queries["doh3"] != 2 || s.Responses["doh3"] != 2 {
		t.Fatalf("engine counted %d doh3 queries and %d responses, want 2 and 2", s.Queries["doh3"], s.Responses["doh3"])
	}
}

// Requests RFC 8484 refuses get the statuses the HTTP/2 DoH bind gives.
func TestDoH3Rejects(t *testing.T) {
	h, client, base := newDoH3(t, Options{DoH: &doh.Options{MaxBodySize: 100, ExactPathMatching: true, SendCacheControl: true,
		CustomResponseHeaders: []doh.Header{{Key: "x-served-by", Value: "dnsfront"}}}})
	q := query("www.example.", 0)
	cases := []struct {
		name, method, path, ctype string
		body                      []byte
		want                      int
	}{
		{"unknown path", "GET", "/other?dns=" + base64.RawURLEncoding.EncodeToString(q), "", nil, 404},
		{"missing dns parameter", "GET", "/dns-query", "", nil, 400},
		{"not base64url", "GET", "/dns-query?dns=***", "", nil, 400},
		{"POST of another type", "POST", "/dns-query", "text/plain", q, 415},
		{"body over the limit", "POST", "/dns-query", "application/dns-message", bytes.Repeat([]byte{1}, 200), 413},
		{"PUT", "PUT", "/dns-query", "application/dns-message", q, 405},
		{"not DNS", "POST", "/dns-query", "application/dns-message", []byte("0123456789abcdef"), 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, base+tc.path, bytes.NewReader(tc.body))
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if resp.Header.Get("X-Served-By") != "dnsfront" {
				t.Fatal("custom response header missing")
			}
			if tc.want == 405 && !strings.Contains(resp.Header.Get("Allow"), "POST") {
				t.Fatal("405 without Allow")
			}
		})
	}
	// The connection survived every refusal.
	resp, err := client.Post(base+"/dns-query", "application/dns-message", bytes.NewReader(q))
	if err != nil {
		t.Fatal(err)
	}
	readAnswer(t, resp)
	if h.ln.Stats().Accepted != 1 {
		t.Fatalf("%d connections, want the one reused", h.ln.Stats().Accepted)
	}
}

// Shutdown sends the HTTP/3 GOAWAY and closes once requests in flight are answered; the
// client's next request needs a new connection, which is refused.
func TestDoH3GracefulShutdown(t *testing.T) {
	h, client, base := newDoH3(t, Options{})
	q := query("www.example.", 0)
	resp, err := client.Post(base+"/dns-query", "application/dns-message", bytes.NewReader(q))
	if err != nil {
		t.Fatal(err)
	}
	readAnswer(t, resp)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := h.ln.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	// The client keeps an idle connection open; the server closes it rather than wait for
	// the client's idle timeout.
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("shutdown took %v with no request in flight", d)
	}
	if n := h.ln.Connections(); n != 0 {
		t.Fatalf("%d connections left after shutdown", n)
	}
	rctx, rcancel := context.WithTimeout(context.Background(), time.Second)
	defer rcancel()
	req, _ := http.NewRequestWithContext(rctx, "POST", base+"/dns-query", bytes.NewReader(q))
	req.Header.Set("Content-Type", "application/dns-message")
	if resp, err := client.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("a request succeeded after shutdown")
	}
}
