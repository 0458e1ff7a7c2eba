package e2e

import (
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/dnsfront/dnsfront/internal/testutil"
	"github.com/dnsfront/dnsfront/ocsp"
)

// opensslPKI is a CA made with the openssl command line as a dnsdist operator makes one
// (its key identifiers are SHA-1 hashes of the keys), with leaves and `openssl ocsp`
// responses about them.
type opensslPKI struct {
	t       testing.TB
	openssl string
	dir     string
	ca, key string
	index   strings.Builder
}

func newOpenSSLPKI(t testing.TB) *opensslPKI {
	t.Helper()
	p := &opensslPKI{t: t, openssl: RequireTool(t, "openssl", "openssl"), dir: t.TempDir()}
	p.ca, p.key = filepath.Join(p.dir, "ca.pem"), filepath.Join(p.dir, "ca.key")
	p.run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", p.key,
		"-out", p.ca, "-subj", "/CN=Test dnsdist CA", "-days", "2")
	return p
}

func (p *opensslPKI) run(args ...string) {
	p.t.Helper()
	if out, err := exec.Command(p.openssl, args...).CombinedOutput(); err != nil {
		p.t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// leaf issues a certificate for name with the given hex serial and returns the paths of
// the leaf alone (no chain, as dnsdist configurations have it) and of its key.
func (p *opensslPKI) leaf(name, serial string) (cert, key string) {
	p.t.Helper()
	cert, key = filepath.Join(p.dir, name+".pem"), filepath.Join(p.dir, name+".key")
	csr, ext := filepath.Join(p.dir, name+".csr"), filepath.Join(p.dir, name+".ext")
	WriteFile(p.t, ext, []byte("subjectAltName=DNS:"+name+"\nbasicConstraints=CA:FALSE\n"+
		"subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"))
	p.run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
		"-out", csr, "-subj", "/CN="+name)
	p.run("x509", "-req", "-in", csr, "-CA", p.ca, "-CAkey", p.key, "-set_serial", "0x"+serial, "-days", "2",
		"-out", cert, "-extfile", ext)
	fmt.Fprintf(&p.index, "V\t%s\t\t%s\tunknown\t/CN=%s\n", time.Now().Add(48*time.Hour).UTC().Format("060102150405Z"),
		strings.ToUpper(serial), name)
	return cert, key
}

// respond makes the response a dnsdist operator's cron job makes: `openssl ocsp` asks
// with a SHA-1 CertID, the CA answers from its index. extra are options of the
// answering side: "-resp_no_certs" leaves the CA's certificate out, as a public CA's
// responder signing with the issuer key does.
func (p *opensslPKI) respond(cert, out string, extra ...string) string {
	p.t.Helper()
	WriteFile(p.t, filepath.Join(p.dir, "index.txt"), []byte(p.index.String()))
	req := out + ".req"
	p.run("ocsp", "-issuer", p.ca, "-cert", cert, "-reqout", req, "-no_nonce")
	p.run(append([]string{"ocsp", "-index", filepath.Join(p.dir, "index.txt"), "-rsigner", p.ca, "-rkey", p.key, "-CA", p.ca,
		"-reqin", req, "-respout", out, "-ndays", "1"}, extra...)...)
	return out
}

// TestDnsdistConfigStaples: a dnsdist-style configuration (certificate files holding the
// leaf alone, ocsp_response_files, no issuer: anywhere) staples its responses, made by
// `openssl ocsp` (SHA-1 CertID) or by `dnsfront ocsp generate` (SHA-256 CertID), with the
// status "signature not verified: issuer unknown" in the API, the CLI and the metrics and
// one warning naming issuer:. A response for another certificate on the same bind is not
// stapled. dnsdist 1.7.3 staples the same file: s_client sees the same response.
func TestDnsdistConfigStaples(t *testing.T) {
	t.Parallel()
	p := newOpenSSLPKI(t)
	aCert, aKey := p.leaf("dns.test", "1001")
	bCert, bKey := p.leaf("other.test", "1002")
	cCert, _ := p.leaf("third.test", "1003")
	gCert, gKey := p.leaf("gen.test", "1004")
	aResp := p.respond(aCert, filepath.Join(p.dir, "dns.test.ocsp"), "-resp_no_certs")
	wrongResp := p.respond(cCert, filepath.Join(p.dir, "third.test.ocsp"), "-resp_no_certs") // configured for other.test
	// openssl's default answer embeds the CA's certificate: dnsfront checks the signature
	// with it.
	eCert, eKey := p.leaf("emb.test", "1005")
	eResp := p.respond(eCert, filepath.Join(p.dir, "emb.test.ocsp"))
	gResp := filepath.Join(p.dir, "gen.test.ocsp")
	bin := Binary(t)
	if out, err := exec.Command(bin, "ocsp", "generate", "--cert", gCert, "--ca-cert", p.ca, "--ca-key", p.key,
		"--out", gResp, "--days", "1").CombinedOutput(); err != nil {
		t.Fatalf("dnsfront ocsp generate: %v\n%s", err, out)
	}

	be := StartTestBackend(t)
	data := DoT(be.Addr, DoTCert{Chain: aCert, Key: aKey}, DoTCert{Chain: bCert, Key: bKey}, DoTCert{Chain: gCert, Key: gKey},
		DoTCert{Chain: eCert, Key: eKey})
	data.OCSPFiles = []string{aResp, wrongResp, gResp, eResp}
	d := Start(t, DoTConfig, data)
	addr := d.Addr("dot")
	sclient := []string{"-CAfile", p.ca, "-alpn", "dot"}

	fromDnsfront := SClientStatus(t, addr, "dns.test", sclient...)
	fromDnsfront.RequireStaple(t, nil)
	if fromDnsfront.Serial.Text(16) != "1001" {
		t.Errorf("staple for serial %X, want 1001", fromDnsfront.Serial)
	}
	SClientStatus(t, addr, "gen.test", sclient...).RequireStaple(t, nil)
	SClientStatus(t, addr, "other.test", sclient...).RequireNoStaple(t)
	SClientStatus(t, addr, "emb.test", sclient...).RequireStaple(t, nil)

	byName := map[string]OCSPStatus{}
	var raw []ocsp.CertStatus
	getJSON(t, d.AdminURL()+"/api/v1/ocsp", &raw)
	for _, s := range d.OCSP() {
		byName[s.Name] = s
	}
	for _, c := range []string{aCert, gCert} {
		if s := byName[c]; s.Status != ocsp.StateUnverified || s.Source != ocsp.SourceFile {
			t.Errorf("GET /api/v1/ocsp %s: %+v", c, s)
		}
	}
	if s := byName[eCert]; s.Status != ocsp.StateGood || s.Source != ocsp.SourceFile {
		t.Errorf("GET /api/v1/ocsp %s (response embedding the CA): %+v", eCert, s)
	}
	if s := byName[bCert]; s.Status != ocsp.StateNone {
		t.Errorf("GET /api/v1/ocsp %s (response for another certificate): %+v", bCert, s)
	}
	for _, s := range raw {
		if s.Name == aCert && s.StatusDetail != "signature not verified: issuer unknown" {
			t.Errorf("status_detail %q", s.StatusDetail)
		}
	}

	out, err := exec.Command(bin, "ocsp", "status", "--admin", d.AdminURL()).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "signature not verified: issuer unknown") {
		t.Errorf("dnsfront ocsp status: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "ocsp", "inspect", aResp, "--cert", aCert).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "signature not verified: issuer unknown") {
		t.Errorf("dnsfront ocsp inspect: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "ocsp", "inspect", wrongResp, "--cert", bCert).CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "another certificate") {
		t.Errorf("dnsfront ocsp inspect of the wrong response: %v\n%s", err, out)
	}

	unverified := map[string]float64{}
	for series, v := range d.Metrics() {
		if strings.HasPrefix(series, "dnsfront_ocsp_staple_unverified{") {
			for _, c := range []string{aCert, bCert, gCert} {
				if strings.Contains(series, `cert="`+c+`"`) {
					unverified[c] = v
				}
			}
		}
	}
	if unverified[aCert] != 1 || unverified[gCert] != 1 || unverified[bCert] != 0 || len(unverified) != 3 {
		t.Errorf("dnsfront_ocsp_staple_unverified: %v", unverified)
	}

	// One warning per certificate stapled unverified, naming the fix; one for the wrong
	// file. A reload repeats neither.
	if code, body := d.Post("/api/v1/reload"); code != 200 {
		t.Fatalf("reload: %d %s", code, body)
	}
	SClientStatus(t, addr, "dns.test", sclient...).RequireStaple(t, nil)
	var warns []string
	for _, l := range strings.Split(d.Log(), "\n") {
		if strings.Contains(l, "signature is not verified") {
			warns = append(warns, l)
			if !strings.Contains(l, "issuer:") {
				t.Errorf("the warning does not say how to fix it: %s", l)
			}
		}
	}
	if len(warns) != 2 {
		t.Errorf("want one warning for each of 2 certificates, got %d:\n%s", len(warns), strings.Join(warns, "\n"))
	}

	// dnsdist, given the same files, staples the same response.
	dnsdist := startDnsdist(t, be.Addr, fmt.Sprintf(`addTLSLocal("%%s", %q, %q, {ocspResponses={%q}, provider="openssl"})`,
		aCert, aKey, aResp))
	fromDnsdist := SClientStatus(t, dnsdist, "dns.test", sclient...)
	fromDnsdist.RequireStaple(t, nil)
	if fromDnsdist.OCSP != fromDnsfront.OCSP {
		t.Errorf("dnsdist and dnsfront staple different responses:\ndnsdist:%s\ndnsfront:%s", fromDnsdist.OCSP, fromDnsfront.OCSP)
	}
}

// startDnsdist runs dnsdist 1.7.3 with a backend and the given listener line (its %s is
// the listen address, a free loopback port) until the test ends, and returns that address
// once it accepts connections.
func startDnsdist(t *testing.T, backend, listener string) string {
	t.Helper()
	bin := RequireTool(t, "dnsdist", "dnsdist")
	var addr string
	for attempt := 0; attempt < 3; attempt++ {
		dnsPort, err := FreePort("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		tlsPort, err := FreePort("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		addr = fmt.Sprintf("127.0.0.1:%d", tlsPort)
		conf := filepath.Join(t.TempDir(), "dnsdist.conf")
		WriteFile(t, conf, []byte(fmt.Sprintf("setLocal(\"127.0.0.1:%d\")\nnewServer({address=%q})\nsetSecurityPollSuffix(\"\")\n%s\n",
			dnsPort, backend, fmt.Sprintf(listener, addr))))
		logf, err := os.Create(filepath.Join(t.TempDir(), "dnsdist.log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "--supervised", "--disable-syslog", "-C", conf)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
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
			log, _ := os.ReadFile(logf.Name())
			t.Logf("dnsdist exited (attempt %d):\n%s", attempt+1, log)
			continue
		default:
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-exited
			logf.Close()
		})
		if !up {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("dnsdist does not accept on %s:\n%s", addr, log)
		}
		return addr
	}
	t.Fatal("dnsdist did not start")
	return ""
}

// issuerConfig is a dnsdist-style bind (leaf-only certificate, a response file) beside a
// second bind whose certificate names its issuer: the CA file the configuration names.
const issuerConfig = `
general:
  event_loops: 1
acl: ["127.0.0.0/8"]
binds:
  - listen_address: "127.0.0.1:{{port "dot"}}"
    protocol: DoT
    tls:
      certificates:
        - certificate: "{{.A}}"
          key: "{{.AKey}}"
      ocsp_response_files: ["{{.AResp}}"]
  - listen_address: "127.0.0.1:{{port "dot2"}}"
    protocol: DoT
    tls:
      certificates:
        - certificate: "{{.B}}"
          key: "{{.BKey}}"
          issuer: "{{.CA}}"
backends:
  - address: "{{.Backend}}"
    health_checks: { mode: up }
webserver:
  listen_addresses: ["127.0.0.1:{{port "admin"}}"]
`

// TestDnsdistConfigIssuerFromConfig: the issuer missing from a leaf-only certificate file
// is found in a CA file the configuration names elsewhere (another certificate's
// issuer:), and the response is then stapled fully verified, without a warning.
func TestDnsdistConfigIssuerFromConfig(t *testing.T) {
	t.Parallel()
	p := newOpenSSLPKI(t)
	aCert, aKey := p.leaf("dns.test", "2001")
	bCert, bKey := p.leaf("other.test", "2002")
	aResp := p.respond(aCert, filepath.Join(p.dir, "dns.test.ocsp"), "-resp_no_certs")
	be := StartTestBackend(t)
	d := Start(t, issuerConfig, map[string]string{"A": aCert, "AKey": aKey, "AResp": aResp, "B": bCert, "BKey": bKey,
		"CA": p.ca, "Backend": be.Addr})
	SClientStatus(t, d.Addr("dot"), "dns.test", "-CAfile", p.ca).RequireStaple(t, nil)
	s := d.WaitOCSP(aCert, 10*time.Second, func(s OCSPStatus) bool { return s.Status != "" })
	if s.Status != ocsp.StateGood || s.Source != ocsp.SourceFile {
		t.Errorf("GET /api/v1/ocsp %s: %+v", aCert, s)
	}
	if strings.Contains(d.Log(), "signature is not verified") {
		t.Errorf("warned although the issuer is in the configuration:\n%s", d.Log())
	}
}

// TestDnsdistConfigIssuerFromAIA: a leaf-only certificate file with a response file and no
// fetch source: the issuer comes from the leaf's caIssuers URL, in the background, and
// the file is then stapled verified; the first handshakes are stapled (unverified) while
// the issuer is fetched.
func TestDnsdistConfigIssuerFromAIA(t *testing.T) {
	t.Parallel()
	r := NewResponder(t)
	p := devpki.NewTestPKI(t, t.TempDir(), devpki.WithIssuerURL(r.IssuerURL())) // no OCSP URL
	r.SetIssuer(p.Issuer)
	r.Start()
	leafOnly := filepath.Join(p.Dir, "leaf-only.pem")
	WriteFile(t, leafOnly, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.Leaf.Cert.Raw}))
	be := StartTestBackend(t)
	data := DoT(be.Addr, DoTCert{Chain: leafOnly, Key: p.Leaf.KeyFile})
	data.OCSPFiles = []string{p.WriteFile("leaf.ocsp", p.Good())}
	d := Start(t, DoTConfig, data)
	SClientStatus(t, d.Addr("dot"), "dns.test", "-CAfile", p.Root.CertFile).RequireStaple(t, p.Leaf.Cert)
	d.WaitOCSP(leafOnly, 10*time.Second, func(s OCSPStatus) bool { return s.Status == ocsp.StateGood })
	SClientStatus(t, d.Addr("dot"), "dns.test", "-CAfile", p.Root.CertFile).RequireStaple(t, p.Leaf.Cert)
	if n := r.IssuerRequests(); n != 1 {
		t.Errorf("issuer fetched %d times, want once", n)
	}
	if strings.Contains(d.Log(), "signature is not verified") {
		t.Errorf("warned although caIssuers gave the issuer:\n%s", d.Log())
	}
}
