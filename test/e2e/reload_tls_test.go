package e2e

import (
	"crypto/rand"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/dnsfront/dnsfront/internal/testutil"
	"github.com/dnsfront/dnsfront/ocsp"
)

var (
	ocspCLIOnce sync.Once
	ocspCLI     bool
)

// hasOCSPCLI reports whether `dnsfront ocsp` is wired into the CLI.
func hasOCSPCLI(t testing.TB) bool {
	t.Helper()
	ocspCLIOnce.Do(func() {
		out, _ := RunCLI(t, "--help")
		ocspCLI = strings.Contains(out, "\n  ocsp ")
	})
	return ocspCLI
}

// mintFile writes a good response for the first certificate of chainFile, signed by the
// CA, valid 7 days, atomically: with `dnsfront ocsp generate` (the cron recipe of
// docs/operations.md) when the CLI has it, else with ocsp.GenerateFiles, the code behind it.
func mintFile(t testing.TB, chainFile string, ca *devpki.Authority, out string) {
	t.Helper()
	if hasOCSPCLI(t) {
		res, code := RunCLI(t, "ocsp", "generate", "--cert", chainFile, "--ca-cert", ca.CertFile, "--ca-key", ca.KeyFile,
			"--out", out, "--days", "7", "--minutes", "0")
		if code != 0 {
			t.Fatalf("dnsfront ocsp generate: exit %d\n%s", code, res)
		}
		return
	}
	t.Log("`dnsfront ocsp` is not wired into the CLI (cmd/dnsfront/commands.go): minting with ocsp.GenerateFiles")
	now := time.Now()
	if _, err := ocsp.GenerateFiles(chainFile, ca.CertFile, ca.KeyFile, out, now, now.Add(7*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
}

// TestReloadNewCertificate is the seed's reload flow: the certificate is re-issued in
// place (new serial) with its response minted into the same file, kill -HUP, and the
// next handshake serves the new certificate with a staple for the new serial, while a
// connection established before the reload keeps answering.
func TestReloadNewCertificate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := devpki.NewTestPKI(t, dir)
	old := p.Leaf
	staple := filepath.Join(dir, "leaf.ocsp")
	mintFile(t, old.ChainFile, p.Issuer, staple)
	be := StartTestBackend(t)
	data := DoT(be.Addr, CertOf(old))
	data.OCSPFiles = []string{staple}
	d := Start(t, DoTConfig, data)
	addr := d.Addr("dot")
	roots := CertPool(t, p.Root.Cert)

	SClientStatus(t, addr, "dns.test").RequireStaple(t, old.Cert)
	before := DialDoT(t, addr, "dns.test", roots, nil)
	ExchangeDoT(t, before, NewQuery(testName, dns.TypeA))

	// The same file names: leaf.chain.pem, leaf.key, leaf.ocsp.
	cur := p.IssueLeaf("leaf")
	if cur.ChainFile != old.ChainFile || cur.Cert.SerialNumber.Cmp(old.Cert.SerialNumber) == 0 {
		t.Fatalf("re-issue did not replace %s with a new serial", old.ChainFile)
	}
	mintFile(t, cur.ChainFile, p.Issuer, staple)
	reload(t, d) // kill -HUP

	h := SClientStatus(t, addr, "dns.test")
	h.RequireStaple(t, cur.Cert)
	if h.Serial != nil && h.Serial.Cmp(old.Cert.SerialNumber) == 0 {
		t.Errorf("after reload the staple is still for the old serial %X", old.Cert.SerialNumber)
	}
	// A Go client agrees, through a verified handshake.
	after := DialDoT(t, addr, "dns.test", roots, nil)
	if got := after.ConnectionState().PeerCertificates[0]; !got.Equal(cur.Cert) {
		t.Errorf("new connection got serial %X, want %X", got.SerialNumber, cur.Cert.SerialNumber)
	}
	if _, err := ocsp.Validate(after.ConnectionState().OCSPResponse, cur.Cert, p.Issuer.Cert, time.Now()); err != nil {
		t.Errorf("new connection's staple: %v", err)
	}
	ExchangeDoT(t, after, NewQuery(testName, dns.TypeA))

	// The connection from before the reload still answers, on its old certificate.
	for i := range 3 {
		m := NewQuery(testName, dns.TypeA)
		m.Id = uint16(100 + i)
		if r := ExchangeDoT(t, before, m); !equalStrings(AnswerStrings(r), testAnswer) {
			t.Errorf("old connection after reload: %v", AnswerStrings(r))
		}
	}
	if got := before.ConnectionState().PeerCertificates[0]; !got.Equal(old.Cert) {
		t.Errorf("the old connection's certificate changed")
	}
}

// TestReloadRejectedKeepsServing: a reload whose new certificate does not match its key
// is rejected with the file named; the old certificate and its staple keep being served.
func TestReloadRejectedKeepsServing(t *testing.T) {
	t.Parallel()
	s := startDoTServer(t)
	d, p, addr := s.d, s.pki, s.d.Addr("dot")

	other := p.IssueLeaf("other")
	bad := DoTCert{Chain: other.ChainFile, Key: p.Leaf.KeyFile}
	badData := s.data
	badData.Certs = []DoTCert{bad}
	d.Rewrite(DoTConfig, badData)
	mark := len(d.Log())
	d.Signal(syscall.SIGHUP)
	if !d.WaitLog("reload rejected", mark, 10*time.Second) {
		t.Fatalf("a certificate that does not match its key was not rejected:\n%s", d.Log()[mark:])
	}
	if l := d.Log()[mark:]; !strings.Contains(l, filepath.Base(other.ChainFile)) {
		t.Errorf("the rejection does not name %s:\n%s", other.ChainFile, l)
	}
	SClientStatus(t, addr, "dns.test").RequireStaple(t, p.Leaf.Cert)
	c := DialDoT(t, addr, "dns.test", CertPool(t, p.Root.Cert), nil)
	ExchangeDoT(t, c, NewQuery(testName, dns.TypeA))
}

// TestReloadRevokedFileStopsStaple: the operator's cron job fetches a response saying the
// certificate is now revoked and reloads. The server must stop stapling the older good
// response for that certificate (issue 4: a revoked certificate is not stapled, and status
// says revoked), not keep serving what the CA has contradicted.
func TestReloadRevokedFileStopsStaple(t *testing.T) {
	t.Parallel()
	s := startDoTServer(t)
	d, p, addr := s.d, s.pki, s.d.Addr("dot")
	SClientStatus(t, addr, "dns.test").RequireStaple(t, p.Leaf.Cert)

	// A revoked response newer than the good one (thisUpdate now).
	WriteFile(t, s.staple, p.Mint(p.Leaf.Cert, devpki.Response{Status: ocsp.StatusRevoked, Reason: 1,
		ThisUpdate: time.Now(), RevokedAt: time.Now().Add(-time.Minute)}))
	reload(t, d)
	if l := d.Log(); !strings.Contains(l, "revoked") {
		t.Errorf("the revoked response file was not reported")
	}
	h := SClientStatus(t, addr, "dns.test")
	if h.Stapled {
		t.Errorf("after a reload with a revoked response the server still staples the older good one (Cert Status %s)", h.CertStatus())
	}
	if st := d.OCSP(); len(st) != 1 || st[0].Status != ocsp.StateRevoked {
		t.Errorf("/api/v1/ocsp = %+v, want status revoked", st)
	}
}

// TestResumptionAcrossReload: a session saved by openssl s_client before a SIGHUP
// resumes after it (the ticket keys survive reloads), over TLS 1.2 and 1.3.
func TestResumptionAcrossReload(t *testing.T) {
	t.Parallel()
	s := startDoTServer(t)
	addr := s.d.Addr("dot")
	answer := net.ParseIP(testAnswer)
	for i, v := range []string{"-tls1_2", "-tls1_3"} {
		sess := filepath.Join(t.TempDir(), "sess.pem")
		first := StartSClient(t, "-connect", addr, "-servername", "dns.test", v, "-sess_out", sess, "-alpn", "dot")
		first.WaitFor("Verify return code")
		// A query and its answer: TLS 1.3 tickets arrive after the handshake, before it.
		first.Query(testName, uint16(10+i), answer)
		if out := first.Finish(); !strings.Contains(out, "New, ") {
			t.Fatalf("%s: first connection not new:\n%s", v, out)
		}
		// A reload with a fresh staple: a new snapshot for every loop.
		WriteFile(t, s.staple, s.pki.Mint(s.pki.Leaf.Cert, devpki.Response{Status: ocsp.StatusGood, ThisUpdate: time.Now()}))
		reload(t, s.d)

		second := StartSClient(t, "-connect", addr, "-servername", "dns.test", v, "-sess_in", sess, "-alpn", "dot", "-status")
		second.WaitFor("Verify return code")
		second.Query(testName, uint16(20+i), answer)
		out := second.Finish()
		if !strings.Contains(out, "Reused, ") {
			t.Errorf("%s: session not resumed across a reload:\n%s", v, out)
		}
	}
	// The Go client resumes across a reload too, with one shared session cache.
	cfg := &tls.Config{ClientSessionCache: tls.NewLRUClientSessionCache(4)}
	c := s.dial(t, cfg)
	ExchangeDoT(t, c, NewQuery(testName, dns.TypeA)) // reads the TLS 1.3 tickets
	c.Close()
	reload(t, s.d)
	c = s.dial(t, cfg)
	if !c.ConnectionState().DidResume {
		t.Error("Go client: no resumption across a reload")
	}
}

// TestResumptionSharedTicketKeyFile: two dnsfront processes (one after the other, as
// instances behind one address would be) reading the same ticket_key_file resume each
// other's sessions; after the file gets a new active key and a SIGHUP, the old sessions
// still resume (the old key still decrypts).
func TestResumptionSharedTicketKeyFile(t *testing.T) {
	t.Parallel()
	p := devpki.NewTestPKI(t, t.TempDir())
	keyFile := filepath.Join(p.Dir, "tickets.key")
	WriteFile(t, keyFile, randomBytes(t, 80))
	be := StartTestBackend(t)
	data := DoT(be.Addr, CertOf(p.Leaf))
	data.TicketKeyFile = keyFile
	answer := net.ParseIP(testAnswer)

	d1 := Start(t, DoTConfig, data)
	sess := filepath.Join(t.TempDir(), "sess.pem")
	first := StartSClient(t, "-connect", d1.Addr("dot"), "-servername", "dns.test", "-tls1_3", "-sess_out", sess)
	first.WaitFor("Verify return code")
	first.Query(testName, 1, answer)
	if out := first.Finish(); !strings.Contains(out, "New, ") {
		t.Fatalf("first connection not new:\n%s", out)
	}
	d1.Stop()

	d2 := Start(t, DoTConfig, data)
	resumed := func(what string) {
		t.Helper()
		s := StartSClient(t, "-connect", d2.Addr("dot"), "-servername", "dns.test", "-tls1_3", "-sess_in", sess)
		s.WaitFor("Verify return code")
		s.Query(testName, 2, answer)
		if out := s.Finish(); !strings.Contains(out, "Reused, ") {
			t.Errorf("%s: not resumed:\n%s", what, out)
		}
	}
	resumed("another process with the same ticket_key_file")

	// A new active key appended at the end (the file's last key encrypts), then SIGHUP.
	f, err := os.OpenFile(keyFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(randomBytes(t, 80)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	reload(t, d2)
	resumed("after a new key was appended and reloaded")
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReloadNeverDropsStaple: handshakes run back to back while the server reloads ten
// times; every one of them is stapled, for a certificate stapled from a file and for one
// stapled by fetching.
func TestReloadNeverDropsStaple(t *testing.T) {
	t.Parallel()
	r := NewResponder(t)
	p := devpki.NewTestPKI(t, t.TempDir(), devpki.WithNames("file.test"))
	fetched := p.IssueLeaf("fetched", devpki.WithNames("fetch.test"), devpki.WithOCSPURL(r.URL))
	r.SetIssuer(p.Issuer)
	r.Start()
	be := StartTestBackend(t)
	fc := CertOf(fetched)
	fc.Fetch = true
	data := DoT(be.Addr, CertOf(p.Leaf), fc)
	data.OCSPFiles = []string{p.WriteFile("leaf.ocsp", p.Good())}
	d := Start(t, DoTConfig, data)
	d.WaitOCSP(fetched.ChainFile, stapleWait, stapleGood)
	addr := d.Addr("dot")
	roots := CertPool(t, p.Root.Cert)

	stop := make(chan struct{})
	var handshakes atomic.Int64
	type result struct{ total, bare int }
	results := make(chan result, 2)
	for _, name := range []string{"file.test", "fetch.test"} {
		go func() {
			var res result
			defer func() { results <- res }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr,
					&tls.Config{ServerName: name, RootCAs: roots, NextProtos: []string{"dot"}})
				if err != nil {
					t.Errorf("%s: handshake during reloads: %v", name, err)
					return
				}
				res.total++
				handshakes.Add(1)
				if len(c.ConnectionState().OCSPResponse) == 0 {
					res.bare++
				}
				c.Close()
			}
		}()
	}
	for range 10 {
		reload(t, d)
		// Handshakes of both names between two reloads, whatever the machine's load.
		n := handshakes.Load()
		testutil.Eventually(t, 15*time.Second, "handshakes between reloads", func() bool { return handshakes.Load() >= n+2 })
	}
	close(stop)
	for range 2 {
		res := <-results
		if res.total == 0 || res.bare != 0 {
			t.Errorf("%d of %d handshakes during reloads had no staple", res.bare, res.total)
		}
	}
}
