package e2e

import (
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// dohPOST asks testName through curl with a POST to the DoH bind named port, over TLS
// and HTTP/2 (tls) or in cleartext over HTTP/1.1, with the extra curl arguments.
func dohPOST(t *testing.T, s *streamServer, port string, tls bool, extra ...string) curlResult {
	t.Helper()
	body := t.TempDir() + "/q"
	WriteFile(t, body, packDoH(t, NewQuery(testName, dns.TypeA)))
	args := []string{"-H", "content-type: application/dns-message", "--data-binary", "@" + body}
	if tls {
		_, p, _ := net.SplitHostPort(s.d.Addr(port))
		args = append(args, "--http2", "--cacert", s.pki.Root.CertFile, "--resolve", "dns.test:"+p+":127.0.0.1",
			"https://dns.test:"+p+"/dns-query")
	} else {
		args = append(args, "--http1.1", dohURL(s.d, "http", port, "/dns-query"))
	}
	return runCurl(t, append(args, extra...)...)
}

// From a bind with trust_forwarded_for_header, the ACL judges the client named by
// X-Forwarded-For, after the proxy's own connection passed it at accept: a client the
// ACL does not admit gets 403 (as dnsdist answers it) and counts as an ACL drop.
func TestForwardedForACL(t *testing.T) {
	t.Parallel()
	s := startStreams(t, streamData{ACL: `["127.0.0.0/8", "198.51.100.0/24"]`})
	for _, tls := range []bool{false, true} {
		port := "dohc"
		if tls {
			port = "doh"
		}
		if r := dohPOST(t, s, port, tls); r.Status != 200 {
			t.Errorf("%s: no X-Forwarded-For: status %d, want 200", port, r.Status)
		}
		if r := dohPOST(t, s, port, tls, "-H", "X-Forwarded-For: 198.51.100.7"); r.Status != 200 {
			t.Errorf("%s: admitted forwarded client: status %d, want 200", port, r.Status)
		}
		// The right-most address is the one the trusted proxy saw.
		if r := dohPOST(t, s, port, tls, "-H", "X-Forwarded-For: 198.51.100.7, 192.0.2.7"); r.Status != 403 {
			t.Errorf("%s: forwarded client outside the ACL: status %d, want 403", port, r.Status)
		}
		if r := dohPOST(t, s, port, tls, "-H", "X-Forwarded-For: 192.0.2.7, 198.51.100.7"); r.Status != 200 {
			t.Errorf("%s: admitted right-most forwarded client: status %d, want 200", port, r.Status)
		}
	}
	if v := s.d.Metric(`dnsfront_dropped_queries_total{reason="acl"}`); v != 2 {
		t.Errorf(`dnsfront_dropped_queries_total{reason="acl"} = %v, want 2`, v)
	}
}

// A forwarded address the ACL admits does not let in a proxy it does not: the proxy's
// connection is closed at accept, whatever its requests say.
func TestForwardedForDoesNotAdmitTheProxy(t *testing.T) {
	t.Parallel()
	s := startStreams(t, streamData{ACL: `["192.0.2.0/24"]`})
	RequireTool(t, "curl", "curl")
	body := t.TempDir() + "/q"
	WriteFile(t, body, packDoH(t, NewQuery(testName, dns.TypeA)))
	out, err := runToolErr("curl", "-sS", "--max-time", "5", "--http1.1", "-o", "/dev/null", "-w", "%{http_code}",
		"-H", "content-type: application/dns-message", "-H", "X-Forwarded-For: 192.0.2.7",
		"--data-binary", "@"+body, dohURL(s.d, "http", "dohc", "/dns-query"))
	if err == nil || strings.HasPrefix(out, "200") {
		t.Fatalf("a proxy outside the ACL was served (curl: %v, %s)", err, out)
	}
}
