package e2e

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"golang.org/x/net/http2/hpack"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/miekg/dns"
	"golang.org/x/net/http2"
)

// dohRecords is the zone behind the DoH tests. The smallest TTL of www's A records is
// 120, so an answer for it must carry cache-control: max-age=120.
var dohRecords = []string{
	"www.doh.test. 300 IN A 192.0.2.10",
	"www.doh.test. 120 IN A 192.0.2.11",
	"www.doh.test. 600 IN AAAA 2001:db8::10",
	"web.doh.test. 60 IN A 127.0.0.1",
}

var wantWWW = []string{"192.0.2.10", "192.0.2.11"}

// dohCustomHeader is added by custom_response_headers to every response.
const dohCustomHeader = "dnsfront-e2e"

// dohBlock is the doh settings of the test binds.
const dohBlock = `{paths: ["/dns-query"], max_body_size: 1024, custom_response_headers: [{key: "x-served-by", value: "` + dohCustomHeader + `"}]}`

// dohFront is a dnsfront with a TLS DoH bind ("doh"), a cleartext one ("dohc"), and two
// cleartext binds whose pools cannot answer: "dead" (its only backend is forced down)
// and "slow" (its backend never answers; udp_timeout 1).
type dohFront struct {
	d   *Dnsfront
	pki *devpki.TestPKI
	be  *Backend
}

func startDoHFront(t *testing.T, records []string) *dohFront {
	t.Helper()
	pki := devpki.NewTestPKI(t, t.TempDir())
	be := StartBackend(t, BackendOptions{Records: records})
	slow := StartBackend(t, BackendOptions{NeverAnswer: true})
	deadPort, err := FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	d := startFE(t, feConfig{
		PKI: pki,
		Binds: []feBind{
			{Port: "doh", Protocol: "DoH", TLS: true, DoH: dohBlock},
			{Port: "dohc", Protocol: "DoH", DoH: dohBlock},
			{Port: "dead", Protocol: "DoH", Pool: "dead", DoH: dohBlock},
			{Port: "slow", Protocol: "DoH", Pool: "slow", DoH: dohBlock},
		},
		Backends: []feBackend{
			// 10 s: an answer late on a loaded machine is not a 504.
			{Name: "main", Addr: be.Addr, UDPTimeout: 10},
			{Name: "dead", Addr: fmt.Sprintf("127.0.0.1:%d", deadPort), Pools: []string{"dead"}, Health: "{mode: down}", UDPTimeout: 10},
			{Name: "slow", Addr: slow.Addr, Pools: []string{"slow"}, UDPTimeout: 1},
		},
	})
	return &dohFront{d: d, pki: pki, be: be}
}

// checkDoHAnswer checks a 200 answer to "www.doh.test A": the headers RFC 8484 asks for,
// the custom header, max-age = the smallest TTL, and the records.
func checkDoHAnswer(t *testing.T, what string, status int, h http.Header, body []byte) {
	t.Helper()
	if status != http.StatusOK {
		t.Fatalf("%s: status %d, want 200; body %q", what, status, body)
	}
	if ct := h.Get("content-type"); ct != "application/dns-message" {
		t.Errorf("%s: content-type %q", what, ct)
	}
	if cl := h.Get("content-length"); cl != strconv.Itoa(len(body)) {
		t.Errorf("%s: content-length %q, body is %d bytes", what, cl, len(body))
	}
	if cc := h.Get("cache-control"); cc != "max-age=120" {
		t.Errorf("%s: cache-control %q, want max-age=120 (the smallest TTL)", what, cc)
	}
	if v := h.Get("x-served-by"); v != dohCustomHeader {
		t.Errorf("%s: x-served-by %q, want %q (custom_response_headers)", what, v, dohCustomHeader)
	}
	m := new(dns.Msg)
	if err := m.Unpack(body); err != nil {
		t.Fatalf("%s: body is not a DNS message: %v", what, err)
	}
	if m.Id != 0 || !m.Response || m.Rcode != dns.RcodeSuccess {
		t.Errorf("%s: answer header %v, want ID 0 (the query's), NOERROR", what, m.MsgHdr)
	}
	if len(m.Question) != 1 || m.Question[0].Name != "www.doh.test." || m.Question[0].Qtype != dns.TypeA {
		t.Errorf("%s: question %v", what, m.Question)
	}
	got := AnswerStrings(m)
	slices.Sort(got)
	if !slices.Equal(got, wantWWW) {
		t.Errorf("%s: answers %q, want %q", what, got, wantWWW)
	}
	if m.IsEdns0() != nil {
		t.Errorf("%s: the answer has an OPT record the client did not send", what)
	}
}

