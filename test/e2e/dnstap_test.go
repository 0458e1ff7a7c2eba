package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/dnsfront/dnsfront/internal/testutil"
)

// dnstapReader is the dnstap command of golang-dnstap reading a unix socket (`dnstap -u
// SOCKET -y`): a real Frame Streams collector. Each YAML document it prints is one
// message.
type dnstapReader struct {
	cmd  *exec.Cmd
	docs chan string
	done chan struct{}
}

// startDnstapReader starts the reader on the unix socket path and waits until it
// listens.
func startDnstapReader(t *testing.T, path string) *dnstapReader {
	t.Helper()
	_ = os.Remove(path)
	return runDnstapReader(t, path, func() bool {
		_, err := os.Stat(path)
		return err == nil
	}, "-u", path)
}

// runDnstapReader runs `dnstap ARGS -y` and waits until ready reports that it listens.
func runDnstapReader(t *testing.T, what string, ready func() bool, args ...string) *dnstapReader {
	t.Helper()
	bin := testutil.Tool(t, "dnstap")
	cmd := exec.Command(bin, append(args, "-y")...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &dnstapReader{cmd: cmd, docs: make(chan string, 1000), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		sc := bufio.NewScanner(out)
		var doc strings.Builder
		for sc.Scan() {
			if sc.Text() == "---" {
				r.docs <- doc.String()
				doc.Reset()
				continue
			}
			doc.WriteString(sc.Text() + "\n")
		}
	}()
	t.Cleanup(r.stop)
	testutil.Eventually(t, 10*time.Second, "dnstap listening on "+what, ready)
	return r
}

// stop kills the reader, as a collector that crashes or restarts goes away.
func (r *dnstapReader) stop() {
	if r.cmd.ProcessState == nil {
		_ = r.cmd.Process.Signal(syscall.SIGKILL)
		<-r.done
		_ = r.cmd.Wait()
	}
}

// await returns the first message (skipping others) for which match holds.
func (r *dnstapReader) await(t *testing.T, what string, match func(doc string) bool) string {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case doc := <-r.docs:
			if match(doc) {
				return doc
			}
		case <-r.done:
			t.Fatalf("dnstap exited before %s", what)
		case <-deadline:
			t.Fatalf("no dnstap message within 15s: %s", what)
		}
	}
}

// dnstapField returns the value of "key: value" in a YAML document of the reader
// (top-level or in message:), "" without one.
func dnstapField(doc, key string) string {
	for _, line := range strings.Split(doc, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+": "); ok {
			return v
		}
	}
	return ""
}

// isTap matches a message of type typ (CLIENT_QUERY, CLIENT_RESPONSE) about the
// query name name.
func isTap(typ, name string) func(string) bool {
	return func(doc string) bool {
		return dnstapField(doc, "type") == "MESSAGE" && strings.Contains(doc, "  type: "+typ+"\n") && strings.Contains(doc, name)
	}
}

// dnstapFE is a Do53 and DoT frontend whose rules send every query and response to
// the dnstap logger "tap" on socket (flush_timeout 1 s, fstrm's least).
func dnstapFE(t *testing.T, pki *devpki.TestPKI, be *Backend, socket, logger string) string {
	t.Helper()
	fe := feConfig{
		PKI:      pki,
		Binds:    []feBind{{Port: "dns", Protocol: "Do53"}, {Port: "dot", Protocol: "DoT", TLS: true}, {Port: "doh", Protocol: "DoH", TLS: true}},
		Backends: []feBackend{{Name: "b1", Addr: be.Addr, UDPTimeout: 2}},
	}
	if logger == "" {
		logger = "{name: tap, transport: unix, address: " + fmt.Sprintf("%q", socket) + ", reopen_interval: 1}"
	}
	return fe.YAML() + `remote_logging:
  dnstap_loggers:
    - ` + logger + `
query_rules:
  - name: tap every query
    selector: {type: All}
    action: {type: DnstapLog, identity: edge-1, logger_name: tap}
response_rules:
  - name: tap every response
    selector: {type: All}
    action: {type: DnstapLog, identity: edge-1, logger_name: tap}
`
}

