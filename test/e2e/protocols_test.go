package e2e

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/config"
	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/miekg/dns"
)

// The protocol features answered by dnsfront itself (docs/protocols.md): DDR (RFC 9462),
// EDNS padding (RFC 7830, RFC 8467) and edns-tcp-keepalive (RFC 7828), under the
// configuration of `make run`.

// TestProtocolsDDR: _dns.resolver.arpa SVCB, over Do53, lists the DoT and DoH binds of
// examples/dev.yaml with their ports, ALPNs, address hints and the DoH path; the HTTPS
// type, asked over DoT, gets the same records.
func TestProtocolsDDR(t *testing.T) {
	t.Parallel()
	d, _ := startDevConfig(t)
	dot, doh := d.Port("dot"), d.Port("doh")
	for _, flag := range []string{"+notcp", "+tcp"} {
		out := Dig(t, d.Addr("dns"), flag, "_dns.resolver.arpa", "SVCB")
		if !strings.Contains(out, "status: NOERROR") || !strings.Contains(out, "flags: qr aa") {
			t.Fatalf("dig %s _dns.resolver.arpa SVCB: want an authoritative NOERROR answer, got\n%s", flag, out)
		}
		for _, want := range []string{
			fmt.Sprintf(`alpn="dot" port=%d ipv4hint=127.0.0.1`, dot),
			fmt.Sprintf(`alpn="h2,http/1.1" port=%d ipv4hint=127.0.0.1`, doh),
		} {
			if !strings.Contains(out, want) {
				t.Errorf("dig %s _dns.resolver.arpa SVCB: no record with %s in\n%s", flag, want, out)
			}
		}
		// bind9 9.18 prints the dohpath key by number; newer versions by name.
		if !strings.Contains(out, `key7="/dns-query{?dns}"`) && !strings.Contains(out, `dohpath="/dns-query{?dns}"`) {
			t.Errorf("dig %s _dns.resolver.arpa SVCB: no dohpath /dns-query{?dns} in\n%s", flag, out)
		}
	}
	out := Kdig(t, d.Addr("dot"), "+tls", "_dns.resolver.arpa", "HTTPS")
	if want := fmt.Sprintf("HTTPS\t1 . alpn=dot port=%d", dot); !strings.Contains(out, want) {
		t.Errorf("kdig +tls _dns.resolver.arpa HTTPS: no %q in\n%s", want, out)
	}
	// Other names are not DDR's: the demo backend answers them.
	if out := Dig(t, d.Addr("dns"), "_dns.example.arpa", "SVCB"); strings.Contains(out, "alpn=") {
		t.Errorf("_dns.example.arpa SVCB got DDR records:\n%s", out)
	}
}

var kdigReceived = regexp.MustCompile(`Received (\d+) B`)

// TestProtocolsPadding: over DoT, DoH and DoQ a padded query gets an answer padded to a
// multiple of 468 octets; over Do53 (UDP and TCP) answers are never padded.
func TestProtocolsPadding(t *testing.T) {
	t.Parallel()
	d, _ := startDevConfig(t)
	for _, c := range []struct {
		addr string
		args []string
		pad  bool
	}{
		{d.Addr("dot"), []string{"+tls"}, true},
		{d.Addr("doh"), []string{"+https"}, true},
		{d.Addr("dot"), []string{"+quic"}, true}, // DoQ shares the DoT port number
		{d.Addr("dns"), []string{"+notcp"}, false},
		{d.Addr("dns"), []string{"+tcp"}, false},
	} {
		for _, name := range []string{"www.dnsfront.test", "_dns.resolver.arpa"} {
			args := append(append([]string(nil), c.args...), "+padding", name, "A")
			out := Kdig(t, c.addr, args...)
			m := kdigReceived.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("kdig %v: no answer size in\n%s", args, out)
			}
			n, _ := strconv.Atoi(m[1])
			padded := strings.Contains(out, "PADDING:")
			switch {
			case c.pad && (!padded || n%468 != 0):
				t.Errorf("kdig %v: PADDING=%v, %d octets, want padded to a multiple of 468:\n%s", args, padded, n, out)
			case !c.pad && padded:
				t.Errorf("kdig %v: a cleartext answer is padded:\n%s", args, out)
			}
		}
	}
}

