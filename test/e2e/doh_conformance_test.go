package e2e

import (
	"encoding/base64"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/miekg/dns"
	"golang.org/x/net/http2"
)

// TestDoHClientGoAway: a client that sends its GOAWAY right behind its requests
// (h2spec 3.8/1, and what browsers do when they retire a connection) still gets every
// answer, then the server's GOAWAY NO_ERROR naming the last stream, then a clean
// close: no reset, nothing lost.
func TestDoHClientGoAway(t *testing.T) {
	t.Parallel()
	pki := devpki.NewTestPKI(t, t.TempDir())
	// The backend holds every answer, so the GOAWAY arrives while all are in flight.
	be := StartBackend(t, BackendOptions{Records: dohRecords, Delay: 200 * time.Millisecond})
	d := startFE(t, feConfig{
		PKI:      pki,
		Binds:    []feBind{{Port: "doh", Protocol: "DoH", TLS: true, DoH: dohBlock}},
		Backends: []feBackend{{Name: "b", Addr: be.Addr}},
	})
	h := dialH2Raw(t, d.Addr("doh"), pki)
	wire := packDoH(t, NewQuery("www.doh.test", dns.TypeA))
	path := "/dns-query?dns=" + base64.RawURLEncoding.EncodeToString(wire)
	ids := []uint32{1, 3, 5}
	for _, id := range ids[:2] {
		if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: h.block("GET", path), EndHeaders: true, EndStream: true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.post(ids[2], "/dns-query", wire); err != nil {
		t.Fatal(err)
	}
	if err := h.fr.WriteGoAway(0, http2.ErrCodeNo, nil); err != nil {
		t.Fatal(err)
	}
	answered := map[uint32]bool{}
	var goAway *http2.GoAwayFrame
	_ = h.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var err error
	for goAway == nil {
		var f http2.Frame
		if f, err = h.fr.ReadFrame(); err != nil {
			break
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = h.fr.WriteSettingsAck()
			}
		case *http2.MetaHeadersFrame:
			if st := f.PseudoValue("status"); st != "200" {
				t.Errorf("stream %d: status %s", f.StreamID, st)
			}
		case *http2.DataFrame:
			if f.StreamEnded() {
				answered[f.StreamID] = true
			}
		case *http2.RSTStreamFrame:
			t.Errorf("stream %d reset: %v", f.StreamID, f.ErrCode)
		case *http2.GoAwayFrame:
			goAway = f
		}
	}
	if goAway == nil {
		t.Fatalf("no GOAWAY after %d answers: %v", len(answered), err)
	}
	if len(answered) != len(ids) {
		t.Errorf("GOAWAY before every answer: %d of %d answered", len(answered), len(ids))
	}
	if goAway.ErrCode != http2.ErrCodeNo || goAway.LastStreamID != ids[len(ids)-1] {
		t.Errorf("GOAWAY %v last stream %d, want NO_ERROR and %d", goAway.ErrCode, goAway.LastStreamID, ids[len(ids)-1])
	}
	// Then the server closes, cleanly.
	_ = h.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	for {
		_, err := h.c.Read(buf)
		if err == nil {
			continue
		}
		if !errors.Is(err, io.EOF) {
			t.Errorf("connection ended with %v, want a clean close", err)
		}
		break
	}
}

// TestDoHUppercaseCustomHeader: a custom response header configured with capitals
// goes out lowercase; with it as written every HTTP/2 response would be malformed
// (RFC 9113 8.2.1) and strict clients (x/net, nghttp2) would reject it.
func TestDoHUppercaseCustomHeader(t *testing.T) {
	t.Parallel()
	pki := devpki.NewTestPKI(t, t.TempDir())
	be := StartBackend(t, BackendOptions{Records: dohRecords})
	d := startFE(t, feConfig{
		PKI:      pki,
		Binds:    []feBind{{Port: "doh", Protocol: "DoH", TLS: true, DoH: `{custom_response_headers: [{key: "X-Served-By", value: "e2e"}]}`}},
		Backends: []feBackend{{Name: "b", Addr: be.Addr}},
	})
	h := dialH2Raw(t, d.Addr("doh"), pki)
	if err := h.post(1, "/dns-query", packDoH(t, NewQuery("www.doh.test", dns.TypeA))); err != nil {
		t.Fatal(err)
	}
	r, err := h.readResponse(1, false, 5*time.Second)
	if err != nil {
		t.Fatalf("response: %v", err)
	}
	if r.Status != "200" || r.Header["x-served-by"] != "e2e" {
		t.Errorf("status %s, headers %v", r.Status, r.Header)
	}
	for name := range r.Header {
		if name != strings.ToLower(name) {
			t.Errorf("uppercase response field %q", name)
		}
	}
}
