package bench

import (
	"context"
	"strings"
	"testing"
	"time"
)

// queryServers starts one server per protocol around h and returns the
// options to reach each.
func queryServers(t *testing.T, newHandler func() *dnsHandler) map[string]QueryOptions {
	pki := newTestPKI(t)
	tlsOpts := TLSOptions{SNI: "dns.test", CAFile: pki.caFile}
	return map[string]QueryOptions{
		"udp": {Proto: "udp", Target: startDNS(t, newHandler(), "udp", nil)},
		"tcp": {Proto: "tcp", Target: startDNS(t, newHandler(), "tcp", nil)},
		"dot": {Proto: "dot", Target: startDoT(t, newHandler(), pki.leaf, nil), TLS: tlsOpts},
		"doh": {Proto: "doh", Target: startDoH(t, newHandler(), pki.leaf), TLS: tlsOpts},
	}
}

// runQuery is RunQuery over windows of d, 4d and 16d.
func runQuery(t *testing.T, o QueryOptions, d time.Duration) (*Report, error) {
	t.Helper()
	return windows(t, d, func(d time.Duration) (*Report, error) {
		o.Duration = d
		return RunQuery(context.Background(), o)
	})
}

func TestQueryProtocols(t *testing.T) {
	for proto, o := range queryServers(t, func() *dnsHandler { return &dnsHandler{} }) {
		t.Run(proto, func(t *testing.T) {
			o.Connections, o.Inflight = 2, 8
			r, err := runQuery(t, o, 300*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			res := r.Results
			if res.OK == 0 || res.Errors != 0 || res.Sent < res.OK {
				t.Fatalf("ok %d, sent %d, errors %v", res.OK, res.Sent, res.ErrorsByKind)
			}
			// The default names include one NXDOMAIN, which this server
			// answers NOERROR; both rcodes count as answers.
			if res.Rcodes["NOERROR"] != res.OK {
				t.Errorf("rcodes %v, ok %d", res.Rcodes, res.OK)
			}
			if res.Latency.Samples != res.OK || res.Latency.P50US <= 0 {
				t.Errorf("latency %+v", res.Latency)
			}
			if r.Params.Protocol != proto || r.Params.Connections != 2 || r.Params.Inflight != 8 {
				t.Errorf("params %+v", r.Params)
			}
		})
	}
}

// A server that answers with another ID must count errors, never answers.
func TestQueryWrongID(t *testing.T) {
	for proto, o := range queryServers(t, func() *dnsHandler { return &dnsHandler{wrongID: true} }) {
		t.Run(proto, func(t *testing.T) {
			o.Connections, o.Inflight, o.Duration = 1, 4, 200*time.Millisecond
			_, err := RunQuery(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), "wrong id") {
				t.Fatalf("first query: err %v", err)
			}
		})
	}
}

// The warm-up query passes, then the server starts lying: every answer
// during the run must be counted as an error.
func TestQueryWrongIDDuringRun(t *testing.T) {
	for proto, o := range queryServers(t, func() *dnsHandler { return &dnsHandler{lieAfter: 1} }) {
		t.Run(proto, func(t *testing.T) {
			// The timeout also bounds connecting (a TLS handshake for DoT and DoH) and the
			// first query, which take longer than tens of milliseconds on a loaded machine.
			o.Connections, o.Inflight, o.Duration, o.Timeout = 1, 4, 300*time.Millisecond, 500*time.Millisecond
			if proto != "udp" {
				o.Timeout = 2 * time.Second
			}
			o.Questions = []Question{{Name: "a.test.", Type: 1}, {Name: "b.test.", Type: 1}}
			r, err := RunQuery(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			res := r.Results
			if res.Errors == 0 || res.OK*100 > res.Errors {
				t.Errorf("ok %d, errors %v", res.OK, res.ErrorsByKind)
			}
			want := "unexpected id"
			if proto == "doh" {
				want = "wrong id"
			}
			if res.ErrorsByKind[want] == 0 {
				t.Errorf("no %q errors: %v", want, res.ErrorsByKind)
			}
		})
	}
}

func TestQueryLostUDP(t *testing.T) {
	addr := startDNS(t, &dnsHandler{dropEvery: 3}, "udp", nil)
	// The timeout also bounds each connection's first query, which a loaded machine
	// may answer later than a few tens of milliseconds; the window leaves the lost
	// queries time to be counted.
	r, err := runQuery(t, QueryOptions{Proto: "udp", Target: addr,
		Connections: 2, Inflight: 4, Timeout: 500 * time.Millisecond}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	res := r.Results
	if res.OK == 0 || res.ErrorsByKind["timeout"] == 0 || res.Errors != res.ErrorsByKind["timeout"] {
		t.Errorf("ok %d, errors %v", res.OK, res.ErrorsByKind)
	}
}

func TestQueryNamesAndWrongQuestion(t *testing.T) {
	addr := startDNS(t, &dnsHandler{}, "tcp", nil)
	qs, err := parseQuestions("names.txt", strings.NewReader("# comment\nwww.example.test AAAA\n\nmx.example.test. mx\nplain.test\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 3 || qs[0].Type != 28 || qs[1].Type != 15 || qs[2].Type != 1 || qs[2].Name != "plain.test." {
		t.Fatalf("parsed %+v", qs)
	}
	r, err := runQuery(t, QueryOptions{Proto: "tcp", Target: addr, Questions: qs,
		Connections: 1, Inflight: 16}, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if r.Results.OK == 0 || r.Results.Errors != 0 || r.Params.Names != 3 {
		t.Errorf("ok %d errors %v names %d", r.Results.OK, r.Results.ErrorsByKind, r.Params.Names)
	}
	for _, bad := range []string{"a b c\n", "x.test BOGUS\n", "", "bad..name\n"} {
		if _, err := parseQuestions("names.txt", strings.NewReader(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestCheckAnswer(t *testing.T) {
	qs, _ := packQuestions([]Question{{Name: "www.Example.test.", Type: 1}})
	q := &qs[0]
	resp := func(edit func([]byte)) []byte {
		b := append([]byte(nil), q.msg...)
		b[0], b[1] = 0x12, 0x34
		b[2] |= 0x80
		edit(b)
		return b
	}
	cases := []struct {
		name string
		b    []byte
		kind string
	}{
		{"good", resp(func([]byte) {}), ""},
		{"case differs", resp(func(b []byte) { b[13] = 'W' }), ""},
		{"wrong id", resp(func(b []byte) { b[1] = 0 }), "wrong id"},
		{"query echoed", resp(func(b []byte) { b[2] &^= 0x80 }), "not a response"},
		{"servfail", resp(func(b []byte) { b[3] |= 2 }), "rcode SERVFAIL"},
		{"nxdomain", resp(func(b []byte) { b[3] |= 3 }), ""},
		{"other name", resp(func(b []byte) { b[14] = 'x' }), "wrong question"},
		{"other type", resp(func(b []byte) { b[len(b)-3] = 28 }), "wrong question"},
		{"truncated", resp(func(b []byte) { b[2] |= 2 }), "truncated"},
		{"short", []byte{0x12, 0x34}, "short answer"},
	}
	for _, c := range cases {
		if _, kind := checkAnswer(c.b, 0x1234, q); kind != c.kind {
			t.Errorf("%s: kind %q, want %q", c.name, kind, c.kind)
		}
	}
}
