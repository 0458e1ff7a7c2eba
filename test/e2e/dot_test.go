package e2e

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/dnsfront/dnsfront/internal/testutil"
	"github.com/dnsfront/dnsfront/ocsp"
)

// dotServer is a dnsfront with one DoT bind serving a test PKI's leaf with a good
// staple from a file, in front of a backend that answers testName.
type dotServer struct {
	d      *Dnsfront
	pki    *devpki.TestPKI
	be     *Backend
	data   DoTData // the configuration served
	staple string  // the OCSP response file
}

// startDoTServer serves a default test PKI's ECDSA leaf (for devpki.Names); records go
// into the backend's zone besides testName.
func startDoTServer(t *testing.T, records ...string) *dotServer {
	t.Helper()
	return newDoTServer(t, devpki.NewTestPKI(t, t.TempDir()), records...)
}

// newDoTServer is startDoTServer with the PKI p.
func newDoTServer(t *testing.T, p *devpki.TestPKI, records ...string) *dotServer {
	t.Helper()
	staple := p.WriteFile("leaf.ocsp", p.Good())
	be := StartBackend(t, BackendOptions{Records: append([]string{testName + ". 60 IN A " + testAnswer}, records...)})
	data := DoT(be.Addr, CertOf(p.Leaf))
	data.OCSPFiles = []string{staple}
	return &dotServer{d: Start(t, DoTConfig, data), pki: p, be: be, data: data, staple: staple}
}

func (s *dotServer) dial(t *testing.T, cfg *tls.Config) *tls.Conn {
	t.Helper()
	return DialDoT(t, s.d.Addr("dot"), "dns.test", CertPool(t, s.pki.Root.Cert), cfg)
}

// TestDoTKdig: kdig +tls verifies the chain against the test root and the name dns.test
// and gets the backend's answer; the same query with a wrong name is refused by kdig,
// so the verification is real.
func TestDoTKdig(t *testing.T) {
	t.Parallel()
	s := startDoTServer(t)
	addr := s.d.Addr("dot")
	ca := s.pki.Root.CertFile
	// +tls-ocsp-stapling: kdig (GnuTLS) requires a valid staple for the served certificate.
	for _, v := range []string{"+tls", "+tls +tls-sni=dns.test", "+tls +tls-ocsp-stapling"} {
		args := append(strings.Fields(v), "+tls-ca="+ca, "+tls-hostname=dns.test", testName, "A")
		out := Kdig(t, addr, args...)
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(testName) + `\.\s+\d+\s+IN\s+A\s+` + regexp.QuoteMeta(testAnswer) + `$`).MatchString(out) {
			t.Errorf("kdig %s: no A %s in:\n%s", v, testAnswer, out)
		}
		if !strings.Contains(out, "TLS session (TLS1.3)") {
			t.Errorf("kdig %s: no TLS 1.3 session:\n%s", v, out)
		}
	}
	// The same with a name the certificate does not carry: kdig must refuse.
	out := kdigNoFail(t, addr, "+tls", "+tls-ca="+ca, "+tls-hostname=not-in-cert.test", testName)
	if strings.Contains(out, testAnswer) {
		t.Errorf("kdig accepted a certificate for the wrong name:\n%s", out)
	}
	if v := s.d.Metric(`dnsfront_queries_total{proto="dot"}`); v < 2 {
		t.Errorf(`dnsfront_queries_total{proto="dot"} = %v, want at least 2`, v)
	}
}

// TestDoTPipelined: 100 queries in one write on one connection; every answer comes back
// with its query's ID and the record for its name, in any order.
func TestDoTPipelined(t *testing.T) {
	t.Parallel()
	const n = 100
	var records []string
	for i := range n {
		records = append(records, fmt.Sprintf("q%d.dnsfront.test. 60 IN A 198.51.100.%d", i, i+1))
	}
	s := startDoTServer(t, records...)
	c := s.dial(t, nil)
	var batch []byte
	for i := range n {
		m := NewQuery(fmt.Sprintf("q%d.dnsfront.test", i), dns.TypeA)
		m.Id = uint16(1000 + i)
		batch = append(batch, FrameDoT(t, m)...)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(batch); err != nil {
		t.Fatal(err)
	}
	seen := map[uint16]bool{}
	for range n {
		r, err := ReadDoT(c)
		if err != nil {
			t.Fatalf("after %d answers: %v", len(seen), err)
		}
		i := int(r.Id) - 1000
		if i < 0 || i >= n || seen[r.Id] {
			t.Fatalf("answer with unexpected or repeated ID %d", r.Id)
		}
		seen[r.Id] = true
		want := fmt.Sprintf("198.51.100.%d", i+1)
		if len(r.Question) != 1 || r.Question[0].Name != fmt.Sprintf("q%d.dnsfront.test.", i) || !equalStrings(AnswerStrings(r), want) {
			t.Errorf("answer %d: question %v answer %v, want q%d.dnsfront.test. %s", r.Id, r.Question, AnswerStrings(r), i, want)
		}
	}
}

// recordCounter counts the TLS records a client writes, by parsing the record headers
// of everything written to the socket.
type recordCounter struct {
	net.Conn
	mu      sync.Mutex
	buf     []byte
	records int
}

func (r *recordCounter) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.buf = append(r.buf, p...)
	for len(r.buf) >= 5 {
		l := int(r.buf[3])<<8 | int(r.buf[4])
		if len(r.buf) < 5+l {
			break
		}
		r.records++
		r.buf = r.buf[5+l:]
	}
	r.mu.Unlock()
	return r.Conn.Write(p)
}

