package e2e

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/internal/devpki"
	quicgo "github.com/quic-go/quic-go"
	xocsp "golang.org/x/crypto/ocsp"
)

// quicConfig serves DoT and DoQ on one port number (TCP and UDP), DoH and DoH3 on
// another, all with the PKI's leaf and the staple in .Staple.
const quicConfig = `
general:
  event_loops: 2
acl: ["127.0.0.0/8"]
binds:
{{- range .Binds}}
  - listen_address: "127.0.0.1:{{port .Port}}"
    protocol: {{.Protocol}}
    tls:
      certificates: [{ certificate: "{{$.Chain}}", key: "{{$.Key}}" }]
      ocsp_response_files: ["{{$.Staple}}"]
{{- end}}
backends:
  - address: "{{.Backend}}"
    name: b1
    health_checks: { mode: up }
webserver:
  listen_addresses: ["127.0.0.1:{{port "admin"}}"]
`

type quicBind struct{ Port, Protocol string }

type quicData struct {
	Binds                       []quicBind
	Chain, Key, Staple, Backend string
}

// buildQUICClient builds internal/quic/quicclient, quic-go's client as a program.
func buildQUICClient(t *testing.T) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "quicclient")
	cmd := exec.Command("go", "build", "-o", bin, "./internal/quic/quicclient")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build quicclient: %v\n%s", err, out)
	}
	return bin
}

