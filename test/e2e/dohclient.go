package e2e

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/miekg/dns"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// dohTLSConfig trusts the PKI's root and checks the name dns.test, offering protos by ALPN.
func dohTLSConfig(t testing.TB, pki *devpki.TestPKI, protos ...string) *tls.Config {
	t.Helper()
	return &tls.Config{RootCAs: CertPool(t, pki.Root.Cert), ServerName: "dns.test", NextProtos: protos}
}

// newDoHClient returns a Go net/http client speaking proto to dnsfront: "h2" or
// "http/1.1" over TLS (pki), "h1c" (HTTP/1.1 in cleartext) or "h2c" (HTTP/2 with prior
// knowledge in cleartext).
func newDoHClient(t testing.TB, pki *devpki.TestPKI, proto string) *http.Client {
	t.Helper()
	var rt http.RoundTripper
	only := func(set func(*http.Protocols)) *http.Protocols {
		p := new(http.Protocols)
		set(p)
		return p
	}
	switch proto {
	case "h2":
		rt = &http.Transport{TLSClientConfig: dohTLSConfig(t, pki, "h2"),
			Protocols: only(func(p *http.Protocols) { p.SetHTTP2(true) })}
	case "http/1.1":
		rt = &http.Transport{TLSClientConfig: dohTLSConfig(t, pki, "http/1.1"),
			Protocols: only(func(p *http.Protocols) { p.SetHTTP1(true) })}
	case "h1c":
		rt = &http.Transport{}
	case "h2c":
		rt = &http.Transport{Protocols: only(func(p *http.Protocols) { p.SetUnencryptedHTTP2(true) })}
	default:
		t.Fatalf("unknown DoH client protocol %q", proto)
	}
	c := &http.Client{Transport: rt, Timeout: 15 * time.Second}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// dohResult is an HTTP response with its body read.
type dohResult struct {
	Status int
	Proto  string
	Header http.Header
	Body   []byte
}

// Msg parses the body as a DNS message.
func (r dohResult) Msg(t testing.TB) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	if err := m.Unpack(r.Body); err != nil {
		t.Fatalf("DoH body (status %d, %d bytes) is not a DNS message: %v", r.Status, len(r.Body), err)
	}
	return m
}

// dohDo sends one request and reads the whole answer.
func dohDo(c *http.Client, method, url, ctype string, body []byte) (dohResult, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return dohResult{}, err
	}
	if body == nil {
		req.Body = nil
	}
	if ctype != "" {
		req.Header.Set("content-type", ctype)
	}
	req.Header.Set("accept", "application/dns-message")
	resp, err := c.Do(req)
	if err != nil {
		return dohResult{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return dohResult{}, fmt.Errorf("%s %s: reading body: %w", method, url, err)
	}
	return dohResult{Status: resp.StatusCode, Proto: resp.Proto, Header: resp.Header, Body: b}, nil
}

// mustDoH is dohDo that fails the test on a transport error.
func mustDoH(t testing.TB, c *http.Client, method, url, ctype string, body []byte) dohResult {
	t.Helper()
	r, err := dohDo(c, method, url, ctype, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return r
}

// dohQuery sends m by POST (get false) or GET ?dns= and returns the response.
func dohQuery(t testing.TB, c *http.Client, url string, m *dns.Msg, get bool) dohResult {
	t.Helper()
	wire := packDoH(t, m)
	if get {
		return mustDoH(t, c, http.MethodGet, url+"?dns="+base64.RawURLEncoding.EncodeToString(wire), "", nil)
	}
	return mustDoH(t, c, http.MethodPost, url, "application/dns-message", wire)
}

// packDoH packs m with ID 0, as RFC 8484 clients send it.
func packDoH(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	m = m.Copy()
	m.Id = 0
	wire, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return wire
}

// dohURL is the URL of path on the DoH bind whose port is named port.
func dohURL(d *Dnsfront, scheme, port, path string) string {
	return scheme + "://" + d.Addr(port) + path
}

// curlResult is what curl reported of one transfer.
type curlResult struct {
	Status  int
	Version string // %{http_version}: "2", "1.1"
	Header  http.Header
	Body    []byte
}

// runCurl runs curl with args plus options that write the body to a file and the
// response head to stdout, and parses both. Every run is bounded (--max-time 5).
func runCurl(t testing.TB, args ...string) curlResult {
	t.Helper()
	RequireTool(t, "curl", "curl")
	bodyFile := t.TempDir() + "/body"
	all := append([]string{"-sS", "--max-time", "5", "-o", bodyFile, "-D", "-",
		"-w", "\n@@version=%{http_version} status=%{http_code}\n"}, args...)
	out := runTool(t, "curl", all...)
	var r curlResult
	r.Header = http.Header{}
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimRight(l, "\r")
		switch {
		case strings.HasPrefix(l, "@@version="):
			if _, err := fmt.Sscanf(l, "@@version=%s status=%d", &r.Version, &r.Status); err != nil {
				t.Fatalf("curl -w output %q: %v", l, err)
			}
		case strings.HasPrefix(l, "HTTP/"):
			r.Header = http.Header{} // a 100 Continue head comes first
		default:
			if k, v, ok := strings.Cut(l, ":"); ok && !strings.Contains(k, " ") {
				r.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
			}
		}
	}
	b, err := os.ReadFile(bodyFile)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	r.Body = b
	return r
}

