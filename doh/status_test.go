package doh

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestStatusCodes drives every error status over HTTP/2 and HTTP/1.1 and
// checks the short text body and the per-status counters.
func TestStatusCodes(t *testing.T) {
	q := packQuery(t, "a.example", dns.TypeA)
	big := make([]byte, 70000)
	copy(big, q)
	notDNS := []byte("hello, this is not dns")
	response := packQuery(t, "a.example", dns.TypeA)
	response[2] |= 0x80 // QR: a response is not a query
	cases := []struct {
		name    string
		method  string
		path    string
		ctype   string
		body    []byte
		status  int
		bodyHas string
		counted Status
	}{
		{"get bad base64", "GET", "/dns-query?dns=***", "", nil, 400, "base64", Status400},
		{"get missing param", "GET", "/dns-query?foo=bar", "", nil, 400, "missing", Status400},
		{"get bad dns", "GET", "/dns-query?dns=" + base64.RawURLEncoding.EncodeToString(notDNS), "", nil, 400, "DNS", Status400},
		{"post response message", "POST", "/dns-query", "application/dns-message", response, 400, "DNS", Status400},
		{"post empty", "POST", "/dns-query", "application/dns-message", []byte{}, 400, "", Status400},
		{"unknown path", "GET", "/other?dns=" + base64.RawURLEncoding.EncodeToString(q), "", nil, 404, "not found", Status404},
		{"prefix not matched when exact", "GET", "/dns-query/x?dns=" + base64.RawURLEncoding.EncodeToString(q), "", nil, 404, "", Status404},
		{"put", "PUT", "/dns-query", "application/dns-message", q, 405, "method", Status405},
		{"head", "HEAD", "/dns-query?dns=" + base64.RawURLEncoding.EncodeToString(q), "", nil, 405, "", Status405},
		{"too large", "POST", "/dns-query", "application/dns-message", big, 413, "", Status413},
		{"wrong content type", "POST", "/dns-query", "text/plain", q, 415, "application/dns-message", Status415},
		{"backend failure", "POST", "/dns-query", "application/dns-message", packQuery(t, "fail.example", dns.TypeA), 502, "backend", Status502},
		{"backend timeout", "GET", "/dns-query?dns=" + base64.RawURLEncoding.EncodeToString(packQuery(t, "timeout.example", dns.TypeA)), "", nil, 504, "timeout", Status504},
		{"padded base64 accepted", "GET", "/dns-query?dns=" + base64.URLEncoding.EncodeToString(packQuery(t, "ab.example", dns.TypeA)), "", nil, 200, "", Status200},
	}
	h := newHarness(t, nil, true)
	clients := map[string]*http.Client{"h2": h2Client(h), "h1": h1Client(h)}
	for cname, c := range clients {
		for _, tc := range cases {
			t.Run(cname+"/"+tc.name, func(t *testing.T) {
				before := h.snapshot()
				r := do(t, c, tc.method, h.url(tc.path), tc.ctype, tc.body)
				if r.status != tc.status {
					t.Fatalf("status %d, want %d (body %q)", r.status, tc.status, r.body)
				}
				if tc.status != 200 && tc.method != "HEAD" {
					if ct := r.header.Get("content-type"); !strings.HasPrefix(ct, "text/plain") {
						t.Errorf("content-type %q", ct)
					}
					if !strings.Contains(string(r.body), tc.bodyHas) || len(r.body) == 0 || len(r.body) > 100 {
						t.Errorf("body %q, want short text with %q", r.body, tc.bodyHas)
					}
				}
				if tc.status == 405 && r.header.Get("allow") != "GET, POST" {
					t.Errorf("allow %q", r.header.Get("allow"))
				}
				if tc.status == 200 {
					checkAnswer(t, r, r.proto, "192.0.2.1", "60")
				}
				// The harness folds counters in after each read pass; the
				// response is out, so they are there by now.
				after := h.snapshot()
				if after.Responses[tc.counted] <= before.Responses[tc.counted] {
					t.Errorf("status %d not counted", tc.status)
				}
			})
		}
	}
}

func TestPrefixPathMatching(t *testing.T) {
	opts := DefaultOptions()
	opts.ExactPathMatching = false
	opts.Paths = []string{"/dns-query", "/resolve"}
	h := newHarness(t, opts, true)
	q := packQuery(t, "a.example", dns.TypeA)
	c := h2Client(h)
	for path, want := range map[string]int{"/dns-query/abc": 200, "/resolve": 200, "/resolver": 200, "/other": 404} {
		if r := doPOST(t, c, h.url(path), q); r.status != want {
			t.Errorf("%s: status %d, want %d", path, r.status, want)
		}
	}
}

// A HEAD request's response carries no body: on a kept-alive HTTP/1.1 connection the
// next response must parse.
func TestH1HeadThenRequestOnSameConnection(t *testing.T) {
	s := NewSession(DefaultOptions(), HTTP1, time.Now)
	q := packQuery(t, "a.example", dns.TypeA)
	var ids []uint64
	in := "HEAD /dns-query?dns=" + base64.RawURLEncoding.EncodeToString(q) + " HTTP/1.1\r\nhost: x\r\n\r\n" +
		"GET /other HTTP/1.1\r\nhost: x\r\n\r\n"
	if err := s.Feed([]byte(in), func(q Query) { ids = append(ids, q.ID) }); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(bytes.NewReader(s.AppendOutput(nil)))
	r1, err := http.ReadResponse(br, &http.Request{Method: "HEAD"})
	if err != nil || r1.StatusCode != 405 {
		t.Fatalf("HEAD: %v %v", r1, err)
	}
	r2, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil || r2.StatusCode != 404 {
		t.Fatalf("second response after HEAD: %v %v", r2, err)
	}
	if len(ids) != 0 {
		t.Errorf("queries emitted: %v", ids)
	}
}