// TestDnstapDoTAndUDP: the dnstap reader receives the CLIENT_QUERY and CLIENT_RESPONSE
// of a kdig +tls query with socket_protocol DOT, the client's and the listener's
// addresses, identity and version; of a kdig +https query (DOH); and of a dig query over
// UDP. A reload that leaves
// the logger unchanged keeps its connection.
func TestDnstapDoTAndUDP(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "tap.sock")
	r := startDnstapReader(t, sock)
	pki := devpki.NewTestPKI(t, t.TempDir())
	be := StartBackend(t, BackendOptions{Records: []string{testName + ". 60 IN A " + testAnswer, "udp.dnsfront.test. 60 IN A 192.0.2.2", "doh.dnsfront.test. 60 IN A 192.0.2.3"}})
	d := Start(t, dnstapFE(t, pki, be, sock, ""), nil)

	out := Kdig(t, d.Addr("dot"), "+tls", "+tls-ca="+pki.Root.CertFile, "+tls-hostname=dns.test", testName, "A")
	if !strings.Contains(out, testAnswer) {
		t.Fatalf("kdig +tls: no answer:\n%s", out)
	}
	q := r.await(t, "the DoT query", isTap("CLIENT_QUERY", testName))
	t.Logf("the DoT query as dnstap -y prints it:\n%s", q)
	dotPort := fmt.Sprint(d.Port("dot"))
	for key, want := range map[string]string{
		"identity": `"edge-1"`, "socket_family": "INET", "socket_protocol": "DOT",
		"query_address": "127.0.0.1", "response_address": "127.0.0.1", "response_port": dotPort,
	} {
		if got := dnstapField(q, key); got != want {
			t.Errorf("DoT CLIENT_QUERY %s = %q, want %q:\n%s", key, got, want, q)
		}
	}
	if !strings.HasPrefix(dnstapField(q, "version"), `"dnsfront `) || dnstapField(q, "query_time") == "" || dnstapField(q, "query_port") == "" {
		t.Errorf("DoT CLIENT_QUERY without version, query_time or query_port:\n%s", q)
	}
	resp := r.await(t, "the DoT response", isTap("CLIENT_RESPONSE", testName))
	if dnstapField(resp, "socket_protocol") != "DOT" || !strings.Contains(resp, testAnswer) ||
		dnstapField(resp, "response_time") == "" || dnstapField(resp, "query_time") == "" {
		t.Errorf("DoT CLIENT_RESPONSE: want DOT, the answer %s, both times:\n%s", testAnswer, resp)
	}

	out = Kdig(t, d.Addr("doh"), "+https=/dns-query", "+tls-ca="+pki.Root.CertFile, "+tls-hostname=dns.test", "doh.dnsfront.test", "A")
	if !strings.Contains(out, "192.0.2.3") {
		t.Fatalf("kdig +https: no answer:\n%s", out)
	}
	q = r.await(t, "the DoH query", isTap("CLIENT_QUERY", "doh.dnsfront.test"))
	resp = r.await(t, "the DoH response", isTap("CLIENT_RESPONSE", "doh.dnsfront.test"))
	if dnstapField(q, "socket_protocol") != "DOH" || dnstapField(resp, "socket_protocol") != "DOH" ||
		dnstapField(q, "response_port") != fmt.Sprint(d.Port("doh")) || !strings.Contains(resp, "192.0.2.3") {
		t.Errorf("DoH messages:\n%s\n%s", q, resp)
	}

	out = Dig(t, d.Addr("dns"), "udp.dnsfront.test", "A")
	if !strings.Contains(out, "192.0.2.2") {
		t.Fatalf("dig: no answer:\n%s", out)
	}
	q = r.await(t, "the UDP query", isTap("CLIENT_QUERY", "udp.dnsfront.test"))
	if dnstapField(q, "socket_protocol") != "UDP" || dnstapField(q, "response_port") != fmt.Sprint(d.Port("dns")) {
		t.Errorf("UDP CLIENT_QUERY:\n%s", q)
	}
	resp = r.await(t, "the UDP response", isTap("CLIENT_RESPONSE", "udp.dnsfront.test"))
	if dnstapField(resp, "socket_protocol") != "UDP" || !strings.Contains(resp, "192.0.2.2") {
		t.Errorf("UDP CLIENT_RESPONSE:\n%s", resp)
	}

	// A reload with the logger unchanged keeps the connection: no new one is made and
	// messages keep arriving.
	connects := d.Metric(`dnsfront_dnstap_connects_total{logger="tap"}`)
	reload(t, d)
	MustExchange(t, "udp", d.Addr("dns"), NewQuery("udp.dnsfront.test", dns.TypeA))
	r.await(t, "a query after the reload", isTap("CLIENT_QUERY", "udp.dnsfront.test"))
	if v := d.Metric(`dnsfront_dnstap_connects_total{logger="tap"}`); v != connects || connects != 1 {
		t.Errorf("dnsfront_dnstap_connects_total %v after the reload, %v before: want 1, kept", v, connects)
	}
	if v := d.Metric(`dnsfront_dnstap_messages_total{logger="tap",outcome="dropped"}`); v != 0 {
		t.Errorf("%v messages dropped", v)
	}
}