func (r *recordCounter) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.records
}

// TestDoTSplitRecords: queries written one byte per TLS record (the length prefix split
// too) are reassembled and answered, then a query whole in one record still works.
func TestDoTSplitRecords(t *testing.T) {
	t.Parallel()
	s := startDoTServer(t)
	raw, err := net.DialTimeout("tcp", s.d.Addr("dot"), queryTimeout)
	if err != nil {
		t.Fatal(err)
	}
	rc := &recordCounter{Conn: raw}
	c := tls.Client(rc, &tls.Config{ServerName: "dns.test", RootCAs: CertPool(t, s.pki.Root.Cert), NextProtos: []string{"dot"}})
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	for q := range 2 {
		m := NewQuery(testName, dns.TypeA)
		m.Id = uint16(7 + q)
		frame := FrameDoT(t, m)
		before := rc.count()
		for i := range frame {
			if _, err := c.Write(frame[i : i+1]); err != nil {
				t.Fatal(err)
			}
		}
		if got := rc.count() - before; got != len(frame) {
			t.Fatalf("the client wrote %d records for %d bytes; the test needs one record per byte", got, len(frame))
		}
		r, err := ReadDoT(c)
		if err != nil {
			t.Fatalf("query %d split into %d records: %v", q, len(frame), err)
		}
		if r.Id != m.Id || !equalStrings(AnswerStrings(r), testAnswer) {
			t.Errorf("split query %d: answer ID %d %v, want ID %d %s", q, r.Id, AnswerStrings(r), m.Id, testAnswer)
		}
	}
	if r := ExchangeDoT(t, c, NewQuery(testName, dns.TypeA)); !equalStrings(AnswerStrings(r), testAnswer) {
		t.Errorf("whole query after split ones: %v", AnswerStrings(r))
	}
}

// TestDoTKeyUpdate: openssl s_client sends a KeyUpdate asking for one back (the K
// command); the server answers with its own KeyUpdate and queries keep working.
// (OpenSSL 3 ignores the K command under -ign_eof, so stdin stays open instead.)
func TestDoTKeyUpdate(t *testing.T) {
	t.Parallel()
	s := startDoTServer(t)
	sc := StartSClient(t, "-connect", s.d.Addr("dot"), "-servername", "dns.test", "-tls1_3", "-msg", "-alpn", "dot")
	sc.WaitFor("Verify return code")
	answer := net.ParseIP(testAnswer)
	sc.Query(testName, 0x4b01, answer)
	sc.Write([]byte("K\n"))
	sc.WaitFor("KEYUPDATE")
	// The answer must be found after the KeyUpdate: count the address's occurrences.
	before := strings.Count(sc.Output(), string(answer.To4()))
	m := NewQuery(testName, dns.TypeA)
	m.Id = 0x4b02
	sc.Write(FrameDoT(t, m))
	if !testutil.Poll(15*time.Second, func() bool { return strings.Count(sc.Output(), string(answer.To4())) > before }) {
		t.Fatalf("no answer after KeyUpdate:\n%s", sc.Output())
	}
	out := sc.Finish()
	if !regexp.MustCompile(`(?m)^<<< TLS 1.3, Handshake \[length 0005\], KeyUpdate`).MatchString(out) {
		t.Errorf("the server did not answer the requested KeyUpdate with its own:\n%s", out)
	}
	if l := regexp.MustCompile(`(?m)^<<< .*Alert.*fatal.*$`).FindString(out); l != "" {
		t.Errorf("the server sent a fatal alert: %s\n%s", l, out)
	}
}

// closeObserver records what the server sends after the client's close_notify.
type closeObserver struct {
	net.Conn
	mu   sync.Mutex
	read int
}

func (o *closeObserver) Read(p []byte) (int, error) {
	n, err := o.Conn.Read(p)
	o.mu.Lock()
	o.read += n
	o.mu.Unlock()
	return n, err
}

func (o *closeObserver) bytesRead() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.read
}