// TestProtocolsKeepalive: over Do53 TCP and DoT the edns-tcp-keepalive option is
// answered with the idle timeout that closes the connection (general.tcp_idle_timeout,
// the default under examples/dev.yaml); over UDP it is not.
func TestProtocolsKeepalive(t *testing.T) {
	t.Parallel()
	d, _ := startDevConfig(t)
	want := fmt.Sprintf("TCP KEEPALIVE: %.1f secs", config.DefaultTCPIdleTimeout.Seconds())
	for _, c := range []struct {
		addr string
		flag string
		ka   bool
	}{
		{d.Addr("dns"), "+tcp", true},
		{d.Addr("dot"), "+tls", true},
		{d.Addr("dns"), "+notcp", false},
	} {
		out := Dig(t, c.addr, c.flag, "+keepalive", "www.dnsfront.test", "A")
		if got := strings.Contains(out, want); got != c.ka {
			t.Errorf("dig %s +keepalive: %q in the answer = %v, want %v:\n%s", c.flag, want, got, c.ka, out)
		}
		if !c.ka && strings.Contains(out, "KEEPALIVE") {
			t.Errorf("dig %s +keepalive: a UDP answer carries the option:\n%s", c.flag, out)
		}
	}
}

// protocolsConfig serves Do53 and DoT (with pad_responses) and DDR with a resolver name
// and hints, or with explicit SpoofSVC parameters when .Explicit.
const protocolsConfig = `
general:
  event_loops: 2
  tcp_idle_timeout: "2500ms"
acl: ["127.0.0.0/8", "::1/128"]
ddr:
  enabled: true
  resolver_names: ["dns.test"]
{{- if .Explicit}}
  parameters:
    - priority: 1
      target: "dot.example.net."
      alpns: ["dot"]
      port: 853
      ipv6_hints: ["2001:db8::53"]
    - priority: 2
      target: "doh.example.net."
      alpns: ["h2"]
      additional_params: [{key: 7, value: "/q{?dns}"}]
{{- else}}
  ipv4_hints: ["192.0.2.53"]
{{- end}}
binds:
  - listen_address: "127.0.0.1:{{port "dns"}}"
    protocol: Do53
  - listen_address: "127.0.0.1:{{port "dot"}}"
    protocol: DoT
    pad_responses: true
    tls:
      certificates:
        - certificate: "{{.Cert.Chain}}"
          key: "{{.Cert.Key}}"
backends:
  - address: "{{.Backend}}"
    name: b1
    health_checks: { mode: up }
webserver:
  listen_addresses: ["127.0.0.1:{{port "admin"}}"]
`

type protocolsData struct {
	Backend  string
	Cert     DoTCert
	Explicit bool
}

