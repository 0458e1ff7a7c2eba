package e2e

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/dnsfront/dnsfront/internal/devpki"
)

// rulesHTTPConfig serves DoT and DoH with rules on the DoH request's path and headers.
const rulesHTTPConfig = `
general:
  event_loops: 2
acl: ["127.0.0.0/8"]
binds:
  - listen_address: "127.0.0.1:{{port "dot"}}"
    protocol: DoT
    tls:
      certificates: [{certificate: "{{.Chain}}", key: "{{.Key}}"}]
  - listen_address: "127.0.0.1:{{port "doh"}}"
    protocol: DoH
    tls:
      certificates: [{certificate: "{{.Chain}}", key: "{{.Key}}"}]
backends:
  - address: "{{.Backend}}"
    name: b1
    health_checks: {mode: up}
query_rules:
  - name: "path"
    selector: { type: "And", selectors: [ { type: "HTTPPath", path: "/dns-query" }, { type: "QName", qname: "path.rules.test." } ] }
    action: { type: "Spoof", ips: ["192.0.2.61"] }
  - name: "header"
    selector: { type: "And", selectors: [ { type: "HTTPHeader", header: "X-Client-Tag", expression: "^blue$" }, { type: "QName", qname: "header.rules.test." } ] }
    action: { type: "Spoof", ips: ["192.0.2.62"] }
  - name: "path-regex"
    selector: { type: "And", selectors: [ { type: "HTTPPathRegex", expression: "^/dns-q" }, { type: "QName", qname: "regex.rules.test." } ] }
    action: { type: "Spoof", ips: ["192.0.2.63"] }
`

type rulesHTTPData struct{ Chain, Key, Backend string }

// TestRulesHTTPSelectors: HTTPPath, HTTPPathRegex and HTTPHeader rules match DoH queries
// (curl over HTTP/2 and HTTP/1.1, GET and POST, with -H) and never DoT ones (kdig).
func TestRulesHTTPSelectors(t *testing.T) {
	p := devpki.NewTestPKI(t, t.TempDir())
	be := StartBackend(t, BackendOptions{Records: []string{
		"path.rules.test. 60 IN A 192.0.2.1",
		"header.rules.test. 60 IN A 192.0.2.2",
		"regex.rules.test. 60 IN A 192.0.2.3",
	}})
	d := Start(t, rulesHTTPConfig, rulesHTTPData{Chain: p.Leaf.ChainFile, Key: p.Leaf.KeyFile, Backend: be.Addr})
	ca := p.Root.CertFile
	resolve := fmt.Sprintf("dns.test:%d:127.0.0.1", d.Port("doh"))

	doh := func(t *testing.T, version, method, name string, header ...string) string {
		t.Helper()
		wire := packDoH(t, NewQuery(name, dns.TypeA))
		args := []string{version, "--cacert", ca, "--resolve", resolve}
		for _, h := range header {
			args = append(args, "-H", h)
		}
		base := fmt.Sprintf("https://dns.test:%d/dns-query", d.Port("doh"))
		if method == http.MethodPost {
			f := t.TempDir() + "/q"
			if err := os.WriteFile(f, wire, 0o600); err != nil {
				t.Fatal(err)
			}
			args = append(args, "-H", "Content-Type: application/dns-message", "--data-binary", "@"+f, base)
		} else {
			args = append(args, base+"?dns="+base64.RawURLEncoding.EncodeToString(wire))
		}
		r := runCurl(t, args...)
		if r.Status != http.StatusOK {
			t.Fatalf("%s %s %s: status %d", version, method, name, r.Status)
		}
		var m dns.Msg
		if err := m.Unpack(r.Body); err != nil {
			t.Fatalf("%s %s %s: %v", version, method, name, err)
		}
		return m.String()
	}
	for _, version := range []string{"--http2", "--http1.1"} {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			t.Run(strings.TrimPrefix(version, "--")+"/"+method, func(t *testing.T) {
				if out := doh(t, version, method, "path.rules.test"); !strings.Contains(out, "192.0.2.61") {
					t.Errorf("HTTPPath over DoH: no A 192.0.2.61:\n%s", out)
				}
				if out := doh(t, version, method, "regex.rules.test"); !strings.Contains(out, "192.0.2.63") {
					t.Errorf("HTTPPathRegex over DoH: no A 192.0.2.63:\n%s", out)
				}
				if out := doh(t, version, method, "header.rules.test", "X-Client-Tag: blue"); !strings.Contains(out, "192.0.2.62") {
					t.Errorf("HTTPHeader over DoH with the header: no A 192.0.2.62:\n%s", out)
				}
				if out := doh(t, version, method, "header.rules.test", "X-Client-Tag: red"); !strings.Contains(out, "192.0.2.2") {
					t.Errorf("HTTPHeader over DoH with another value: want the backend's answer:\n%s", out)
				}
				if out := doh(t, version, method, "header.rules.test"); !strings.Contains(out, "192.0.2.2") {
					t.Errorf("HTTPHeader over DoH without the header: want the backend's answer:\n%s", out)
				}
			})
		}
	}
	RequireTool(t, "kdig", "knot-dnsutils")
	for name, want := range map[string]string{"path.rules.test": "192.0.2.1", "regex.rules.test": "192.0.2.3", "header.rules.test": "192.0.2.2"} {
		if out := Kdig(t, d.Addr("dot"), "+tls", "+tls-ca="+ca, "+tls-hostname=dns.test", name, "A"); !strings.Contains(out, want) {
			t.Errorf("%s over DoT: want the backend's answer %s:\n%s", name, want, out)
		}
	}
}
