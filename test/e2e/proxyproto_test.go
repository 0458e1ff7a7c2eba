package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/dnsfront/dnsfront/internal/testutil"
)

// Proxy protocol v2 (issue 15 item 4) against real peers: dnsdist and haproxy in front of
// dnsfront (headers in), dnsdist as dnsfront's backend (headers out). The clients bind
// 127.0.0.1 or 127.0.0.2 as their source, so that the address a header carries can be
// told from the proxy's own.

// startPeer runs a proxy (dnsdist, haproxy) with args until the test ends and returns once
// addr accepts TCP connections; the peer's output goes to the test log if it fails.
func startPeer(t *testing.T, tool string, args []string, addr string) {
	t.Helper()
	bin := RequireTool(t, tool, tool)
	logf, err := os.Create(filepath.Join(t.TempDir(), tool+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			out, _ := os.ReadFile(logf.Name())
			t.Logf("%s output:\n%s", tool, out)
		}
		logf.Close()
	})
	up := testutil.Poll(10*time.Second, func() bool {
		select {
		case <-exited:
			return true
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return true
		}
		return false
	})
	select {
	case <-exited:
		out, _ := os.ReadFile(logf.Name())
		t.Fatalf("%s exited:\n%s", tool, out)
	default:
	}
	if !up {
		t.Fatalf("%s does not accept on %s", tool, addr)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	p, err := FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", p)
}

// startDnsdistConf runs dnsdist on a Lua configuration; listen is its first setLocal.
func startDnsdistConf(t *testing.T, lua, listen string) {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "dnsdist.conf")
	WriteFile(t, conf, []byte(lua+"\nsetSecurityPollSuffix(\"\")\n"))
	startPeer(t, "dnsdist", []string{"--supervised", "--disable-syslog", "-C", conf}, listen)
}