// TestDoHKdig queries the TLS DoH bind with kdig over HTTP/2, POST and GET, with the
// certificate verified against the test CA.
func TestDoHKdig(t *testing.T) {
	t.Parallel()
	RequireTool(t, "kdig", "knot-dnsutils")
	f := startDoHFront(t, dohRecords)
	before := metricOf(t, f.d, "dnsfront_doh_responses_total", `code="200"`)
	for _, method := range []string{"+https", "+https-get"} {
		t.Run(method, func(t *testing.T) {
			args := []string{"+https=/dns-query", "+tls-ca=" + f.pki.Root.CertFile, "+tls-hostname=dns.test", "www.doh.test", "A"}
			if method == "+https-get" {
				args = append([]string{"+https-get"}, args...)
			}
			out := Kdig(t, f.d.Addr("doh"), args...)
			if !strings.Contains(out, "status: NOERROR") {
				t.Fatalf("kdig %s: no NOERROR answer:\n%s", method, out)
			}
			for _, a := range wantWWW {
				if !strings.Contains(out, a) {
					t.Errorf("kdig %s: answer lacks %s:\n%s", method, a, out)
				}
			}
			want := "HTTP/2-POST"
			if method == "+https-get" {
				want = "HTTP/2-GET"
			}
			if !strings.Contains(out, want) || !strings.Contains(out, "status: 200") {
				t.Errorf("kdig %s: want an %s exchange with status 200:\n%s", method, want, out)
			}
		})
	}
	after, _ := waitMetricOf(t, f.d, 10*time.Second, func(v float64) bool { return v >= before+2 }, "dnsfront_doh_responses_total", `code="200"`)
	if after < before+2 {
		t.Errorf(`dnsfront_doh_responses_total{code="200"} went %v → %v, want +2`, before, after)
	}
}

// TestDoHCurl sends POST (--data-binary) and GET (?dns=) with curl over HTTP/2 and
// HTTP/1.1 to the TLS bind.
func TestDoHCurl(t *testing.T) {
	t.Parallel()
	RequireTool(t, "curl", "curl")
	f := startDoHFront(t, dohRecords)
	wire := packDoH(t, NewQuery("www.doh.test", dns.TypeA))
	qfile := filepath.Join(t.TempDir(), "q.bin")
	WriteFile(t, qfile, wire)
	url := fmt.Sprintf("https://dns.test:%d/dns-query", f.d.Port("doh"))
	resolve := fmt.Sprintf("dns.test:%d:127.0.0.1", f.d.Port("doh"))
	for _, v := range []struct{ flag, version string }{{"--http2", "2"}, {"--http1.1", "1.1"}} {
		for _, method := range []string{"POST", "GET"} {
			t.Run(v.flag+"/"+method, func(t *testing.T) {
				args := []string{v.flag, "--cacert", f.pki.Root.CertFile, "--resolve", resolve}
				if method == "POST" {
					args = append(args, "-H", "content-type: application/dns-message", "--data-binary", "@"+qfile, url)
				} else {
					args = append(args, url+"?dns="+base64.RawURLEncoding.EncodeToString(wire))
				}
				r := runCurl(t, args...)
				if r.Version != v.version {
					t.Errorf("curl %s spoke HTTP/%s, want %s", v.flag, r.Version, v.version)
				}
				checkDoHAnswer(t, "curl "+v.flag+" "+method, r.Status, r.Header, r.Body)
			})
		}
	}
}

// TestDoHCurlResolve lets curl resolve a name through dnsfront (--doh-url) and then
// fetch a page from the address it got: the name exists only in the DoH backend's zone.
func TestDoHCurlResolve(t *testing.T) {
	t.Parallel()
	RequireTool(t, "curl", "curl")
	f := startDoHFront(t, dohRecords)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("resolved through dnsfront\n"))
	}))
	t.Cleanup(web.Close)
	_, webPort, _ := net.SplitHostPort(web.Listener.Addr().String())
	r := runCurl(t, "--http2", "--cacert", f.pki.Root.CertFile,
		"--doh-url", dohURL(f.d, "https", "doh", "/dns-query"),
		fmt.Sprintf("http://web.doh.test:%s/", webPort))
	if r.Status != 200 || string(r.Body) != "resolved through dnsfront\n" {
		t.Fatalf("curl --doh-url: status %d, body %q", r.Status, r.Body)
	}
	asked := false
	for _, q := range f.be.Received() {
		if strings.EqualFold(q.Msg.Question[0].Name, "web.doh.test.") {
			asked = true
		}
	}
	if !asked {
		t.Error("the backend was never asked for web.doh.test: curl did not resolve through dnsfront")
	}
}

