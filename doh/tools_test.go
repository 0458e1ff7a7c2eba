package doh

import (
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"context"

	"github.com/miekg/dns"

	"github.com/dnsfront/dnsfront/internal/testutil"
)

func needTool(t *testing.T, name string) string {
	t.Helper()
	return testutil.Tool(t, name)
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// curlAnswer runs curl, returning the response headers and the DNS answer.
func curlAnswer(t *testing.T, args ...string) (string, *dns.Msg) {
	t.Helper()
	dir := t.TempDir()
	hdr, body := filepath.Join(dir, "h"), filepath.Join(dir, "b")
	run(t, "curl", append([]string{"-sS", "--fail", "-D", hdr, "-o", body}, args...)...)
	hb, _ := os.ReadFile(hdr)
	bb, _ := os.ReadFile(body)
	var m dns.Msg
	if err := m.Unpack(bb); err != nil {
		t.Fatalf("curl %v: answer does not parse: %v (%q)", args, err, bb)
	}
	return strings.ToLower(string(hb)), &m
}

func TestCurl(t *testing.T) {
	needTool(t, "curl")
	h := newHarness(t, nil, true)
	plain := newHarness(t, nil, false)
	q := packQuery(t, "curl.example", dns.TypeA)
	qfile := filepath.Join(t.TempDir(), "q.bin")
	if err := os.WriteFile(qfile, q, 0o600); err != nil {
		t.Fatal(err)
	}
	get := "?dns=" + base64.RawURLEncoding.EncodeToString(q)
	cases := []struct {
		name, wantProto string
		args            []string
	}{
		{"h2 GET", "http/2 200", []string{"--http2", "--cacert", h.caFile, h.url("/dns-query" + get)}},
		{"h2 POST", "http/2 200", []string{"--http2", "--cacert", h.caFile, "--data-binary", "@" + qfile, "-H", "content-type: application/dns-message", h.url("/dns-query")}},
		{"h1 GET", "http/1.1 200", []string{"--http1.1", "--cacert", h.caFile, h.url("/dns-query" + get)}},
		{"h1 POST", "http/1.1 200", []string{"--http1.1", "--cacert", h.caFile, "--data-binary", "@" + qfile, "-H", "content-type: application/dns-message", h.url("/dns-query")}},
		{"h1 POST chunked", "http/1.1 200", []string{"--http1.1", "--cacert", h.caFile, "--data-binary", "@" + qfile, "-H", "content-type: application/dns-message", "-H", "transfer-encoding: chunked", h.url("/dns-query")}},
		{"h2c prior knowledge GET", "http/2 200", []string{"--http2-prior-knowledge", plain.url("/dns-query" + get)}},
		{"h2c prior knowledge POST", "http/2 200", []string{"--http2-prior-knowledge", "--data-binary", "@" + qfile, "-H", "content-type: application/dns-message", plain.url("/dns-query")}},
		{"cleartext h1", "http/1.1 200", []string{"--http1.1", plain.url("/dns-query" + get)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hdr, m := curlAnswer(t, tc.args...)
			if !strings.HasPrefix(hdr, tc.wantProto) {
				t.Errorf("status line %q, want %q", strings.SplitN(hdr, "\n", 2)[0], tc.wantProto)
			}
			for _, want := range []string{"content-type: application/dns-message", "content-length: ", "cache-control: max-age=60"} {
				if !strings.Contains(hdr, want) {
					t.Errorf("headers lack %q:\n%s", want, hdr)
				}
			}
			if len(m.Answer) != 2 || m.Answer[0].(*dns.A).A.String() != "192.0.2.1" {
				t.Errorf("answer %v", m.Answer)
			}
		})
	}
	// Several requests over one connection (keep-alive / multiplexing).
	t.Run("h1 keep-alive", func(t *testing.T) {
		out := run(t, "curl", "-sS", "--http1.1", "--cacert", h.caFile, "-o", "/dev/null", "-o", "/dev/null",
			"-w", "%{num_connects} ", h.url("/dns-query"+get), h.url("/dns-query"+get))
		if strings.TrimSpace(out) != "1 0" {
			t.Errorf("connections per request %q, want reuse", out)
		}
	})
}

// TestCurlDoHURL resolves a name through the session with curl's own DoH
// client, then fetches from the cleartext harness at the resolved address.
func TestCurlDoHURL(t *testing.T) {
	needTool(t, "curl")
	h := newHarness(t, nil, true)
	plain := newHarness(t, nil, false)
	q := packQuery(t, "x.example", dns.TypeA)
	target := "http://localhost.test:" + plain.port() + "/dns-query?dns=" + base64.RawURLEncoding.EncodeToString(q)
	for _, v := range []string{"--http2", "--http1.1"} {
		out := run(t, "curl", "-sS", "--fail", v, "--doh-insecure", "--doh-url", h.url("/dns-query"),
			"-o", "/dev/null", "-w", "%{remote_ip} %{http_code}", target)
		if out != "127.0.0.1 200" {
			t.Errorf("%s: curl --doh-url: %q", v, out)
		}
	}
	if st := h.snapshot(); st.Queries < 2 {
		t.Errorf("DoH server saw %d queries", st.Queries)
	}
}

func TestKdig(t *testing.T) {
	needTool(t, "kdig")
	h := newHarness(t, nil, true)
	for mode, session := range map[string]string{"+https=/dns-query": "(HTTP/2-POST)", "+https-get": "(HTTP/2-GET)"} {
		t.Run(mode, func(t *testing.T) {
			before := h.snapshot()
			out := run(t, "kdig", "@127.0.0.1", "-p", h.port(), mode, "+tls-ca="+h.caFile, "+tls-hostname=localhost", "kdig.example", "A")
			if !strings.Contains(out, "NOERROR") || !strings.Contains(out, "192.0.2.1") || !strings.Contains(out, session) || !strings.Contains(out, "status: 200") {
				t.Errorf("kdig output:\n%s", out)
			}
			if h.snapshot().Queries != before.Queries+1 {
				t.Errorf("query not seen by the session")
			}
		})
	}
}