// ppExchangeFrom sends m over network ("udp", "tcp") from the source address src.
func ppExchangeFrom(network, src, addr string, m *dns.Msg, timeout time.Duration) (*dns.Msg, error) {
	d := &net.Dialer{Timeout: timeout}
	if network == "udp" {
		d.LocalAddr = &net.UDPAddr{IP: net.ParseIP(src)}
	} else {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	c := &dns.Client{Net: network, Dialer: d, Timeout: timeout}
	r, _, err := c.Exchange(m, addr)
	return r, err
}

// answers reports whether r is a NOERROR answer whose A records are want.
func answers(r *dns.Msg, want string) bool {
	return r != nil && r.Rcode == dns.RcodeSuccess && strings.Join(AnswerStrings(r), " ") == want
}

// ppInConfig: dnsfront admits 127.0.0.1 only, expects headers from it, and checks the
// address a header carries against the ACL too. Bind dot takes the header inside TLS
// (dnsdist's DoT backends), dotout and doh before TLS (haproxy's send-proxy-v2).
const ppInConfig = `
general: {event_loops: 2, log_level: debug}
acl: ["127.0.0.1/32"]
proxy_protocol:
  acl: ["127.0.0.1/32"]
  apply_acl_to_proxied_clients: true
binds:
  - listen_address: "127.0.0.1:{{port "dns"}}"
  - listen_address: "127.0.0.1:{{port "dot"}}"
    protocol: DoT
    tls:
      certificates: [{certificate: "{{.Cert}}", key: "{{.Key}}"}]
  - listen_address: "127.0.0.1:{{port "dotout"}}"
    protocol: DoT
    tls:
      certificates: [{certificate: "{{.Cert}}", key: "{{.Key}}"}]
      proxy_protocol_outside_tls: true
  - listen_address: "127.0.0.1:{{port "doh"}}"
    protocol: DoH
    tls:
      certificates: [{certificate: "{{.Cert}}", key: "{{.Key}}"}]
      proxy_protocol_outside_tls: true
backends:
  - address: "{{.Backend}}"
    health_checks: {mode: up}
webserver:
  listen_addresses: ["127.0.0.1:{{port "admin"}}"]
`

type ppInData struct{ Cert, Key, Backend string }

// TestProxyProtocolInDnsdist: dig → dnsdist (useProxyProtocol) → dnsfront over UDP, TCP
// and DoT (the header inside TLS). The client 127.0.0.1 is answered; 127.0.0.2, which
// only the header names, is refused by dnsfront's ACL; the metrics count both.
func TestProxyProtocolInDnsdist(t *testing.T) {
	be := StartBackend(t, BackendOptions{Records: []string{"pp.test. 60 IN A 192.0.2.1", "x.dot.pp.test. 60 IN A 192.0.2.2"}})
	pki := devpki.NewTestPKI(t, t.TempDir())
	d := Start(t, ppInConfig, ppInData{Cert: pki.Leaf.ChainFile, Key: pki.Leaf.KeyFile, Backend: be.Addr})
	dd := freeAddr(t)
	startDnsdistConf(t, fmt.Sprintf(`setLocal(%q)
setACL({"127.0.0.0/8"})
newServer({address=%q, useProxyProtocol=true})
getServer(0):setUp()
newServer({address=%q, tls="openssl", validateCertificates=false, useProxyProtocol=true, pool="dot"})
getServer(1):setUp()
addAction("dot.pp.test.", PoolAction("dot"))
`, dd, d.Addr("dns"), d.Addr("dot")), dd)

	for _, tc := range []struct{ network, name, want string }{
		{"udp", "pp.test.", "192.0.2.1"},
		{"tcp", "pp.test.", "192.0.2.1"},
		{"udp", "x.dot.pp.test.", "192.0.2.2"}, // dnsdist → dnsfront over DoT
	} {
		// A real client: dig, from 127.0.0.1.
		args := []string{"-b", "127.0.0.1", "+short", tc.name, "A"}
		if tc.network == "tcp" {
			args = append(args, "+tcp")
		}
		if out := Dig(t, dd, args...); strings.TrimSpace(out) != tc.want {
			t.Fatalf("dig %v via dnsdist: %q, want %s", args, out, tc.want)
		}
		// 127.0.0.2 reaches dnsdist, whose ACL admits it, but dnsfront's does not.
		r, err := ppExchangeFrom(tc.network, "127.0.0.2", dd, NewQuery(tc.name, dns.TypeA), 1500*time.Millisecond)
		if err == nil && answers(r, tc.want) {
			t.Fatalf("%s %s from 127.0.0.2 was answered through dnsdist: %v", tc.network, tc.name, r)
		}
	}
	if v := metricOf(t, d, "dnsfront_proxy_protocol_headers_total", `result="valid"`); v < 6 {
		t.Fatalf("valid headers: %v, want at least 6", v)
	}
	if v := metricOf(t, d, "dnsfront_dropped_queries_total", `reason="acl"`); v < 3 {
		t.Fatalf("ACL drops: %v, want at least 3 (one per transport)", v)
	}
	if v := metricOf(t, d, "dnsfront_proxy_protocol_headers_total", `result="invalid"`); v != 0 {
		t.Fatalf("invalid headers from dnsdist: %v", v)
	}
	if !strings.Contains(d.Log(), "127.0.0.2") {
		t.Fatal("the log does not name the proxied client 127.0.0.2")
	}
}

// TestProxyProtocolInHAProxy: haproxy's send-proxy-v2 in TCP mode puts the header before
// the TLS session, in front of a DoT bind (kdig) and a DoH bind (Go's HTTP/2 client).
func TestProxyProtocolInHAProxy(t *testing.T) {
	be := StartBackend(t, BackendOptions{Records: []string{"pp.test. 60 IN A 192.0.2.1"}})
	pki := devpki.NewTestPKI(t, t.TempDir())
	d := Start(t, ppInConfig, ppInData{Cert: pki.Leaf.ChainFile, Key: pki.Leaf.KeyFile, Backend: be.Addr})
	hDoT, hDoH := freeAddr(t), freeAddr(t)
	conf := filepath.Join(t.TempDir(), "haproxy.cfg")
	WriteFile(t, conf, []byte(fmt.Sprintf(`global
  maxconn 100
defaults
  mode tcp
  timeout connect 2s
  timeout client 10s
  timeout server 10s
listen dot
  bind %s
  server dnsfront %s send-proxy-v2
listen doh
  bind %s
  server dnsfront %s send-proxy-v2
`, hDoT, d.Addr("dotout"), hDoH, d.Addr("doh"))))
	startPeer(t, "haproxy", []string{"-db", "-f", conf}, hDoT)

	out := Kdig(t, hDoT, "-b", "127.0.0.1", "+tls", "+short", "pp.test", "A")
	if strings.TrimSpace(out) != "192.0.2.1" {
		t.Fatalf("kdig +tls through haproxy: %q", out)
	}
	if out := kdigNoFail(t, hDoT, "-b", "127.0.0.2", "+tls", "+short", "pp.test", "A"); strings.Contains(out, "192.0.2.1") {
		t.Fatalf("kdig +tls from 127.0.0.2 through haproxy was answered: %q", out)
	}

	doh := func(src string) (*dns.Msg, error) {
		tr := &http.Transport{
			TLSClientConfig:   dohTLSConfig(t, pki, "h2"),
			ForceAttemptHTTP2: true,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
				return d.DialContext(ctx, "tcp", hDoH)
			},
		}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
		res, err := dohDo(c, http.MethodPost, "https://dns.test/dns-query", "application/dns-message", packDoH(t, NewQuery("pp.test.", dns.TypeA)))
		if err != nil {
			return nil, err
		}
		if res.Status != http.StatusOK {
			return nil, fmt.Errorf("HTTP %d", res.Status)
		}
		return res.Msg(t), nil
	}
	if r, err := doh("127.0.0.1"); err != nil || !answers(r, "192.0.2.1") {
		t.Fatalf("DoH through haproxy: %v %v", r, err)
	}
	if r, err := doh("127.0.0.2"); err == nil {
		t.Fatalf("DoH from 127.0.0.2 through haproxy was answered: %v", r)
	}
	if v := metricOf(t, d, "dnsfront_proxy_protocol_headers_total", `result="valid"`); v < 4 {
		t.Fatalf("valid headers: %v, want 4", v)
	}
	if v := metricOf(t, d, "dnsfront_dropped_queries_total", `reason="acl"`); v < 2 {
		t.Fatalf("ACL drops: %v, want 2", v)
	}
}