// TestDoHGoClient queries with Go's net/http client over HTTP/2 and HTTP/1.1, POST and
// GET, one after another and many at once on one connection.
func TestDoHGoClient(t *testing.T) {
	t.Parallel()
	f := startDoHFront(t, dohRecords)
	url := dohURL(f.d, "https", "doh", "/dns-query")
	for _, proto := range []struct{ alpn, want string }{{"h2", "HTTP/2.0"}, {"http/1.1", "HTTP/1.1"}} {
		t.Run(proto.alpn, func(t *testing.T) {
			c := newDoHClient(t, f.pki, proto.alpn)
			for _, get := range []bool{false, true} {
				r := dohQuery(t, c, url, NewQuery("www.doh.test", dns.TypeA), get)
				if r.Proto != proto.want {
					t.Errorf("response protocol %s, want %s", r.Proto, proto.want)
				}
				checkDoHAnswer(t, fmt.Sprintf("%s get=%v", proto.alpn, get), r.Status, r.Header, r.Body)
			}
			// AAAA through a padded GET parameter (padding is accepted).
			wire := packDoH(t, NewQuery("www.doh.test", dns.TypeAAAA))
			r := mustDoH(t, c, http.MethodGet, url+"?dns="+base64.URLEncoding.EncodeToString(wire), "", nil)
			if m := r.Msg(t); r.Status != 200 || !slices.Equal(AnswerStrings(m), []string{"2001:db8::10"}) {
				t.Errorf("AAAA with padded base64: status %d, answers %q", r.Status, AnswerStrings(m))
			}
			if cc := r.Header.Get("cache-control"); cc != "max-age=600" {
				t.Errorf("AAAA: cache-control %q, want max-age=600", cc)
			}
			// NXDOMAIN without records: max-age=0.
			r = dohQuery(t, c, url, NewQuery("nothing.doh.test", dns.TypeA), false)
			if m := r.Msg(t); m.Rcode != dns.RcodeNameError {
				t.Errorf("nothing.doh.test: rcode %s, want NXDOMAIN", dns.RcodeToString[m.Rcode])
			}
			if cc := r.Header.Get("cache-control"); cc != "max-age=0" {
				t.Errorf("NXDOMAIN without SOA: cache-control %q, want max-age=0", cc)
			}
			// Concurrent queries: HTTP/2 multiplexes them on one connection, HTTP/1.1
			// opens several.
			names := 40
			var wg sync.WaitGroup
			errs := make(chan string, names)
			for i := range names {
				wg.Add(1)
				go func() {
					defer wg.Done()
					name := fmt.Sprintf("q%d.doh.test", i)
					res, err := dohDo(c, http.MethodPost, url, "application/dns-message", packDoH(t, NewQuery(name, dns.TypeA)))
					if err != nil {
						errs <- err.Error()
						return
					}
					m := new(dns.Msg)
					if err := m.Unpack(res.Body); err != nil || len(m.Question) != 1 || m.Question[0].Name != name+"." {
						errs <- fmt.Sprintf("%s: status %d, answer %v (%v)", name, res.Status, m.Question, err)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Error(e)
			}
		})
	}
}

// TestDoHCleartext serves a bind without tls: HTTP/2 with prior knowledge (curl and Go)
// and plain HTTP/1.1, both on the same port.
func TestDoHCleartext(t *testing.T) {
	t.Parallel()
	RequireTool(t, "curl", "curl")
	f := startDoHFront(t, dohRecords)
	url := dohURL(f.d, "http", "dohc", "/dns-query")
	wire := packDoH(t, NewQuery("www.doh.test", dns.TypeA))
	qfile := filepath.Join(t.TempDir(), "q.bin")
	WriteFile(t, qfile, wire)
	for _, v := range []struct{ flag, version string }{{"--http2-prior-knowledge", "2"}, {"--http1.1", "1.1"}} {
		t.Run("curl"+v.flag, func(t *testing.T) {
			r := runCurl(t, v.flag, "-H", "content-type: application/dns-message", "--data-binary", "@"+qfile, url)
			if r.Version != v.version {
				t.Errorf("curl %s spoke HTTP/%s, want %s", v.flag, r.Version, v.version)
			}
			checkDoHAnswer(t, "curl "+v.flag+" POST", r.Status, r.Header, r.Body)
			r = runCurl(t, v.flag, url+"?dns="+base64.RawURLEncoding.EncodeToString(wire))
			checkDoHAnswer(t, "curl "+v.flag+" GET", r.Status, r.Header, r.Body)
		})
	}
	t.Run("go-h2c", func(t *testing.T) {
		c := newDoHClient(t, nil, "h2c")
		r := dohQuery(t, c, url, NewQuery("www.doh.test", dns.TypeA), true)
		if r.Proto != "HTTP/2.0" {
			t.Errorf("protocol %s, want HTTP/2.0", r.Proto)
		}
		checkDoHAnswer(t, "go h2c GET", r.Status, r.Header, r.Body)
	})
}

// TestDoHErrorCodes provokes every error status through the real server and checks the
// status, its short text body, the custom header and dnsfront_doh_responses_total{code}.
func TestDoHErrorCodes(t *testing.T) {
	t.Parallel()
	f := startDoHFront(t, dohRecords)
	valid := packDoH(t, NewQuery("www.doh.test", dns.TypeA))
	b64 := base64.RawURLEncoding.EncodeToString(valid)
	tlsURL := dohURL(f.d, "https", "doh", "/dns-query")
	cases := []struct {
		name, port, method, path, ctype string
		body                            []byte
		want                            int
		bodyHas                         string
	}{
		{"bad base64", "doh", "GET", "/dns-query?dns=!!not*base64!!", "", nil, 400, "bad request"},
		{"missing dns parameter", "doh", "GET", "/dns-query?name=www.doh.test", "", nil, 400, "missing dns parameter"},
		{"no query string", "doh", "GET", "/dns-query", "", nil, 400, "bad request"},
		{"non-DNS body", "doh", "POST", "/dns-query", "application/dns-message", []byte("this is not a DNS message at all"), 400, "bad request"},
		{"unknown path", "doh", "GET", "/resolve?dns=" + b64, "", nil, 404, "not found"},
		{"PUT", "doh", "PUT", "/dns-query", "application/dns-message", valid, 405, "method not allowed"},
		{"body over max_body_size", "doh", "POST", "/dns-query", "application/dns-message", make([]byte, 1500), 413, "too large"},
		{"text/plain POST", "doh", "POST", "/dns-query", "text/plain", valid, 415, "application/dns-message"},
		{"no backend up", "dead", "POST", "/dns-query", "application/dns-message", valid, 502, "bad gateway"},
		{"backend timeout", "slow", "POST", "/dns-query", "application/dns-message", valid, 504, "gateway timeout"},
	}
	codes := map[int]int{}
	for _, c := range cases {
		codes[c.want]++
	}
	before := f.d.Metrics()
	type result struct {
		r       dohResult
		err     error
		elapsed time.Duration
	}
	protos := []string{"h2", "http/1.1"}
	clients := map[string][2]*http.Client{}
	for _, proto := range protos {
		clients[proto] = [2]*http.Client{newDoHClient(t, f.pki, proto), newDoHClient(t, nil, map[string]string{"h2": "h2c", "http/1.1": "h1c"}[proto])}
	}
	do := func(proto string, port, method, path, ctype string, body []byte) result {
		client, url := clients[proto][0], "https://"+f.d.Addr(port)+path
		if port != "doh" {
			client, url = clients[proto][1], "http://"+f.d.Addr(port)+path
		}
		start := time.Now()
		r, err := dohDo(client, method, url, ctype, body)
		return result{r, err, time.Since(start)}
	}
	// The timeouts take udp_timeout (1 s) each: start them first, all at once.
	slow := map[string]chan result{}
	for _, proto := range protos {
		for _, tc := range cases {
			if tc.want == 504 {
				ch := make(chan result, 1)
				slow[proto+"/"+tc.name] = ch
				go func() { ch <- do(proto, tc.port, tc.method, tc.path, tc.ctype, tc.body) }()
			}
		}
	}
	for _, proto := range protos {
		for _, tc := range cases {
			t.Run(proto+"/"+tc.name, func(t *testing.T) {
				var res result
				if ch := slow[proto+"/"+tc.name]; ch != nil {
					res = <-ch
				} else {
					res = do(proto, tc.port, tc.method, tc.path, tc.ctype, tc.body)
				}
				r, err, url := res.r, res.err, tc.port+tc.path
				if err != nil {
					t.Fatalf("%s %s: %v", tc.method, url, err)
				}
				if r.Status != tc.want {
					t.Fatalf("%s %s: status %d, want %d; body %q", tc.method, tc.path, r.Status, tc.want, r.Body)
				}
				if !strings.Contains(string(r.Body), tc.bodyHas) {
					t.Errorf("status %d: body %q does not say %q", r.Status, r.Body, tc.bodyHas)
				}
				if r.Header.Get("content-type") == "application/dns-message" {
					t.Errorf("status %d with content-type application/dns-message", r.Status)
				}
				if tc.port == "doh" && r.Header.Get("x-served-by") != dohCustomHeader {
					t.Errorf("status %d without the custom header (custom_response_headers apply to errors too)", r.Status)
				}
				if tc.want == 405 && !strings.Contains(r.Header.Get("allow"), "POST") {
					t.Errorf("405 with allow %q", r.Header.Get("allow"))
				}
				// The dead pool's udp_timeout is 10 s: half of it is far from it even on a
				// loaded machine.
				if el := res.elapsed; tc.want == 502 && el > 5*time.Second {
					t.Errorf("502 took %v: no backend up must not wait for a timeout", el)
				}
			})
		}
	}
	// The connection still serves after every error.
	r := dohQuery(t, newDoHClient(t, f.pki, "h2"), tlsURL, NewQuery("www.doh.test", dns.TypeA), false)
	checkDoHAnswer(t, "after the errors", r.Status, r.Header, r.Body)

	for code, n := range codes {
		series := fmt.Sprintf(`code="%d"`, code)
		b, _ := metricSum(before, "dnsfront_doh_responses_total", series)
		want := b + float64(2*n)
		got, _ := waitMetricOf(t, f.d, 10*time.Second, func(v float64) bool { return v >= want }, "dnsfront_doh_responses_total", series)
		if got != want {
			t.Errorf("dnsfront_doh_responses_total{%s} went %v → %v, want +%d", series, b, got, 2*n)
		}
	}
}

// TestDoHSmallWindow reads a 6 kB answer through a raw HTTP/2 client whose
// SETTINGS_INITIAL_WINDOW_SIZE is tiny (64 bytes) or zero: dnsfront must send the answer
// in window-sized DATA frames as WINDOW_UPDATEs arrive, and deliver all of it.
func TestDoHSmallWindow(t *testing.T) {
	t.Parallel()
	records := append(txtRecords("big.doh.test.", 12, 500), dohRecords...)
	f := startDoHFront(t, records)
	q := packDoH(t, NewQuery("big.doh.test", dns.TypeTXT))

	check := func(t *testing.T, r h2Response, minFrames int) {
		t.Helper()
		if r.Status != "200" {
			t.Fatalf("status %s", r.Status)
		}
		if r.Header["content-length"] != strconv.Itoa(len(r.Body)) {
			t.Errorf("content-length %s, received %d bytes", r.Header["content-length"], len(r.Body))
		}
		m := new(dns.Msg)
		if err := m.Unpack(r.Body); err != nil {
			t.Fatalf("answer of %d bytes does not parse: %v", len(r.Body), err)
		}
		if len(m.Answer) != 12 || m.Truncated {
			t.Errorf("answer has %d TXT records (TC=%v), want all 12", len(m.Answer), m.Truncated)
		}
		if r.DataFrames < minFrames {
			t.Errorf("%d bytes came in %d DATA frames, want at least %d for the window", len(r.Body), r.DataFrames, minFrames)
		}
	}

	t.Run("window 64", func(t *testing.T) {
		h := dialH2Raw(t, f.d.Addr("doh"), f.pki, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 64})
		if err := h.post(1, "/dns-query", q); err != nil {
			t.Fatal(err)
		}
		r, err := h.readResponse(1, true, 5*time.Second)
		if err != nil {
			t.Fatalf("stream 1: %v after %d bytes in %d DATA frames", err, len(r.Body), r.DataFrames)
		}
		check(t, r, 6000/64)
		// The connection keeps serving.
		if err := h.post(3, "/dns-query", q); err != nil {
			t.Fatal(err)
		}
		r, err = h.readResponse(3, true, 5*time.Second)
		if err != nil {
			t.Fatalf("stream 3: %v", err)
		}
		check(t, r, 6000/64)
	})

	t.Run("window 0 then opened", func(t *testing.T) {
		h := dialH2Raw(t, f.d.Addr("doh"), f.pki, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
		if err := h.post(1, "/dns-query", q); err != nil {
			t.Fatal(err)
		}
		// Nothing but headers may arrive while the window is closed.
		_ = h.c.SetReadDeadline(time.Now().Add(3 * time.Second))
		var status, clen string
		for status == "" {
			fr, err := h.fr.ReadFrame()
			if err != nil {
				t.Fatalf("waiting for the response headers: %v", err)
			}
			switch fr := fr.(type) {
			case *http2.SettingsFrame:
				if !fr.IsAck() {
					_ = h.fr.WriteSettingsAck()
				}
			case *http2.DataFrame:
				t.Fatalf("DATA frame of %d bytes on a zero window", len(fr.Data()))
			case *http2.MetaHeadersFrame:
				status = fr.PseudoValue("status")
				for _, hf := range fr.RegularFields() {
					if hf.Name == "content-length" {
						clen = hf.Value
					}
				}
			}
		}
		if status != "200" {
			t.Fatalf("status %s", status)
		}
		if err := h.fr.WriteWindowUpdate(1, 1<<20); err != nil {
			t.Fatal(err)
		}
		r, err := h.readResponse(1, false, 5*time.Second)
		if err != nil {
			t.Fatalf("after WINDOW_UPDATE: %v", err)
		}
		r.Status = status
		r.Header["content-length"] = clen // sent with the headers read above
		check(t, r, 1)
	})
}

var h2loadReqs = regexp.MustCompile(`requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`)
var h2loadRate = regexp.MustCompile(`finished in ([0-9.]+)s, ([0-9.]+) req/s`)

// TestDoHH2load runs h2load for 3 s against the TLS DoH bind (POST, 4 connections of 10
// streams) in front of a packet cache, and checks that every request succeeded. It does
// not run in parallel, so that its rate is not the other tests' leftovers.
func TestDoHH2load(t *testing.T) {
	RequireTool(t, "h2load", "nghttp2-client")
	pki := devpki.NewTestPKI(t, t.TempDir())
	be := StartBackend(t, BackendOptions{Records: dohRecords})
	d := startFE(t, feConfig{
		PKI:      pki,
		Binds:    []feBind{{Port: "doh", Protocol: "DoH", TLS: true, DoH: dohBlock}},
		Backends: []feBackend{{Name: "main", Addr: be.Addr}},
		Pools:    []fePool{{Name: "", Cache: "main"}},
		Caches:   []string{"{name: main, size: 1000, shards: 4}"},
	})
	body := filepath.Join(t.TempDir(), "q.bin")
	WriteFile(t, body, packDoH(t, NewQuery("www.doh.test", dns.TypeA)))
	out, err := runToolErr("h2load", "-D", "3", "-c", "4", "-m", "10", "-t", "1",
		"-d", body, "-H", "content-type: application/dns-message", dohURL(d, "https", "doh", "/dns-query"))
	if err != nil {
		t.Fatalf("h2load: %v\n%s", err, out)
	}
	m := h2loadReqs.FindStringSubmatch(out)
	rate := h2loadRate.FindStringSubmatch(out)
	if m == nil || rate == nil {
		t.Fatalf("h2load output not understood:\n%s", out)
	}
	n := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
	if n(4) == 0 || n(5) != 0 || n(6) != 0 || n(7) != 0 {
		t.Errorf("h2load: %d succeeded, %d failed, %d errored, %d timeout:\n%s", n(4), n(5), n(6), n(7), out)
	}
	if !strings.Contains(out, fmt.Sprintf("status codes: %d 2xx", n(4))) {
		t.Errorf("h2load: not every response was 2xx:\n%s", out)
	}
	if !strings.Contains(out, "h2") {
		t.Errorf("h2load did not negotiate h2:\n%s", out)
	}
	t.Logf("h2load output:\n%s", out)
	t.Logf("h2load -D 3 -c 4 -m 10 POST: %s requests succeeded, %s req/s", m[4], rate[2])
}

// TestDoHPipelinedHTTP1 pipelines 20 GETs in one write on a cleartext HTTP/1.1
// connection while the backend answers in random order (jitter 40 ms): the responses must
// come back in request order, each with its own answer.
func TestDoHPipelinedHTTP1(t *testing.T) {
	t.Parallel()
	const n = 20
	var records []string
	for i := range n {
		records = append(records, fmt.Sprintf("p%d.doh.test. 60 IN A 192.0.2.%d", i, i+1))
	}
	be := StartBackend(t, BackendOptions{Records: records, Jitter: 40 * time.Millisecond})
	d := startFE(t, feConfig{
		Binds:    []feBind{{Port: "dohc", Protocol: "DoH", DoH: dohBlock}},
		Backends: []feBackend{{Name: "b", Addr: be.Addr}},
	})
	c, err := net.DialTimeout("tcp", d.Addr("dohc"), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var req strings.Builder
	for i := range n {
		wire := packDoH(t, NewQuery(fmt.Sprintf("p%d.doh.test", i), dns.TypeA))
		fmt.Fprintf(&req, "GET /dns-query?dns=%s HTTP/1.1\r\nHost: dns.test\r\nAccept: application/dns-message\r\n\r\n",
			base64.RawURLEncoding.EncodeToString(wire))
	}
	if _, err := c.Write([]byte(req.String())); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	for i := range n {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("response %d: status %d, %v", i, resp.StatusCode, err)
		}
		m := new(dns.Msg)
		if err := m.Unpack(body); err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		want := fmt.Sprintf("p%d.doh.test.", i)
		if m.Question[0].Name != want || len(m.Answer) != 1 || AnswerStrings(m)[0] != fmt.Sprintf("192.0.2.%d", i+1) {
			t.Errorf("response %d answers %s %q, want %s (request order)", i, m.Question[0].Name, AnswerStrings(m), want)
		}
	}
}

// TestDoHTCRetryOverTCP: a backend that truncates over UDP; the DoH client gets the whole
// answer because dnsfront asks again over TCP.
func TestDoHTCRetryOverTCP(t *testing.T) {
	t.Parallel()
	be := StartBackend(t, BackendOptions{Records: txtRecords("big.doh.test.", 6, 500), TruncateUDP: true})
	d := startFE(t, feConfig{
		Binds:    []feBind{{Port: "dohc", Protocol: "DoH", DoH: dohBlock}},
		Backends: []feBackend{{Name: "b", Addr: be.Addr}},
	})
	for _, proto := range []string{"h2c", "h1c"} {
		r := dohQuery(t, newDoHClient(t, nil, proto), dohURL(d, "http", "dohc", "/dns-query"), NewQuery("big.doh.test", dns.TypeTXT), false)
		m := r.Msg(t)
		if r.Status != 200 || m.Truncated || len(m.Answer) != 6 {
			t.Errorf("%s: status %d, TC=%v, %d records; want the 6 TXT records", proto, r.Status, m.Truncated, len(m.Answer))
		}
	}
	if u, c := be.Count("udp"), be.Count("tcp"); u != 2 || c != 2 {
		t.Errorf("the backend saw %d UDP and %d TCP queries, want 2 and 2", u, c)
	}
}

// TestDoHRefusedStreams opens 120 streams at once on one HTTP/2 connection (the limit is
// 100) while the backend takes 300 ms: 100 are answered, 20 refused with
// RST_STREAM REFUSED_STREAM and counted, and the connection serves new streams afterwards.
func TestDoHRefusedStreams(t *testing.T) {
	t.Parallel()
	pki := devpki.NewTestPKI(t, t.TempDir())
	be := StartBackend(t, BackendOptions{Records: dohRecords, Delay: 300 * time.Millisecond})
	d := startFE(t, feConfig{
		PKI:      pki,
		Binds:    []feBind{{Port: "doh", Protocol: "DoH", TLS: true, DoH: dohBlock}},
		Backends: []feBackend{{Name: "b", Addr: be.Addr}},
	})
	before := metricOf(t, d, "dnsfront_doh_abuse_total", `kind="refused_stream"`)
	h := dialH2Raw(t, d.Addr("doh"), pki)
	wire := packDoH(t, NewQuery("www.doh.test", dns.TypeA))
	path := "/dns-query?dns=" + base64.RawURLEncoding.EncodeToString(wire)
	const streams = 120
	for i := range streams {
		// Every block encoded is sent, so the server's HPACK table stays in step.
		blk := h.block("GET", path)
		if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: blk, EndHeaders: true, EndStream: true}); err != nil {
			t.Fatal(err)
		}
	}
	ok, refused := 0, 0
	_ = h.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for ok+refused < streams {
		f, err := h.fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %d answers and %d refusals: %v", ok, refused, err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = h.fr.WriteSettingsAck()
			}
		case *http2.RSTStreamFrame:
			if f.ErrCode != http2.ErrCodeRefusedStream {
				t.Errorf("stream %d reset with %v", f.StreamID, f.ErrCode)
			}
			refused++
		case *http2.DataFrame:
			if f.StreamEnded() {
				ok++
			}
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v after %d answers", f.ErrCode, ok)
		}
	}
	if ok != 100 || refused != 20 {
		t.Errorf("%d answered and %d refused, want 100 and 20 (max_concurrent_streams 100)", ok, refused)
	}
	if err := h.post(uint32(2*streams+1), "/dns-query", wire); err != nil {
		t.Fatal(err)
	}
	if r, err := h.readResponse(uint32(2*streams+1), false, 3*time.Second); err != nil || r.Status != "200" {
		t.Errorf("a new stream after the burst: status %q, %v", r.Status, err)
	}
	after, _ := waitMetricOf(t, d, 10*time.Second, func(v float64) bool { return v >= before+20 }, "dnsfront_doh_abuse_total", `kind="refused_stream"`)
	if after != before+20 {
		t.Errorf(`dnsfront_doh_abuse_total{kind="refused_stream"} went %v → %v, want +20`, before, after)
	}
}