// TestDnstapReaderRestart: the reader exits and a new one starts on the same socket;
// dnsfront reconnects and the new reader gets the messages of later queries.
func TestDnstapReaderRestart(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "tap.sock")
	r := startDnstapReader(t, sock)
	pki := devpki.NewTestPKI(t, t.TempDir())
	be := StartBackend(t, BackendOptions{Records: []string{testName + ". 60 IN A " + testAnswer}})
	d := Start(t, dnstapFE(t, pki, be, sock, ""), nil)
	MustExchange(t, "udp", d.Addr("dns"), NewQuery(testName, dns.TypeA))
	r.await(t, "the first query", isTap("CLIENT_QUERY", testName))

	r.stop()
	d.WaitMetric(`dnsfront_dnstap_connected{logger="tap"}`, 10*time.Second, func(v float64) bool { return v == 0 })
	// Queries while no reader runs are answered; their messages wait in the queue.
	MustExchange(t, "udp", d.Addr("dns"), NewQuery("meanwhile.dnsfront.test", dns.TypeA))
	r2 := startDnstapReader(t, sock)
	d.WaitMetric(`dnsfront_dnstap_connected{logger="tap"}`, 15*time.Second, func(v float64) bool { return v == 1 })
	r2.await(t, "the query made while no reader ran", isTap("CLIENT_QUERY", "meanwhile.dnsfront.test"))
	MustExchange(t, "udp", d.Addr("dns"), NewQuery(testName, dns.TypeA))
	r2.await(t, "a query after the restart", isTap("CLIENT_RESPONSE", testName))
	if v := d.Metric(`dnsfront_dnstap_connects_total{logger="tap"}`); v != 2 {
		t.Errorf("dnsfront_dnstap_connects_total = %v, want 2", v)
	}
}

