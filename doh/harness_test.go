package doh

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// harness serves DoH on a loopback listener the way the event loop will:
// one Session per connection, bytes in, queries answered after Feed (in
// reverse order, as backends answer out of order), one write per pass.
type harness struct {
	t      testing.TB
	ln     net.Listener
	opts   *Options
	tls    *tls.Config
	caFile string

	mu      sync.Mutex
	stats   Stats
	errs    []error
	xff     []netip.Addr
	wg      sync.WaitGroup
	closing chan struct{}
	conns   map[net.Conn]struct{}
}

func newHarness(t testing.TB, opts *Options, useTLS bool) *harness {
	t.Helper()
	if opts == nil {
		opts = DefaultOptions()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, ln: ln, opts: opts, closing: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	if useTLS {
		h.tls, h.caFile = selfSigned(t)
	}
	h.wg.Add(1)
	go h.accept()
	t.Cleanup(h.close)
	return h
}

func (h *harness) addr() string { return h.ln.Addr().String() }

func (h *harness) port() string {
	_, p, _ := net.SplitHostPort(h.addr())
	return p
}

func (h *harness) url(pathAndQuery string) string {
	scheme := "http"
	if h.tls != nil {
		scheme = "https"
	}
	return scheme + "://" + h.addr() + pathAndQuery
}

func (h *harness) close() {
	close(h.closing)
	h.ln.Close()
	h.mu.Lock()
	for c := range h.conns {
		c.Close()
	}
	h.mu.Unlock()
	h.wg.Wait()
}

func (h *harness) snapshot() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stats
}

func (h *harness) accept() {
	defer h.wg.Done()
	for {
		c, err := h.ln.Accept()
		if err != nil {
			return
		}
		h.mu.Lock()
		h.conns[c] = struct{}{}
		h.mu.Unlock()
		h.wg.Add(1)
		go h.serve(c)
	}
}

func (h *harness) serve(c net.Conn) {
	defer h.wg.Done()
	defer func() {
		c.Close()
		h.mu.Lock()
		delete(h.conns, c)
		h.mu.Unlock()
	}()
	proto := Detect
	if h.tls != nil {
		tc := tls.Server(c, h.tls)
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err != nil {
			return
		}
		tc.SetDeadline(time.Time{})
		if tc.ConnectionState().NegotiatedProtocol == "h2" {
			proto = HTTP2
		} else {
			proto = HTTP1
		}
		c = tc
	}
	s := NewSession(h.opts, proto, time.Now)
	defer func() {
		h.mu.Lock()
		s.DrainStats(&h.stats)
		h.mu.Unlock()
	}()
	var out []byte
	buf := make([]byte, 16<<10)
	var queries []Query
	emit := func(q Query) { queries = append(queries, q) }
	flush := func() bool {
		out = s.AppendOutput(out[:0])
		if len(out) > 0 {
			if _, err := c.Write(out); err != nil {
				return false
			}
		}
		return !s.Closed()
	}
	if !flush() {
		return
	}
	for {
		c.SetReadDeadline(s.Deadline())
		n, err := c.Read(buf)
		if n > 0 {
			queries = queries[:0]
			ferr := s.Feed(buf[:n], emit)
			for i := len(queries) - 1; i >= 0; i-- {
				h.answer(s, queries[i])
			}
			if ferr != nil {
				h.mu.Lock()
				h.errs = append(h.errs, ferr)
				h.mu.Unlock()
			}
			h.mu.Lock()
			s.DrainStats(&h.stats)
			h.mu.Unlock()
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && s.Expire() {
				flush()
			}
			return
		}
		if !flush() {
			return
		}
	}
}

// answer plays the engine and the backend: it parses the query with
// miekg/dns and builds the answer the name asks for.
func (h *harness) answer(s *Session, q Query) {
	if q.ForwardedFor.IsValid() {
		h.mu.Lock()
		h.xff = append(h.xff, q.ForwardedFor)
		h.mu.Unlock()
	}
	status, msg := answerFor(q.Msg)
	if status != 200 {
		s.Fail(q.ID, status)
		return
	}
	s.Respond(q.ID, msg)
}

func answerFor(query []byte) (int, []byte) {
	var m dns.Msg
	if err := m.Unpack(query); err != nil || len(m.Question) != 1 {
		return 502, nil
	}
	r := new(dns.Msg)
	r.SetReply(&m)
	qn := m.Question[0].Name
	switch qn {
	case "fail.example.":
		return 502, nil
	case "timeout.example.":
		return 504, nil
	case "nx.example.":
		r.Rcode = dns.RcodeNameError
		r.Ns = append(r.Ns, &dns.SOA{Hdr: dns.RR_Header{Name: "example.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 3600},
			Ns: "ns.example.", Mbox: "admin.example.", Serial: 1, Refresh: 7200, Retry: 900, Expire: 86400, Minttl: 120})
	case "big.example.":
		for i := range 40 {
			txt := make([]byte, 250)
			for j := range txt {
				txt[j] = byte('a' + (i+j)%26)
			}
			r.Answer = append(r.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: qn, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 90}, Txt: []string{string(txt)}})
		}
	default:
		switch m.Question[0].Qtype {
		case dns.TypeA:
			ip := net.IPv4(192, 0, 2, 1)
			if qn == "localhost.test." {
				ip = net.IPv4(127, 0, 0, 1)
			}
			r.Answer = append(r.Answer,
				&dns.A{Hdr: dns.RR_Header{Name: qn, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: ip},
				&dns.A{Hdr: dns.RR_Header{Name: qn, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 2)})
			if qn == "localhost.test." {
				r.Answer = r.Answer[:1]
			}
		default:
			r.Ns = append(r.Ns, &dns.SOA{Hdr: dns.RR_Header{Name: "example.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 3600},
				Ns: "ns.example.", Mbox: "admin.example.", Serial: 1, Refresh: 7200, Retry: 900, Expire: 86400, Minttl: 120})
		}
	}
	b, err := r.Pack()
	if err != nil {
		return 502, nil
	}
	return 200, b
}

// selfSigned makes a certificate for 127.0.0.1 and writes it where curl can
// trust it.
func selfSigned(t testing.TB) (*tls.Config, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "doh test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}, ca
}

func (h *harness) certPool() *x509.CertPool {
	p := x509.NewCertPool()
	b, err := os.ReadFile(h.caFile)
	if err != nil {
		h.t.Fatal(err)
	}
	p.AppendCertsFromPEM(b)
	return p
}

// packQuery builds a query with ID 0 as RFC 8484 asks.
func packQuery(t testing.TB, name string, qtype uint16) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.Id = 0
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