// TestDoHConnectionWindow: with large stream windows but the connection window left at
// its initial 65,535 bytes, 14 answers of 6 kB must stop at the connection window and
// resume when the client opens it.
func TestDoHConnectionWindow(t *testing.T) {
	t.Parallel()
	records := append(txtRecords("big.doh.test.", 12, 500), dohRecords...)
	f := startDoHFront(t, records)
	h := dialH2Raw(t, f.d.Addr("doh"), f.pki, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
	q := packDoH(t, NewQuery("big.doh.test", dns.TypeTXT))
	const streams = 14
	for i := range streams {
		if err := h.post(uint32(2*i+1), "/dns-query", q); err != nil {
			t.Fatal(err)
		}
	}
	received := map[uint32]int{}
	total, ended := 0, 0
	opened := false
	for ended < streams {
		// The server may send 65,535 bytes; once they are in, a pause shows the stall.
		wait := 3 * time.Second
		if total >= 65535 && !opened {
			wait = 300 * time.Millisecond
		}
		_ = h.c.SetReadDeadline(time.Now().Add(wait))
		fr, err := h.fr.ReadFrame()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !opened {
				if total != 65535 {
					t.Fatalf("stalled after %d bytes of DATA, want exactly the 65535 of the connection window", total)
				}
				opened = true
				if err := h.fr.WriteWindowUpdate(0, 1<<20); err != nil {
					t.Fatal(err)
				}
				continue
			}
			t.Fatalf("after %d bytes, %d streams ended: %v", total, ended, err)
		}
		switch fr := fr.(type) {
		case *http2.SettingsFrame:
			if !fr.IsAck() {
				_ = h.fr.WriteSettingsAck()
			}
		case *http2.DataFrame:
			total += len(fr.Data())
			received[fr.StreamID] += len(fr.Data())
			if !opened && total > 65535 {
				t.Fatalf("%d bytes of DATA sent into a connection window of 65535", total)
			}
			if fr.StreamEnded() {
				ended++
			}
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v", fr.ErrCode)
		}
	}
	if !opened {
		t.Errorf("all %d bytes arrived without the connection window being opened", total)
	}
	for id, n := range received {
		if n != received[1] {
			t.Errorf("stream %d got %d bytes, stream 1 %d", id, n, received[1])
		}
	}
}

// TestDoHHeaderTableSizeZero: a client that allows no HPACK dynamic table
// (SETTINGS_HEADER_TABLE_SIZE 0) must get response headers it can decode without one.
func TestDoHHeaderTableSizeZero(t *testing.T) {
	t.Parallel()
	f := startDoHFront(t, dohRecords)
	h := dialH2Raw(t, f.d.Addr("doh"), f.pki, http2.Setting{ID: http2.SettingHeaderTableSize, Val: 0})
	dec := hpack.NewDecoder(0, nil)
	h.fr.ReadMetaHeaders = dec
	q := packDoH(t, NewQuery("www.doh.test", dns.TypeA))
	for i := range 3 {
		id := uint32(2*i + 1)
		if err := h.post(id, "/dns-query", q); err != nil {
			t.Fatal(err)
		}
		r, err := h.readResponse(id, false, 3*time.Second)
		if err != nil {
			t.Fatalf("stream %d: %v", id, err)
		}
		if r.Status != "200" || r.Header["content-type"] != "application/dns-message" || r.Header["x-served-by"] != dohCustomHeader {
			t.Errorf("stream %d: status %q headers %v", id, r.Status, r.Header)
		}
	}
}