// TestDnstapStuckReaderDrops: a collector that accepts the connection and never reads
// (so the Frame Streams handshake never completes) does not slow the loops down: every
// query is answered, and the messages beyond the queue are dropped and counted.
func TestDnstapStuckReaderDrops(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "stuck.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // accept, hold, never read
		var held []net.Conn
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range held {
					_ = c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	pki := devpki.NewTestPKI(t, t.TempDir())
	be := StartBackend(t, BackendOptions{Records: []string{testName + ". 60 IN A " + testAnswer}})
	d := Start(t, dnstapFE(t, pki, be, sock, fmt.Sprintf("{name: tap, transport: unix, address: %q, input_queue_size: 8}", sock)), nil)
	const n = 50
	start := time.Now()
	for range n {
		m, err := ExchangeTimeout("udp", d.Addr("dns"), NewQuery(testName, dns.TypeA), 5*time.Second)
		if err != nil || len(m.Answer) != 1 {
			t.Fatalf("query unanswered with a stuck collector: %v %v", m, err)
		}
	}
	t.Logf("%d queries answered in %v with a stuck dnstap collector", n, time.Since(start))
	// Two messages per query (query and response); the queue holds 8.
	queued := d.Metric(`dnsfront_dnstap_messages_total{logger="tap",outcome="queued"}`)
	dropped := d.Metric(`dnsfront_dnstap_messages_total{logger="tap",outcome="dropped"}`)
	if queued+dropped != 2*n || dropped < 2*n-8-2 || d.Metric(`dnsfront_dnstap_queue_length{logger="tap"}`) > 8 {
		t.Errorf("queued %v, dropped %v of %d messages, queue length %v: want at most 8 (+2 taken by the writer) queued",
			queued, dropped, 2*n, d.Metric(`dnsfront_dnstap_queue_length{logger="tap"}`))
	}
}

// TestDnstapTCPTransport: a logger with transport tcp reaches the reader listening on
// TCP (`dnstap -l`).
func TestDnstapTCPTransport(t *testing.T) {
	t.Parallel()
	port, err := FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	r := runDnstapReader(t, addr, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	}, "-l", addr)
	pki := devpki.NewTestPKI(t, t.TempDir())
	be := StartBackend(t, BackendOptions{Records: []string{testName + ". 60 IN A " + testAnswer}})
	d := Start(t, dnstapFE(t, pki, be, "", fmt.Sprintf("{name: tap, transport: tcp, address: %q}", addr)), nil)
	MustExchange(t, "tcp", d.Addr("dns"), NewQuery(testName, dns.TypeA))
	q := r.await(t, "the Do53 TCP query", isTap("CLIENT_QUERY", testName))
	resp := r.await(t, "the Do53 TCP response", isTap("CLIENT_RESPONSE", testName))
	if dnstapField(q, "socket_protocol") != "TCP" || dnstapField(resp, "socket_protocol") != "TCP" || !strings.Contains(resp, testAnswer) {
		t.Errorf("Do53 TCP messages:\n%s\n%s", q, resp)
	}
}

// TestDnstapReloadReplacesLogger: a reload that moves the logger to another socket
// closes the old connection (the old reader sees the session end) and the new reader
// gets the messages of later queries.
func TestDnstapReloadReplacesLogger(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sockA, sockB := filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")
	a, b := startDnstapReader(t, sockA), startDnstapReader(t, sockB)
	pki := devpki.NewTestPKI(t, t.TempDir())
	be := StartBackend(t, BackendOptions{Records: []string{testName + ". 60 IN A " + testAnswer, "after.dnsfront.test. 60 IN A 192.0.2.4"}})
	d := Start(t, dnstapFE(t, pki, be, sockA, ""), nil)
	MustExchange(t, "udp", d.Addr("dns"), NewQuery(testName, dns.TypeA))
	a.await(t, "a query before the reload", isTap("CLIENT_QUERY", testName))

	d.Rewrite(dnstapFE(t, pki, be, sockB, ""), nil)
	reload(t, d)
	MustExchange(t, "udp", d.Addr("dns"), NewQuery("after.dnsfront.test", dns.TypeA))
	b.await(t, "a query after the reload, at the new socket", isTap("CLIENT_QUERY", "after.dnsfront.test"))
	if !d.WaitLog(`msg="dnstap: logger replaced or removed" logger=tap`, 0, 5*time.Second) {
		t.Error("no log line for the replaced logger")
	}
	d.WaitMetric(`dnsfront_dnstap_connected{logger="tap"}`, 10*time.Second, func(v float64) bool { return v == 1 })
}

