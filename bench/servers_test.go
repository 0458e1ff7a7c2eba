package bench

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/dnsfront/dnsfront/internal/testutil"
	"github.com/dnsfront/dnsfront/ocsp"
)

// testPKI is the module's test PKI (devpki.TestPKI) seen as these tests need it: a
// leaf for dns.test and 127.0.0.1 (serial 0x1a2b) and a second leaf from the same CA
// (0x3c4d), with good OCSP responses for both.
type testPKI struct {
	caFile      string
	leaf, other tls.Certificate
	leafStaple  []byte
	otherStaple []byte
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	names := devpki.WithNames("dns.test", "127.0.0.1")
	p := devpki.NewTestPKI(t, t.TempDir(), names, devpki.WithSerial(0x1a2b))
	other := p.IssueLeaf("other", names, devpki.WithSerial(0x3c4d))
	good := devpki.Response{Status: ocsp.StatusGood}
	return &testPKI{
		caFile:      p.Root.CertFile,
		leaf:        p.Leaf.TLSCertificate(),
		other:       other.TLSCertificate(),
		leafStaple:  p.Mint(p.Leaf.Cert, good),
		otherStaple: p.Mint(other.Cert, good),
	}
}

// dnsHandler answers every A question with 192.0.2.1. With wrongID set it
// flips bits of the ID; with dropEvery n it ignores every nth query.
type dnsHandler struct {
	wrongID   bool
	lieAfter  uint64 // like wrongID, after this many good answers (0: never)
	answers   atomic.Uint64
	dropEvery uint64
	n         atomic.Uint64
}

func (h *dnsHandler) answer(q *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(q)
	if len(q.Question) == 1 && q.Question[0].Qtype == dns.TypeA {
		rr, _ := dns.NewRR(q.Question[0].Name + " 300 IN A 192.0.2.1")
		m.Answer = append(m.Answer, rr)
	}
	if h.wrongID || h.lieAfter > 0 && h.answers.Add(1) > h.lieAfter {
		m.Id ^= 0x5a5a
	}
	return m
}

func (h *dnsHandler) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	if h.dropEvery > 0 && h.n.Add(1)%h.dropEvery == 0 {
		return
	}
	w.WriteMsg(h.answer(q))
}

// startDNS serves h over network ("udp" or "tcp"), over TLS with tlsCfg, and returns
// its address.
func startDNS(t *testing.T, h dns.Handler, network string, tlsCfg *tls.Config) string {
	t.Helper()
	// Connection ramps hold their connections open for as long as a ramp takes.
	return testutil.StartDNS(t, h, testutil.DNSOptions{Network: network, TLS: tlsCfg, MaxTCPQueries: -1,
		IdleTimeout: 5 * time.Minute}).Addr
}

// startDoT serves DoT with cert, stapling staple (nil: no staple).
func startDoT(t *testing.T, h dns.Handler, cert tls.Certificate, staple []byte) string {
	cert.OCSPStaple = staple
	return startDNS(t, h, "tcp", &tls.Config{Certificates: []tls.Certificate{cert}})
}

// startDoH serves RFC 8484 POST over HTTP/2 on TLS with net/http.
func startDoH(t *testing.T, h *dnsHandler, cert tls.Certificate) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /dns-query", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != "application/dns-message" {
			http.Error(w, "content type", http.StatusUnsupportedMediaType)
			return
		}
		b, _ := io.ReadAll(r.Body)
		q := new(dns.Msg)
		if err := q.Unpack(b); err != nil {
			http.Error(w, "bad message", http.StatusBadRequest)
			return
		}
		out, _ := h.answer(q).Pack()
		w.Header().Set("Content-Type", "application/dns-message")
		w.Write(out)
	})
	ts := httptest.NewUnstartedServer(mux)
	ts.EnableHTTP2 = true
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return ts.Listener.Addr().String()
}
