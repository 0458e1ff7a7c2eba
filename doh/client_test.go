package doh

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// h2Client speaks HTTP/2 over TLS only: net/http's own client, not x/net's.
func h2Client(h *harness) *http.Client {
	var p http.Protocols
	p.SetHTTP2(true)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: h.certPool()},
		Protocols:       &p,
	}}
}

func h1Client(h *harness) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: h.certPool(), NextProtos: []string{"http/1.1"}},
		TLSNextProto:      map[string]func(string, *tls.Conn) http.RoundTripper{},
		ForceAttemptHTTP2: false,
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: tr}
}

// h2cClient speaks HTTP/2 with prior knowledge in cleartext.
func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Protocols: &p}}
}

func h1PlainClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
}

type dohResult struct {
	status int
	header http.Header
	body   []byte
	proto  string
}

func doGET(t *testing.T, c *http.Client, base string, query []byte) dohResult {
	t.Helper()
	return do(t, c, http.MethodGet, base+"?dns="+base64.RawURLEncoding.EncodeToString(query), "", nil)
}

func doPOST(t *testing.T, c *http.Client, url string, query []byte) dohResult {
	t.Helper()
	return do(t, c, http.MethodPost, url, "application/dns-message", query)
}

func do(t *testing.T, c *http.Client, method, url, ctype string, body []byte) dohResult {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("content-type", ctype)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return dohResult{resp.StatusCode, resp.Header, b, resp.Proto}
}

// checkAnswer asserts a 200 DoH answer carrying the expected records.
func checkAnswer(t *testing.T, r dohResult, wantProto, wantIP, wantMaxAge string) *dns.Msg {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("status %d, body %q", r.status, r.body)
	}
	if r.proto != wantProto {
		t.Errorf("proto %s, want %s", r.proto, wantProto)
	}
	if ct := r.header.Get("content-type"); ct != "application/dns-message" {
		t.Errorf("content-type %q", ct)
	}
	if cl := r.header.Get("content-length"); cl == "" && wantProto == "HTTP/1.1" {
		t.Errorf("no content-length")
	}
	if cc := r.header.Get("cache-control"); cc != "max-age="+wantMaxAge {
		t.Errorf("cache-control %q, want max-age=%s", cc, wantMaxAge)
	}
	if sv := r.header.Get("server"); sv != "" {
		t.Errorf("server header leaked: %q", sv)
	}
	var m dns.Msg
	if err := m.Unpack(r.body); err != nil {
		t.Fatalf("answer does not parse: %v", err)
	}
	if m.Id != 0 || !m.Response {
		t.Errorf("answer id %d response %v", m.Id, m.Response)
	}
	if wantIP != "" {
		if len(m.Answer) == 0 {
			t.Fatalf("no answer records: %v", &m)
		}
		if a, ok := m.Answer[0].(*dns.A); !ok || a.A.String() != wantIP {
			t.Errorf("answer %v, want %s", m.Answer[0], wantIP)
		}
	}
	return &m
}

func TestGoClients(t *testing.T) {
	tlsH := newHarness(t, nil, true)
	plainH := newHarness(t, nil, false)
	q := packQuery(t, "www.example", dns.TypeA)
	nx := packQuery(t, "nx.example", dns.TypeA)
	cases := []struct {
		name   string
		client *http.Client
		h      *harness
		proto  string
	}{
		{"h2", h2Client(tlsH), tlsH, "HTTP/2.0"},
		{"h1", h1Client(tlsH), tlsH, "HTTP/1.1"},
		{"h2c", h2cClient(), plainH, "HTTP/2.0"},
		{"h1-cleartext", h1PlainClient(), plainH, "HTTP/1.1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := tc.h.url("/dns-query")
			for range 3 { // keep-alive: several requests on one connection
				checkAnswer(t, doGET(t, tc.client, u, q), tc.proto, "192.0.2.1", "60")
				checkAnswer(t, doPOST(t, tc.client, u, q), tc.proto, "192.0.2.1", "60")
			}
			m := checkAnswer(t, doPOST(t, tc.client, u, nx), tc.proto, "", "120")
			if m.Rcode != dns.RcodeNameError {
				t.Errorf("rcode %d", m.Rcode)
			}
			// A large answer crosses several DATA frames / TCP segments.
			big := checkAnswer(t, doPOST(t, tc.client, u, packQuery(t, "big.example", dns.TypeTXT)), tc.proto, "", "90")
			if len(big.Answer) != 40 {
				t.Errorf("big answer has %d records", len(big.Answer))
			}
		})
	}
}

// TestConcurrentH2 sends many requests at once over one HTTP/2 connection;
// the harness answers each read pass in reverse order.
func TestConcurrentH2(t *testing.T) {
	h := newHarness(t, nil, true)
	c := h2Client(h)
	u := h.url("/dns-query")
	errs := make(chan string, 50)
	for i := range 50 {
		go func() {
			name := "n" + strings.Repeat("x", i%7) + ".example"
			req, _ := http.NewRequest("POST", u, bytes.NewReader(packQuery(t, name, dns.TypeA)))
			req.Header.Set("content-type", "application/dns-message")
			resp, err := c.Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var m dns.Msg
			if err := m.Unpack(b); err != nil || len(m.Question) != 1 || m.Question[0].Name != dns.Fqdn(name) {
				errs <- "wrong answer for " + name
				return
			}
			errs <- ""
		}()
	}
	for range 50 {
		if e := <-errs; e != "" {
			t.Error(e)
		}
	}
	if st := h.snapshot(); st.Responses[Status200] < 50 {
		t.Errorf("200 count %d", st.Responses[Status200])
	}
}

func TestForwardedFor(t *testing.T) {
	for _, trust := range []bool{false, true} {
		opts := DefaultOptions()
		opts.TrustForwardedFor = trust
		h := newHarness(t, opts, false)
		for _, c := range []*http.Client{h1PlainClient(), h2cClient()} {
			req, _ := http.NewRequest("POST", h.url("/dns-query"), bytes.NewReader(packQuery(t, "a.example", dns.TypeA)))
			req.Header.Set("content-type", "application/dns-message")
			req.Header.Set("x-forwarded-for", "198.51.100.7, 203.0.113.9")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		h.mu.Lock()
		got := h.xff
		h.mu.Unlock()
		if trust && (len(got) != 2 || got[0].String() != "203.0.113.9" || got[1].String() != "203.0.113.9") {
			t.Errorf("trusted: got %v", got)
		}
		if !trust && len(got) != 0 {
			t.Errorf("untrusted: got %v", got)
		}
	}
}

func TestCustomHeadersAndCacheControlOff(t *testing.T) {
	opts := DefaultOptions()
	opts.SendCacheControl = false
	opts.CustomResponseHeaders = []Header{{Key: "x-served-by", Value: "dnsfront"}}
	h := newHarness(t, opts, true)
	for _, c := range []*http.Client{h2Client(h), h1Client(h)} {
		r := doPOST(t, c, h.url("/dns-query"), packQuery(t, "a.example", dns.TypeA))
		if r.status != 200 || r.header.Get("x-served-by") != "dnsfront" || r.header.Get("cache-control") != "" {
			t.Errorf("%s: status %d headers %v", r.proto, r.status, r.header)
		}
	}
}