// TestDnstapProxyProtocolClient: behind a proxy that sends a PROXY v2 header (kdig
// +proxy), the messages name the client the header carries, not the proxy.
func TestDnstapProxyProtocolClient(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "tap.sock")
	r := startDnstapReader(t, sock)
	pki := devpki.NewTestPKI(t, t.TempDir())
	be := StartBackend(t, BackendOptions{Records: []string{testName + ". 60 IN A " + testAnswer}})
	cfg := strings.Replace(dnstapFE(t, pki, be, sock, ""), `acl: ["127.0.0.0/8", "::1/128"]`,
		`acl: ["127.0.0.0/8", "198.51.100.0/24"]`+"\nproxy_protocol:\n  acl: [\"127.0.0.1/32\"]", 1)
	if !strings.Contains(cfg, "proxy_protocol:") {
		t.Fatalf("the configuration's acl line moved:\n%s", cfg)
	}
	d := Start(t, cfg, nil)
	out := Kdig(t, d.Addr("dns"), "+proxy=198.51.100.7-127.0.0.1", "+notcp", testName, "A")
	if !strings.Contains(out, testAnswer) {
		t.Fatalf("kdig +proxy: no answer:\n%s", out)
	}
	q := r.await(t, "the proxied query", isTap("CLIENT_QUERY", testName))
	resp := r.await(t, "the proxied response", isTap("CLIENT_RESPONSE", testName))
	for _, m := range []string{q, resp} {
		if dnstapField(m, "query_address") != "198.51.100.7" || dnstapField(m, "response_address") != "127.0.0.1" {
			t.Errorf("want the header's client 198.51.100.7 and destination 127.0.0.1:\n%s", m)
		}
	}
}

// TestDnstapQUIC: queries over DoQ and DoH3 (quic-go's listeners, handed to the loops)
// are logged too. DoH3 is DOH; DoQ is dnstap.proto's DOQ (7), which golang-dnstap
// v0.4.0's reader does not name, so it prints the number.
func TestDnstapQUIC(t *testing.T) {
	t.Parallel()
	client := buildQUICClient(t)
	sock := filepath.Join(t.TempDir(), "tap.sock")
	r := startDnstapReader(t, sock)
	pki := devpki.NewTestPKI(t, t.TempDir())
	data := quicData{
		Binds:   []quicBind{{"dot", "DoT"}, {"dot", "DoQ"}, {"doh", "DoH"}, {"doh", "DoH3"}},
		Chain:   pki.Leaf.ChainFile,
		Key:     pki.Leaf.KeyFile,
		Staple:  pki.WriteFile("staple.der", pki.Good()),
		Backend: StartTestBackend(t).Addr,
	}
	d := Start(t, quicConfig+fmt.Sprintf(`remote_logging:
  dnstap_loggers: [{name: tap, transport: unix, address: %q}]
query_rules:
  - selector: {type: All}
    action: {type: DnstapLog, identity: quic, logger_name: tap}
response_rules:
  - selector: {type: All}
    action: {type: DnstapLog, identity: quic, logger_name: tap}
`, sock), data)
	for _, c := range []struct{ proto, port, want string }{{"doq", "dot", "7"}, {"doh3", "doh", "DOH"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, client, "-proto", c.proto, "-addr", d.Addr(c.port),
			"-ca", pki.Root.CertFile, "-sni", "dns.test", "-name", testName).CombinedOutput()
		cancel()
		if err != nil || !strings.Contains(string(out), testAnswer) {
			t.Fatalf("quicclient %s: %v\n%s", c.proto, err, out)
		}
		q := r.await(t, c.proto+" query", isTap("CLIENT_QUERY", testName))
		resp := r.await(t, c.proto+" response", isTap("CLIENT_RESPONSE", testName))
		for _, m := range []string{q, resp} {
			if dnstapField(m, "socket_protocol") != c.want || dnstapField(m, "query_address") != "127.0.0.1" ||
				dnstapField(m, "identity") != `"quic"` {
				t.Errorf("%s: want socket_protocol %q, the client 127.0.0.1, identity quic:\n%s", c.proto, c.want, m)
			}
		}
		if !strings.Contains(resp, testAnswer) {
			t.Errorf("%s response without the answer:\n%s", c.proto, resp)
		}
	}
}
