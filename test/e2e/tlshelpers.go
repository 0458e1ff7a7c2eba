package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsfront/dnsfront/internal/testutil"
)

// OCSPOK is the line `openssl s_client -status` prints for a stapled response.
const OCSPOK = "OCSP Response Status: successful (0x0)"

// OCSPNone is what `openssl s_client -status` prints when the server staples nothing.
const OCSPNone = "OCSP response: no response sent"

// sclientTimeout bounds one openssl s_client process.
const sclientTimeout = 15 * time.Second

// SClient is a running `openssl s_client` whose stdin stays open until Finish, so that a
// test can send DoT queries through it, wait for TLS 1.3 tickets and send KeyUpdate.
type SClient struct {
	t     testing.TB
	cmd   *exec.Cmd
	stdin io.WriteCloser
	mu    sync.Mutex
	out   bytes.Buffer
	done  chan struct{}
}

type sclientWriter struct{ s *SClient }

func (w sclientWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.out.Write(p)
}

// StartSClient starts `openssl s_client` with args; stdout and stderr are collected
// together. The process is killed in t.Cleanup if it is still running.
func StartSClient(t testing.TB, args ...string) *SClient {
	t.Helper()
	RequireTool(t, "openssl", "openssl")
	ctx, cancel := context.WithTimeout(context.Background(), sclientTimeout)
	s := &SClient{t: t, done: make(chan struct{})}
	s.cmd = exec.CommandContext(ctx, "openssl", append([]string{"s_client"}, args...)...)
	s.cmd.Stdout = sclientWriter{s}
	s.cmd.Stderr = sclientWriter{s}
	var err error
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() { _ = s.cmd.Wait(); cancel(); close(s.done) }()
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	return s
}

// Output returns what s_client printed so far.
func (s *SClient) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

// WaitFor waits up to 10 s for what to appear in the output; it fails the test if
// s_client exits or the time passes without it.
func (s *SClient) WaitFor(what string) {
	s.t.Helper()
	s.waitBytes([]byte(what))
}

func (s *SClient) waitBytes(what []byte) {
	s.t.Helper()
	has := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return bytes.Contains(s.out.Bytes(), what)
	}
	exited := false
	testutil.Poll(sclientTimeout, func() bool {
		select {
		case <-s.done:
			exited = true
		default:
		}
		return exited || has()
	})
	switch {
	case has():
	case exited:
		s.t.Fatalf("s_client exited without %q:\n%s", what, s.Output())
	default:
		s.t.Fatalf("no %q from s_client within %v:\n%s", what, sclientTimeout, s.Output())
	}
}

// Write sends raw bytes to s_client's stdin (s_client sends them as application data,
// except command lines such as "K\n" at the start of a read).
func (s *SClient) Write(p []byte) {
	s.t.Helper()
	if _, err := s.stdin.Write(p); err != nil {
		s.t.Fatalf("s_client stdin: %v", err)
	}
}

// Query sends one DoT-framed query for name/A through s_client and waits until the
// answer's bytes (the A record's address want) show up in its output.
func (s *SClient) Query(name string, id uint16, want net.IP) {
	s.t.Helper()
	m := NewQuery(name, dns.TypeA)
	m.Id = id
	s.Write(FrameDoT(s.t, m))
	// The answer's last RR ends with its 4-byte rdata: the address.
	s.waitBytes(want.To4())
}

// Finish closes stdin (s_client then sends close_notify and exits) and returns the
// whole output.
func (s *SClient) Finish() string {
	s.t.Helper()
	s.stdin.Close()
	select {
	case <-s.done:
	case <-time.After(sclientTimeout):
		s.t.Fatalf("s_client did not exit:\n%s", s.Output())
	}
	return s.Output()
}

// SClientStatus runs one `openssl s_client -connect addr -servername sni -status` with
// extra args and stdin at EOF, the README's command, and returns its parsed output.
func SClientStatus(t testing.TB, addr, sni string, args ...string) *Handshake {
	t.Helper()
	all := append([]string{"-connect", addr, "-status"}, args...)
	if sni != "" {
		all = append(all, "-servername", sni)
	}
	s := StartSClient(t, all...)
	s.WaitFor("Verify return code")
	return ParseSClient(t, s.Finish())
}

// Handshake is what s_client printed about one handshake.
type Handshake struct {
	Out      string
	Leaf     *x509.Certificate // the server certificate (nil if none was printed)
	OCSP     string            // the OCSP section, "" when nothing was stapled
	Stapled  bool              // OCSPOK present
	NoStaple bool              // OCSPNone present
	Serial   *big.Int          // the serial in the OCSP section's CertID
	Reused   bool
	Protocol string // TLSv1.2, TLSv1.3
}

var (
	ocspSerialRE = regexp.MustCompile(`Serial Number: ([0-9A-Fa-f]+)`)
	protocolRE   = regexp.MustCompile(`(?m)^\s*Protocol\s*: (\S+)`)
	certStatusRE = regexp.MustCompile(`Cert Status: (\S+)`)
)