// TestProtocolsSettings: ddr.resolver_names, ddr.ipv4_hints and ddr.parameters (the
// latter through a reload), a bind's pad_responses and a non-default
// general.tcp_idle_timeout, seen by dig and kdig.
func TestProtocolsSettings(t *testing.T) {
	t.Parallel()
	be := StartBackend(t, BackendOptions{Records: []string{testName + ". 60 IN A " + testAnswer}})
	data := protocolsData{Backend: be.Addr, Cert: CertOf(devpki.NewTestPKI(t, t.TempDir()).Leaf)}
	d := Start(t, protocolsConfig, data)

	for _, name := range []string{"_dns.resolver.arpa", "_dns.dns.test"} {
		out := Dig(t, d.Addr("dns"), name, "SVCB")
		want := fmt.Sprintf(`1 dns.test. alpn="dot" port=%d ipv4hint=192.0.2.53`, d.Port("dot"))
		if !strings.Contains(out, want) {
			t.Errorf("dig %s SVCB: no %q in\n%s", name, want, out)
		}
	}

	// pad_responses: a query with EDNS but no Padding option gets a padded answer on DoT,
	// not on Do53.
	for _, c := range []struct {
		addr string
		flag string
		pad  bool
	}{{d.Addr("dot"), "+tls", true}, {d.Addr("dns"), "+tcp", false}} {
		out := Kdig(t, c.addr, c.flag, "+edns", testName, "A")
		m := kdigReceived.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("kdig %s: no answer size in\n%s", c.flag, out)
		}
		n, _ := strconv.Atoi(m[1])
		if padded := strings.Contains(out, "PADDING:") && n%468 == 0; padded != c.pad {
			t.Errorf("kdig %s +edns with pad_responses: padded = %v (%d octets), want %v:\n%s", c.flag, padded, n, c.pad, out)
		}
	}

	// The keepalive answer is general.tcp_idle_timeout: 2.5 s.
	for _, flag := range []string{"+tcp", "+tls"} {
		addr := d.Addr("dns")
		if flag == "+tls" {
			addr = d.Addr("dot")
		}
		if out := Dig(t, addr, flag, "+keepalive", testName, "A"); !strings.Contains(out, "TCP KEEPALIVE: 2.5 secs") {
			t.Errorf("dig %s +keepalive: want TCP KEEPALIVE: 2.5 secs in\n%s", flag, out)
		}
	}

	// Explicit parameters replace the derived records, from the next reload on.
	data.Explicit = true
	d.Rewrite(protocolsConfig, data)
	reload(t, d)
	out := Dig(t, d.Addr("dns"), "_dns.resolver.arpa", "SVCB")
	for _, want := range []string{
		`1 dot.example.net. alpn="dot" port=853 ipv6hint=2001:db8::53`,
		`2 doh.example.net. alpn="h2"`,
		`"/q{?dns}"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("after the reload, no %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, "192.0.2.53") {
		t.Errorf("after the reload, the derived records are still served:\n%s", out)
	}
}

// TestProtocolsKeepaliveHonoured: a Do53 TCP connection that asked for edns-tcp-keepalive
// is closed by dnsfront once idle for the timeout it was told, and not before.
func TestProtocolsKeepaliveHonoured(t *testing.T) {
	t.Parallel()
	be := StartBackend(t, BackendOptions{Records: []string{testName + ". 60 IN A " + testAnswer}})
	d := Start(t, protocolsConfig, protocolsData{Backend: be.Addr, Cert: CertOf(devpki.NewTestPKI(t, t.TempDir()).Leaf)})
	c, err := dns.Dial("tcp", d.Addr("dns"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	q := NewQuery(testName, dns.TypeA)
	q.SetEdns0(1232, false)
	q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_TCP_KEEPALIVE{Code: dns.EDNS0TCPKEEPALIVE})
	// dnsfront counts the idle time from when it read the query: after this.
	sent := time.Now()
	if err := c.WriteMsg(q); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	r, err := c.ReadMsg()
	if err != nil {
		t.Fatal(err)
	}
	var timeout time.Duration
	if opt := r.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if ka, ok := o.(*dns.EDNS0_TCP_KEEPALIVE); ok {
				timeout = time.Duration(ka.Timeout) * 100 * time.Millisecond
			}
		}
	}
	if timeout != 2500*time.Millisecond {
		t.Fatalf("keepalive timeout %v in the answer, want 2.5s (general.tcp_idle_timeout)", timeout)
	}
	// The next read ends when dnsfront closes the idle connection.
	_ = c.SetReadDeadline(time.Now().Add(timeout + 5*time.Second))
	_, err = c.ReadMsg()
	closed := time.Since(sent)
	if err == nil || isTimeout(err) {
		t.Fatalf("connection still open %v after the query (err %v), want it closed after %v", closed, err, timeout)
	}
	if closed < timeout-200*time.Millisecond {
		t.Errorf("connection closed %v after the query, before the %v it was told", closed, timeout)
	}
}