// TestDoTCloseNotify: after an answered query the client sends close_notify; the server
// answers with its own close_notify and closes the connection cleanly (FIN, no reset) at
// once, and the connection gauge goes back to zero.
func TestDoTCloseNotify(t *testing.T) {
	t.Parallel()
	s := startDoTServer(t)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			raw, err := net.DialTimeout("tcp", s.d.Addr("dot"), queryTimeout)
			if err != nil {
				t.Fatal(err)
			}
			obs := &closeObserver{Conn: raw}
			c := tls.Client(obs, &tls.Config{ServerName: "dns.test", RootCAs: CertPool(t, s.pki.Root.Cert),
				MinVersion: v, MaxVersion: v, NextProtos: []string{"dot"}})
			defer c.Close()
			if r := ExchangeDoT(t, c, NewQuery(testName, dns.TypeA)); !equalStrings(AnswerStrings(r), testAnswer) {
				t.Fatalf("answer %v", AnswerStrings(r))
			}
			before := obs.bytesRead()
			start := time.Now()
			if err := c.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
			var buf [64]byte
			n, err := c.Read(buf[:])
			if n != 0 || !errors.Is(err, io.EOF) {
				t.Fatalf("after close_notify: read %d bytes, %v; want io.EOF", n, err)
			}
			if el := time.Since(start); el > 2*time.Second {
				t.Errorf("the server took %v to close after close_notify", el)
			}
			// The TCP side is closed too, without a reset.
			_ = raw.SetReadDeadline(time.Now().Add(2 * time.Second))
			if n, err := raw.Read(buf[:]); n != 0 || !errors.Is(err, io.EOF) {
				t.Errorf("TCP after close_notify: %d bytes, %v; want EOF (FIN, not a reset)", n, err)
			}
			// RFC 5246 §7.2.1 (the other party MUST respond with a close_notify of its own)
			// and RFC 8446 §6.1 (each party MUST send a close_notify before closing its
			// write side): the server's alert record must come before its FIN.
			if got := obs.bytesRead() - before; got == 0 {
				t.Errorf("%s: the server closed without sending its own close_notify (0 bytes after the client's)", tls.VersionName(v))
			}
		})
	}
	if v := s.d.WaitMetric("dnsfront_client_connections", 10*time.Second, func(v float64) bool { return v == 0 }); v != 0 {
		t.Errorf("dnsfront_client_connections = %v after every client closed, want 0", v)
	}
}

// TestDoTHandshakeStapleWithGo: Go's client sees the same staple through
// ConnectionState.OCSPResponse and it validates against the served leaf.
func TestDoTHandshakeStapleWithGo(t *testing.T) {
	t.Parallel()
	s := startDoTServer(t)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		c := s.dial(t, &tls.Config{MinVersion: v, MaxVersion: v})
		cs := c.ConnectionState()
		if cs.NegotiatedProtocol != "dot" {
			t.Errorf("%s: ALPN %q, want dot", tls.VersionName(v), cs.NegotiatedProtocol)
		}
		if _, err := ocsp.Validate(cs.OCSPResponse, cs.PeerCertificates[0], s.pki.Issuer.Cert, time.Now()); err != nil {
			t.Errorf("%s: staple: %v", tls.VersionName(v), err)
		}
	}
}

// TestDevConfigDoT serves examples/dev.yaml, the configuration of `make run` (on free
// ports, like TestDevConfig), and runs the README's DoT commands: s_client -status shows
// a successful staple for the served certificate (ECDSA and RSA), and kdig +tls answers
// 192.0.2.1.
func TestDevConfigDoT(t *testing.T) {
	t.Parallel()
	d, pki := startDevConfig(t)
	dot := d.Addr("dot")

	ecdsaChain, err := ocsp.ReadChainFile(filepath.Join(pki, "ecdsa.chain.pem"))
	if err != nil {
		t.Fatal(err)
	}
	rsaChain, err := ocsp.ReadChainFile(filepath.Join(pki, "rsa.chain.pem"))
	if err != nil {
		t.Fatal(err)
	}

	// The README's command, but for the port.
	h := SClientStatus(t, dot, "dns.test")
	if !strings.Contains(h.Out, OCSPOK) {
		t.Fatalf("openssl s_client -connect %s -servername dns.test -status: no %q:\n%s", dot, OCSPOK, h.Out)
	}
	h.RequireStaple(t, ecdsaChain[0])
	SClientStatus(t, dot, "dns.test", "-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256").RequireStaple(t, rsaChain[0])
	SClientStatus(t, dot, "dns.test", "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256").RequireStaple(t, rsaChain[0])

	out := Kdig(t, dot, "+tls", "www.dnsfront.test")
	if !regexp.MustCompile(`(?m)^www\.dnsfront\.test\.\s+\d+\s+IN\s+A\s+192\.0\.2\.1$`).MatchString(out) {
		t.Errorf("kdig @%s +tls www.dnsfront.test:\n%s", dot, out)
	}
	out = Kdig(t, dot, "+tls", "+tls-ca="+filepath.Join(pki, "ca.pem"), "+tls-hostname=dns.test", "www.dnsfront.test")
	if !strings.Contains(out, "192.0.2.1") {
		t.Errorf("kdig with verification against the dev PKI's ca.pem:\n%s", out)
	}
	st := d.OCSP()
	if len(st) < 2 {
		t.Fatalf("/api/v1/ocsp lists %d certificates, want the ECDSA and RSA ones at least: %+v", len(st), st)
	}
	for _, s := range st {
		if s.Status != ocsp.StateGood || (s.Source != ocsp.SourceGenerate && s.Source != ocsp.SourceCache) {
			t.Errorf("/api/v1/ocsp: %+v; want good from generate (or its cache)", s)
		}
	}
}