// ParseSClient extracts the leaf certificate and the OCSP section from s_client output.
func ParseSClient(t testing.TB, out string) *Handshake {
	t.Helper()
	h := &Handshake{Out: out}
	h.NoStaple = strings.Contains(out, OCSPNone)
	if i := strings.Index(out, "OCSP response: \n"); i >= 0 {
		rest := out[i:]
		const sep = "======================================"
		if a := strings.Index(rest, sep); a >= 0 {
			if b := strings.Index(rest[a+len(sep):], sep); b >= 0 {
				h.OCSP = rest[a+len(sep) : a+len(sep)+b]
			}
		}
	}
	h.Stapled = strings.Contains(h.OCSP, OCSPOK)
	if m := ocspSerialRE.FindStringSubmatch(h.OCSP); m != nil {
		h.Serial, _ = new(big.Int).SetString(m[1], 16)
	}
	if i := strings.Index(out, "Server certificate\n"); i >= 0 {
		if blk, _ := pem.Decode([]byte(out[i+len("Server certificate\n"):])); blk != nil {
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				t.Fatalf("s_client printed a certificate that does not parse: %v", err)
			}
			h.Leaf = c
		}
	}
	h.Reused = strings.Contains(out, "Reused, ")
	if m := protocolRE.FindStringSubmatch(out); m != nil {
		h.Protocol = m[1]
	}
	return h
}

// CertStatus is the "Cert Status:" of the stapled response ("good"), or "".
func (h *Handshake) CertStatus() string {
	if m := certStatusRE.FindStringSubmatch(h.OCSP); m != nil {
		return m[1]
	}
	return ""
}

// RequireStaple fails the test unless the handshake stapled a successful, good response
// whose CertID serial is the served certificate's, and that certificate is want (when
// want is not nil).
func (h *Handshake) RequireStaple(t testing.TB, want *x509.Certificate) {
	t.Helper()
	if h.Leaf == nil {
		t.Fatalf("s_client printed no server certificate:\n%s", h.Out)
	}
	if want != nil && !h.Leaf.Equal(want) {
		t.Errorf("server certificate has serial %X (%s), want %X (%s)", h.Leaf.SerialNumber, h.Leaf.PublicKeyAlgorithm,
			want.SerialNumber, want.PublicKeyAlgorithm)
	}
	if !h.Stapled {
		t.Fatalf("no %q in s_client's output:\n%s", OCSPOK, h.Out)
	}
	if h.Serial == nil || h.Serial.Cmp(h.Leaf.SerialNumber) != 0 {
		t.Errorf("staple is for serial %X, the served certificate has %X", h.Serial, h.Leaf.SerialNumber)
	}
	if st := h.CertStatus(); st != "good" {
		t.Errorf("staple Cert Status %q, want good", st)
	}
}

// RequireNoStaple fails the test unless the server sent no OCSP response.
func (h *Handshake) RequireNoStaple(t testing.TB) {
	t.Helper()
	if h.Leaf == nil {
		t.Fatalf("no handshake (no server certificate printed):\n%s", h.Out)
	}
	if !h.NoStaple || h.OCSP != "" {
		t.Fatalf("want %q, got:\n%s", OCSPNone, h.Out)
	}
}

// FrameDoT packs m with its two-byte length prefix (RFC 7858 §3.3, RFC 1035 §4.2.2).
func FrameDoT(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	wire, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 2+len(wire))
	binary.BigEndian.PutUint16(out, uint16(len(wire)))
	copy(out[2:], wire)
	return out
}

// ReadDoT reads one length-prefixed DNS message from r.
func ReadDoT(r io.Reader) (*dns.Msg, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return nil, fmt.Errorf("unpack answer: %w", err)
	}
	return m, nil
}

// DialDoT opens a verified DoT connection to addr: the chain must lead to a certificate
// in roots and name sni; ALPN offers dot. The connection closes in t.Cleanup.
func DialDoT(t testing.TB, addr, sni string, roots *x509.CertPool, cfg *tls.Config) *tls.Conn {
	t.Helper()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	cfg = cfg.Clone()
	cfg.ServerName, cfg.RootCAs = sni, roots
	if cfg.NextProtos == nil {
		cfg.NextProtos = []string{"dot"}
	}
	d := &net.Dialer{Timeout: queryTimeout}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("DoT dial %s (sni %s): %v", addr, sni, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ExchangeDoT sends m on c and reads one answer, within the query timeout.
func ExchangeDoT(t testing.TB, c *tls.Conn, m *dns.Msg) *dns.Msg {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(queryTimeout))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(FrameDoT(t, m)); err != nil {
		t.Fatalf("DoT write: %v", err)
	}
	r, err := ReadDoT(c)
	if err != nil {
		t.Fatalf("DoT read: %v", err)
	}
	if r.Id != m.Id {
		t.Fatalf("DoT answer ID %d, query ID %d", r.Id, m.Id)
	}
	return r
}

// CertPool is a pool of the given certificates.
func CertPool(t testing.TB, certs ...*x509.Certificate) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// equalStrings reports whether got is exactly want, in order.
func equalStrings(got []string, want ...string) bool {
	return slices.Equal(got, want)
}
