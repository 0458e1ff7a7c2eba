package bench

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/crypto/ocsp"
)

// testPKI is a CA, a leaf for dns.test and 127.0.0.1, and a second leaf
// from the same CA, with good OCSP responses for both.
type testPKI struct {
	caFile      string
	ca          *x509.Certificate
	leaf, other tls.Certificate
	leafStaple  []byte
	otherStaple []byte
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "bench test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p := &testPKI{ca: ca}
	p.caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	mk := func(serial int64) (tls.Certificate, []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: "dns.test"},
			DNSNames:     []string{"dns.test"},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
		if err != nil {
			t.Fatal(err)
		}
		leaf, _ := x509.ParseCertificate(der)
		staple, err := ocsp.CreateResponse(ca, ca, ocsp.Response{
			Status:       ocsp.Good,
			SerialNumber: leaf.SerialNumber,
			ThisUpdate:   now.Add(-time.Minute),
			NextUpdate:   now.Add(time.Hour),
			IssuerHash:   crypto.SHA256,
		}, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der, caDER}, PrivateKey: key, Leaf: leaf}, staple
	}
	p.leaf, p.leafStaple = mk(0x1a2b)
	p.other, p.otherStaple = mk(0x3c4d)
	return p
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

func startDNS(t *testing.T, h dns.Handler, network string, tlsCfg *tls.Config) string {
	t.Helper()
	started := make(chan struct{})
	srv := &dns.Server{Handler: h, MaxTCPQueries: -1, NotifyStartedFunc: func() { close(started) }}
	var addr string
	switch network {
	case "udp":
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv.PacketConn = pc
		addr = pc.LocalAddr().String()
	default:
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if tlsCfg != nil {
			ln = tls.NewListener(ln, tlsCfg)
		}
		srv.Listener = ln
		addr = ln.Addr().String()
	}
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return addr
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