// h2Raw is a hand-driven HTTP/2 client over TLS on golang.org/x/net/http2's Framer, for
// what well-behaved clients never do: tiny windows, floods, resets.
type h2Raw struct {
	t   testing.TB
	c   net.Conn
	fr  *http2.Framer
	enc *hpack.Encoder
	hb  bytes.Buffer
}

// dialH2Raw connects with ALPN h2, sends the preface and settings, and returns the client.
// The server's frames are read with ReadFrame; header blocks arrive decoded
// (MetaHeadersFrame).
func dialH2Raw(t testing.TB, addr string, pki *devpki.TestPKI, settings ...http2.Setting) *h2Raw {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, dohTLSConfig(t, pki, "h2"))
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
		c.Close()
		t.Fatalf("ALPN: server chose %q, want h2", p)
	}
	t.Cleanup(func() { c.Close() })
	h := &h2Raw{t: t, c: c}
	h.fr = http2.NewFramer(c, c)
	h.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	h.fr.MaxHeaderListSize = 1 << 20
	h.enc = hpack.NewEncoder(&h.hb)
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatalf("preface: %v", err)
	}
	if err := h.fr.WriteSettings(settings...); err != nil {
		t.Fatalf("settings: %v", err)
	}
	return h
}

// block HPACK-encodes a request header block.
func (h *h2Raw) block(method, path string, extra ...string) []byte {
	h.hb.Reset()
	fields := []string{":method", method, ":scheme", "https", ":authority", "dns.test", ":path", path}
	fields = append(fields, extra...)
	for i := 0; i+1 < len(fields); i += 2 {
		_ = h.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return append([]byte(nil), h.hb.Bytes()...)
}

// post sends a POST of msg on stream id.
func (h *h2Raw) post(id uint32, path string, msg []byte) error {
	blk := h.block("POST", path, "content-type", "application/dns-message", "content-length", fmt.Sprint(len(msg)))
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: blk, EndHeaders: true}); err != nil {
		return err
	}
	return h.fr.WriteData(id, true, msg)
}

// h2Response is one stream's response as read by the raw client.
type h2Response struct {
	Status     string
	Header     map[string]string
	Body       []byte
	DataFrames int
}

// readResponse reads frames until stream id ends. It acknowledges SETTINGS and, when
// refill is set, gives every DATA frame's bytes back with WINDOW_UPDATEs on the stream
// and the connection, as a client with a tiny window does. Other streams' frames are
// ignored; a GOAWAY or a reset of id is an error.
func (h *h2Raw) readResponse(id uint32, refill bool, timeout time.Duration) (h2Response, error) {
	_ = h.c.SetReadDeadline(time.Now().Add(timeout))
	defer h.c.SetReadDeadline(time.Time{})
	r := h2Response{Header: map[string]string{}}
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			return r, err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if err := h.fr.WriteSettingsAck(); err != nil {
					return r, err
				}
			}
		case *http2.GoAwayFrame:
			return r, fmt.Errorf("GOAWAY %v", f.ErrCode)
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				return r, fmt.Errorf("RST_STREAM %v", f.ErrCode)
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID != id {
				continue
			}
			for _, hf := range f.Fields {
				if hf.Name == ":status" {
					r.Status = hf.Value
				} else {
					r.Header[hf.Name] = hf.Value
				}
			}
			if f.StreamEnded() {
				return r, nil
			}
		case *http2.DataFrame:
			if f.StreamID != id {
				continue
			}
			r.Body = append(r.Body, f.Data()...)
			r.DataFrames++
			if n := uint32(len(f.Data())); refill && n > 0 {
				if err := h.fr.WriteWindowUpdate(0, n); err != nil {
					return r, err
				}
				if !f.StreamEnded() {
					if err := h.fr.WriteWindowUpdate(id, n); err != nil {
						return r, err
					}
				}
			}
			if f.StreamEnded() {
				return r, nil
			}
		}
	}
}

// awaitGoAway reads frames until a GOAWAY arrives or the connection ends, and returns
// the GOAWAY's error code (ok false when the connection ended without one).
func (h *h2Raw) awaitGoAway(timeout time.Duration) (code http2.ErrCode, ok bool, err error) {
	_ = h.c.SetReadDeadline(time.Now().Add(timeout))
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			return 0, false, err
		}
		if g, is := f.(*http2.GoAwayFrame); is {
			return g.ErrCode, true, nil
		}
	}
}

// closedAfter reports whether the server closes the connection within timeout once
// everything it sent has been read.
func (h *h2Raw) closedAfter(timeout time.Duration) bool {
	_ = h.c.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 4096)
	for {
		if _, err := h.c.Read(buf); err != nil {
			var ne net.Error
			return !errors.As(err, &ne) || !ne.Timeout()
		}
	}
}