// ppRaw builds a header as a proxy would (Go-crafted, for the malformed cases).
func ppRaw(cmd, famProto byte, body []byte) []byte {
	b := []byte("\r\n\r\n\x00\r\nQUIT\n")
	b = append(b, 0x20|cmd, famProto)
	b = binary.BigEndian.AppendUint16(b, uint16(len(body)))
	return append(b, body...)
}

// ppV4 is a PROXY header for 192.0.2.99:4242 → 127.0.0.1:53 with extra bytes of TLV.
func ppV4(stream bool, tlv []byte) []byte { return ppV4From(99, stream, tlv) }

// ppV4From is ppV4 from 192.0.2.host.
func ppV4From(host byte, stream bool, tlv []byte) []byte {
	body := []byte{192, 0, 2, host, 127, 0, 0, 1, 0x10, 0x92, 0, 53}
	proto := byte(0x12)
	if stream {
		proto = 0x11
	}
	return ppRaw(1, proto, append(body, tlv...))
}

func packQuery(t *testing.T, name string) []byte {
	t.Helper()
	b, err := NewQuery(name, dns.TypeA).Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Waits for an answer: long where one is expected (a loaded machine answers well
// within), short where none should come.
const answerWait, dropWait = 5 * time.Second, time.Second

// udpAnswered sends the datagram b from 127.0.0.1 and reports whether an answer came
// within wait: answerWait where an answer is expected, dropWait where the query should be
// dropped (a dropped query is shown by its metric first; this only confirms that nothing
// answered it).
func udpAnswered(t *testing.T, addr string, b []byte, wait time.Duration) bool {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		return false
	}
	m := new(dns.Msg)
	return m.Unpack(buf[:n]) == nil && answers(m, "192.0.2.1")
}

// TestProxyProtocolMalformed: from a peer in the proxy ACL, a query without a header, a
// broken header and one larger than maximum_payload_size are dropped and counted, over UDP
// and TCP, inside TLS too; a LOCAL header keeps the peer's address; a header split across
// TCP segments is read whole; a bad connection costs its neighbours nothing; peers outside
// the proxy ACL send plain DNS. A rule selects the client a header names.
func TestProxyProtocolMalformed(t *testing.T) {
	be := StartBackend(t, BackendOptions{Records: []string{"pp.test. 60 IN A 192.0.2.1"}})
	pki := devpki.NewTestPKI(t, t.TempDir())
	d := Start(t, `
general: {event_loops: 2}
acl: ["127.0.0.0/8", "192.0.2.0/24"]
proxy_protocol:
  acl: ["127.0.0.1/32"]
  maximum_payload_size: 64
binds:
  - listen_address: "127.0.0.1:{{port "dns"}}"
  - listen_address: "127.0.0.1:{{port "dot"}}"
    protocol: DoT
    tls:
      certificates: [{certificate: "{{.Cert}}", key: "{{.Key}}"}]
  - listen_address: "127.0.0.1:{{port "doh"}}"
    protocol: DoH
    tls:
      certificates: [{certificate: "{{.Cert}}", key: "{{.Key}}"}]
backends:
  - address: "{{.Backend}}"
    health_checks: {mode: up}
query_rules:
  - name: "proxied client"
    selector: { type: "NetmaskGroup", netmasks: ["192.0.2.66/32"] }
    action: { type: "RCode", rcode: "Refused" }
webserver:
  listen_addresses: ["127.0.0.1:{{port "admin"}}"]
`, ppInData{Cert: pki.Leaf.ChainFile, Key: pki.Leaf.KeyFile, Backend: be.Addr})
	addr := d.Addr("dns")
	q := packQuery(t, "pp.test.")
	counted := func(result string, want float64) {
		t.Helper()
		if v, _ := waitMetricOf(t, d, 5*time.Second, func(v float64) bool { return v >= want }, "dnsfront_proxy_protocol_headers_total", `result="`+result+`"`); v != want {
			t.Fatalf("%s headers: %v, want %v", result, v, want)
		}
	}

	// UDP.
	if !udpAnswered(t, addr, append(ppV4(false, nil), q...), answerWait) {
		t.Fatal("a query behind a valid header was not answered")
	}
	counted("valid", 1)
	if udpAnswered(t, addr, q, dropWait) {
		t.Fatal("a query without a header from the proxy was answered")
	}
	counted("invalid", 1)
	bad := ppV4(false, nil)
	bad[12] = 0x11 // version 1
	if udpAnswered(t, addr, append(bad, q...), dropWait) {
		t.Fatal("a query behind a version 1 header was answered")
	}
	counted("invalid", 2)
	if udpAnswered(t, addr, append(ppV4(false, append([]byte{0xEE, 0, 60}, make([]byte, 60)...)), q...), dropWait) {
		t.Fatal("a query behind a header over maximum_payload_size was answered")
	}
	counted("too_large", 1)
	if !udpAnswered(t, addr, append(ppRaw(0, 0, nil), q...), answerWait) {
		t.Fatal("a query behind a LOCAL header was not answered")
	}
	counted("local", 1)
	// The rules see the client the header names.
	rc, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := rc.Write(append(ppV4From(66, false, nil), q...)); err != nil {
		t.Fatal(err)
	}
	_ = rc.SetReadDeadline(time.Now().Add(5 * time.Second))
	rbuf := make([]byte, 1500)
	n, err := rc.Read(rbuf)
	refused := new(dns.Msg)
	if err != nil || refused.Unpack(rbuf[:n]) != nil || refused.Rcode != dns.RcodeRefused {
		t.Fatalf("a query whose header names 192.0.2.66: %v %v, want REFUSED by the rule", refused, err)
	}
	counted("valid", 2)
	// Outside the proxy ACL, plain DNS.
	if r, err := ppExchangeFrom("udp", "127.0.0.2", addr, NewQuery("pp.test.", dns.TypeA), 2*time.Second); err != nil || !answers(r, "192.0.2.1") {
		t.Fatalf("plain query from 127.0.0.2: %v %v", r, err)
	}

	// TCP: a good connection, then a bad one beside it, then the good one again.
	frame := binary.BigEndian.AppendUint16(nil, uint16(len(q)))
	frame = append(frame, q...)
	readAnswer := func(c net.Conn) error {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var l [2]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return err
		}
		b := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(c, b); err != nil {
			return err
		}
		m := new(dns.Msg)
		if err := m.Unpack(b); err != nil || !answers(m, "192.0.2.1") {
			return fmt.Errorf("answer %v %v", m, err)
		}
		return nil
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	good := dial()
	hdr := ppV4(true, []byte{0x04, 0, 2, 'h', 'i'}) // with a TLV (NOOP)
	// The header arrives in two segments: it is read whole.
	if _, err := good.Write(hdr[:10]); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "the connection is open", func() bool {
		return metricOf(t, d, "dnsfront_client_connections") >= 1
	})
	if _, err := good.Write(append(hdr[10:], frame...)); err != nil {
		t.Fatal(err)
	}
	if err := readAnswer(good); err != nil {
		t.Fatalf("TCP behind a split header: %v", err)
	}
	counted("valid", 3)
	for i, garbage := range [][]byte{frame, append(bad[:len(bad):len(bad)], frame...), append(ppV4(true, make([]byte, 80)), frame...)} {
		c := dial()
		if _, err := c.Write(garbage); err != nil {
			t.Fatal(err)
		}
		if err := readAnswer(c); err == nil {
			t.Fatalf("TCP garbage %d was answered", i)
		}
	}
	counted("invalid", 4)
	counted("too_large", 2)
	if _, err := good.Write(frame); err != nil {
		t.Fatal(err)
	}
	if err := readAnswer(good); err != nil {
		t.Fatalf("the good connection after the bad ones: %v", err)
	}

	// DoT: the header inside TLS; garbage there closes the connection after the handshake.
	tc, err := tls.Dial("tcp", d.Addr("dot"), &tls.Config{RootCAs: CertPool(t, pki.Root.Cert), ServerName: "dns.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if _, err := tc.Write(append(bytes.Clone(bad), frame...)); err != nil {
		t.Fatal(err)
	}
	if err := readAnswer(tc); err == nil {
		t.Fatal("DoT behind a broken inner header was answered")
	}
	counted("invalid", 5)
	tc2, err := tls.Dial("tcp", d.Addr("dot"), &tls.Config{RootCAs: CertPool(t, pki.Root.Cert), ServerName: "dns.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer tc2.Close()
	if _, err := tc2.Write(append(ppV4(true, nil), frame...)); err != nil {
		t.Fatal(err)
	}
	if err := readAnswer(tc2); err != nil {
		t.Fatalf("DoT behind a valid inner header: %v", err)
	}

	// DoH over HTTP/1.1: the header inside TLS, before the request; the rule sees its client.
	doh := func(hdr []byte) (int, error) {
		c, err := tls.Dial("tcp", d.Addr("doh"), &tls.Config{RootCAs: CertPool(t, pki.Root.Cert), ServerName: "dns.test", NextProtos: []string{"http/1.1"}})
		if err != nil {
			return 0, err
		}
		defer c.Close()
		req := fmt.Sprintf("POST /dns-query HTTP/1.1\r\nHost: dns.test\r\nContent-Type: application/dns-message\r\nContent-Length: %d\r\n\r\n", len(q))
		if _, err := c.Write(append(append(bytes.Clone(hdr), req...), q...)); err != nil {
			return 0, err
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0, err
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			return 0, err
		}
		m := new(dns.Msg)
		if err := m.Unpack(body); err != nil {
			return res.StatusCode, err
		}
		return m.Rcode, nil
	}
	if rc, err := doh(ppV4(true, nil)); err != nil || rc != dns.RcodeSuccess {
		t.Fatalf("DoH behind a valid inner header: rcode %d, %v", rc, err)
	}
	if rc, err := doh(ppV4From(66, true, nil)); err != nil || rc != dns.RcodeRefused {
		t.Fatalf("DoH behind a header naming 192.0.2.66: rcode %d, %v, want REFUSED by the rule", rc, err)
	}
	if _, err := doh(bad); err == nil {
		t.Fatal("DoH behind a broken inner header was answered")
	}
	counted("invalid", 6)
}

// TestProxyProtocolOutDnsdist: dnsdist as the backend requires a header from dnsfront
// (setProxyProtocolACL) and applies its ACL, which admits 127.0.0.1 only, to the client
// the header names. Over UDP (a header per datagram), TCP (a connection per client) and
// from DoT (with the SSL TLV, which a dnsdist rule answers differently), the real client
// 127.0.0.1 is answered and 127.0.0.2 is not. Health checks carry a LOCAL header.
func TestProxyProtocolOutDnsdist(t *testing.T) {
	dd := freeAddr(t)
	startDnsdistConf(t, fmt.Sprintf(`setLocal(%q)
setACL({"127.0.0.1/32"})
setProxyProtocolACL({"127.0.0.0/8"})
setProxyProtocolApplyACLToProxiedClients(true)
addAction(ProxyProtocolValueRule(0x20), SpoofAction("192.0.2.20"))
addAction(AllRule(), SpoofAction("192.0.2.7"))
`, dd), dd)
	pki := devpki.NewTestPKI(t, t.TempDir())
	d := Start(t, `
general: {event_loops: 2, udp_timeout: 1}
acl: ["127.0.0.0/8"]
binds:
  - listen_address: "127.0.0.1:{{port "dns"}}"
  - listen_address: "127.0.0.1:{{port "dnst"}}"
    pool: t
  - listen_address: "127.0.0.1:{{port "dot"}}"
    protocol: DoT
    pool: t
    tls:
      certificates: [{certificate: "{{.Cert}}", key: "{{.Key}}"}]
backends:
  - address: "{{.Backend}}"
    name: dd
    use_proxy_protocol: true
    proxy_protocol_advertise_tls: true
    health_checks: {mode: auto, interval: 1}
  - address: "{{.Backend}}"
    name: ddt
    pools: [t]
    tcp_only: true
    use_proxy_protocol: true
    proxy_protocol_advertise_tls: true
    health_checks: {mode: auto, interval: 1}
webserver:
  listen_addresses: ["127.0.0.1:{{port "admin"}}"]
`, ppInData{Cert: pki.Leaf.ChainFile, Key: pki.Leaf.KeyFile, Backend: dd})
	for _, name := range []string{"dd", "ddt"} {
		testutil.Eventually(t, 10*time.Second, "backend "+name+" up through its LOCAL-header health checks", func() bool {
			return backendUp(t, d, name) == 1
		})
	}
	for _, tc := range []struct{ network, bind string }{{"udp", "dns"}, {"tcp", "dns"}, {"udp", "dnst"}, {"tcp", "dnst"}} {
		r, err := ppExchangeFrom(tc.network, "127.0.0.1", d.Addr(tc.bind), NewQuery("pp.test.", dns.TypeA), 3*time.Second)
		if err != nil || !answers(r, "192.0.2.7") {
			t.Fatalf("%s to %s from 127.0.0.1: %v %v", tc.network, tc.bind, r, err)
		}
		r, err = ppExchangeFrom(tc.network, "127.0.0.2", d.Addr(tc.bind), NewQuery("pp.test.", dns.TypeA), 3*time.Second)
		if err != nil || r.Rcode != dns.RcodeServerFailure {
			t.Fatalf("%s to %s from 127.0.0.2: %v %v, want SERVFAIL (dnsdist drops it)", tc.network, tc.bind, r, err)
		}
	}
	// Two queries on one DoT connection share its backend connection; the SSL TLV is there.
	out := Kdig(t, d.Addr("dot"), "-b", "127.0.0.1", "+tls", "+keepopen", "+short", "pp.test", "A", "pp.test", "AAAA")
	if !strings.Contains(out, "192.0.2.20") {
		t.Fatalf("kdig +tls from 127.0.0.1: %q, want dnsdist's answer to the SSL TLV", out)
	}
	if out := kdigNoFail(t, d.Addr("dot"), "-b", "127.0.0.2", "+tls", "pp.test", "A"); !strings.Contains(out, "SERVFAIL") {
		t.Fatalf("kdig +tls from 127.0.0.2: %q, want SERVFAIL", out)
	}
	if v := metricOf(t, d, "dnsfront_proxy_protocol_sent_total", `transport="udp"`); v < 2 {
		t.Fatalf("headers sent over UDP: %v", v)
	}
	if v := metricOf(t, d, "dnsfront_proxy_protocol_sent_total", `transport="tcp"`); v < 4 {
		t.Fatalf("headers sent over TCP: %v", v)
	}
}

// TestProxyProtocolReload: a reload changes proxy_protocol.acl for the datagrams and
// connections that follow, and enable_proxy_protocol on a Do53 bind (which replaces the
// bind's listener).
func TestProxyProtocolReload(t *testing.T) {
	be := StartBackend(t, BackendOptions{Records: []string{"pp.test. 60 IN A 192.0.2.1"}})
	const tmpl = `
general: {event_loops: 1}
acl: ["127.0.0.0/8", "192.0.2.0/24"]
proxy_protocol: {acl: [{{.ACL}}]}
binds:
  - listen_address: "127.0.0.1:{{port "dns"}}"
    enable_proxy_protocol: {{.Enabled}}
backends:
  - address: "{{.Backend}}"
    health_checks: {mode: up}
webserver:
  listen_addresses: ["127.0.0.1:{{port "admin"}}"]
`
	type data struct {
		ACL, Backend string
		Enabled      bool
	}
	d := Start(t, tmpl, data{ACL: `"127.0.0.1"`, Backend: be.Addr, Enabled: true})
	q := packQuery(t, "pp.test.")
	plain := func(wait time.Duration) bool {
		r, err := ppExchangeFrom("udp", "127.0.0.1", d.Addr("dns"), NewQuery("pp.test.", dns.TypeA), wait)
		return err == nil && answers(r, "192.0.2.1")
	}
	answered := func() bool { return plain(answerWait) }
	if plain(dropWait) || !udpAnswered(t, d.Addr("dns"), append(ppV4(false, nil), q...), answerWait) {
		t.Fatal("before the reload: a header is required from 127.0.0.1")
	}
	d.Rewrite(tmpl, data{ACL: "", Backend: be.Addr, Enabled: true})
	reload(t, d)
	if !plain(answerWait) {
		t.Fatal("with an empty proxy_protocol.acl, a plain query from 127.0.0.1 was not answered")
	}
	d.Rewrite(tmpl, data{ACL: `"127.0.0.1"`, Backend: be.Addr, Enabled: false})
	reload(t, d)
	testutil.Eventually(t, 10*time.Second, "the bind without enable_proxy_protocol answers plain queries", answered)
	d.Rewrite(tmpl, data{ACL: `"127.0.0.1"`, Backend: be.Addr, Enabled: true})
	reload(t, d)
	testutil.Eventually(t, 10*time.Second, "the bind with enable_proxy_protocol requires a header again", func() bool {
		return !plain(dropWait) && udpAnswered(t, d.Addr("dns"), append(ppV4(false, nil), q...), answerWait)
	})
}
