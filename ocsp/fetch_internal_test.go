package ocsp

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestPostOrGetBySize checks RFC 6960 Appendix A.1: GET when the base64 of
// the request is under 255 bytes, POST otherwise, and that both carry the
// exact request. (Real single-certificate SHA-1 requests are ~80 bytes, so
// the POST path is driven with a synthetic request.)
func TestPostOrGetBySize(t *testing.T) {
	var method string
	var got []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method = r.Method
		switch r.Method {
		case http.MethodPost:
			if ct := r.Header.Get("Content-Type"); ct != "application/ocsp-request" {
				t.Errorf("Content-Type %q", ct)
			}
			got, _ = io.ReadAll(r.Body)
		case http.MethodGet:
			s, err := url.PathUnescape(strings.TrimPrefix(r.URL.EscapedPath(), "/base/"))
			if err == nil {
				got, err = base64.StdEncoding.DecodeString(s)
			}
			if err != nil {
				t.Errorf("GET path %q: %v", r.URL.EscapedPath(), err)
			}
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	for _, c := range []struct {
		size   int
		method string
	}{{10, "GET"}, {189, "GET"}, {190, "POST"}, {600, "POST"}} {
		// 0xfb bytes encode to '+' and '/' in base64: the GET path must
		// escape them.
		req := bytes.Repeat([]byte{0xfb, 0xff, 0xbf}, c.size/3+1)[:c.size]
		if _, err := post(context.Background(), srv.Client(), srv.URL+"/base", req, 1024); err != nil {
			t.Fatal(err)
		}
		if method != c.method || !bytes.Equal(got, req) {
			t.Errorf("%d-byte request (%d base64): %s, body ok %v; want %s", c.size,
				base64.StdEncoding.EncodedLen(c.size), method, bytes.Equal(got, req), c.method)
		}
	}
}

func TestFetchSizeCap(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("x"), 5000))
	}))
	defer srv.Close()
	_, err := post(context.Background(), srv.Client(), srv.URL, []byte{1}, 4096)
	if Classify(err) != ResultInvalid || !strings.Contains(err.Error(), "larger than 4096") {
		t.Fatalf("err = %v (%s)", err, Classify(err))
	}
	if _, err := post(context.Background(), srv.Client(), srv.URL, []byte{1}, 5000); err != nil {
		t.Fatal(err)
	}
}