// The real binary serves DoQ and DoH3 beside DoT and DoH on the same port numbers, with
// the staple of the TCP binds; DoH announces DoH3 with Alt-Svc; the queries are counted
// with their own protocol label; SIGTERM ends it cleanly.
func TestQUICBinds(t *testing.T) {
	client := buildQUICClient(t)
	pki := devpki.NewTestPKI(t, t.TempDir())
	staple := pki.Good()
	data := quicData{
		Binds:   []quicBind{{"dot", "DoT"}, {"dot", "DoQ"}, {"doh", "DoH"}, {"doh", "DoH3"}},
		Chain:   pki.Leaf.ChainFile,
		Key:     pki.Leaf.KeyFile,
		Staple:  pki.WriteFile("staple.der", staple),
		Backend: StartTestBackend(t).Addr,
	}
	d := Start(t, quicConfig, data)
	ask := func(proto, port string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, client, "-proto", proto, "-addr", d.Addr(port),
			"-ca", pki.Root.CertFile, "-sni", "dns.test", "-name", testName).CombinedOutput()
		if err != nil {
			t.Fatalf("quicclient %s: %v\n%s", proto, err, out)
		}
		for _, want := range []string{"staple=good", "rcode=NOERROR", "id=0", testAnswer} {
			if !strings.Contains(string(out), want) {
				t.Fatalf("quicclient %s: output lacks %q:\n%s", proto, want, out)
			}
		}
	}
	ask("doq", "dot")
	ask("doh3", "doh")

	// DoT over TCP on the same port number staples the same response.
	conn, err := tls.Dial("tcp", d.Addr("dot"), &tls.Config{RootCAs: pki.RootPool(), ServerName: "dns.test", NextProtos: []string{"dot"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := conn.ConnectionState().OCSPResponse; string(got) != string(staple) {
		t.Fatal("DoT and DoQ staple differently")
	}
	conn.Close()

	// HTTP/2 DoH announces HTTP/3 on the DoH3 bind.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.RootPool(), ServerName: "dns.test"}, ForceAttemptHTTP2: true}}
	resp, err := hc.Get("https://" + d.Addr("doh") + "/dns-query?dns=AAABAAABAAAAAAAAA3d3dwhkbnNmcm9udAR0ZXN0AAABAAE")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, port, _ := net.SplitHostPort(d.Addr("doh"))
	if got, want := resp.Header.Get("Alt-Svc"), `h3=":`+port+`"`; !strings.HasPrefix(got, want) {
		t.Fatalf("Alt-Svc %q on %s, want %s…", got, resp.Proto, want)
	}

	for _, proto := range []string{"doq", "doh3"} {
		if v := d.Metric(`dnsfront_responses_total{proto="` + proto + `"}`); v < 1 {
			t.Fatalf("%s responses counted: %v", proto, v)
		}
	}
	if v := d.Metric(`dnsfront_quic_events_total{kind="accepted",listener="127.0.0.1:` + strconv.Itoa(d.Port("dot")) + `",proto="DoQ"}`); v < 1 {
		t.Fatalf("DoQ connections counted: %v", v)
	}
	// A reload with a newer staple in the file: a QUIC connection from before keeps
	// serving, the next handshake carries the new staple, as DoT's does.
	dial := func() *quicgo.Conn {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := quicgo.DialAddr(ctx, d.Addr("dot"), &tls.Config{RootCAs: pki.RootPool(), ServerName: "dns.test", NextProtos: []string{"doq"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	old := dial()
	defer old.CloseWithError(0, "")
	fresh := pki.Mint(pki.Leaf.Cert, devpki.Response{Status: xocsp.Good, ThisUpdate: time.Now()})
	pki.WriteFile("staple.der", fresh)
	reload(t, d)
	c := dial()
	if got := c.ConnectionState().TLS.OCSPResponse; string(got) != string(fresh) {
		t.Fatal("a DoQ handshake after the reload did not carry the new staple")
	}
	dot, err := tls.Dial("tcp", d.Addr("dot"), &tls.Config{RootCAs: pki.RootPool(), ServerName: "dns.test", NextProtos: []string{"dot"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := dot.ConnectionState().OCSPResponse; string(got) != string(fresh) {
		t.Fatal("DoT and DoQ staple differently after the reload")
	}
	dot.Close()
	c.CloseWithError(0, "")
	if _, err := old.OpenStream(); err != nil || old.Context().Err() != nil {
		t.Fatalf("the DoQ connection from before the reload is gone: %v", err)
	}

	d.Signal(syscall.SIGTERM)
	if code := d.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
}

// check-config refuses what quic-go cannot do instead of ignoring it.
func TestQUICCheckConfig(t *testing.T) {
	pki := devpki.NewTestPKI(t, t.TempDir())
	dir := t.TempDir()
	path := filepath.Join(dir, "dnsfront.yaml")
	WriteFile(t, path, []byte(`
binds:
  - listen_address: "127.0.0.1:8853"
    protocol: doq
    tls: { certificates: [{ certificate: "`+pki.Leaf.ChainFile+`", key: "`+pki.Leaf.KeyFile+`" }] }
    quic: { congestion_control_algorithm: cubic, internal_pipe_buffer_size: 1048576 }
backends:
  - address: "127.0.0.1:53"
`))
	out, code := RunCLI(t, "check-config", "--config", path)
	if code == 0 {
		t.Fatalf("check-config accepted cubic and internal_pipe_buffer_size:\n%s", out)
	}
	for _, want := range []string{"binds[0].quic.congestion_control_algorithm", "reno only", "binds[0].quic.internal_pipe_buffer_size"} {
		if !strings.Contains(out, want) {
			t.Fatalf("check-config output lacks %q:\n%s", want, out)
		}
	}
}

// A revoked staple is never stapled, on DoQ as on DoT: both serve the certificate bare.
func TestQUICRevokedStapleAsDoT(t *testing.T) {
	client := buildQUICClient(t)
	pki := devpki.NewTestPKI(t, t.TempDir())
	data := quicData{
		Binds:   []quicBind{{"dot", "DoT"}, {"dot", "DoQ"}},
		Chain:   pki.Leaf.ChainFile,
		Key:     pki.Leaf.KeyFile,
		Staple:  pki.WriteFile("revoked.der", pki.Revoked()),
		Backend: StartTestBackend(t).Addr,
	}
	d := Start(t, quicConfig, data)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, client, "-proto", "doq", "-addr", d.Addr("dot"),
		"-ca", pki.Root.CertFile, "-sni", "dns.test", "-name", testName).CombinedOutput()
	if err != nil {
		t.Fatalf("quicclient: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "staple=none") || !strings.Contains(string(out), testAnswer) {
		t.Fatalf("DoQ with a revoked staple file: want an answer and no staple:\n%s", out)
	}
	conn, err := tls.Dial("tcp", d.Addr("dot"), &tls.Config{RootCAs: pki.RootPool(), ServerName: "dns.test", NextProtos: []string{"dot"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := conn.ConnectionState().OCSPResponse; got != nil {
		t.Fatal("DoT stapled the revoked response")
	}
}
