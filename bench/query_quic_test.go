package bench

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// startDoQ serves RFC 9250 with quic-go: one query per stream, 2-byte
// length prefix, message ID 0 (a query with another ID closes the
// connection with DOQ_PROTOCOL_ERROR, 0x2).
func startDoQ(t *testing.T, h *dnsHandler, cert tls.Certificate, staple []byte) string {
	t.Helper()
	cert.OCSPStaple = staple
	ln, err := quic.ListenAddr("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"doq"}},
		&quic.Config{MaxIncomingStreams: 1000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			go func() {
				for {
					str, err := conn.AcceptStream(context.Background())
					if err != nil {
						return
					}
					go serveDoQStream(conn, str, h)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func serveDoQStream(conn *quic.Conn, str *quic.Stream, h *dnsHandler) {
	b, err := io.ReadAll(io.LimitReader(str, 2+65535))
	if err != nil || len(b) < 2 || int(binary.BigEndian.Uint16(b)) != len(b)-2 {
		str.CancelRead(0x2)
		str.CancelWrite(0x2)
		return
	}
	q := new(dns.Msg)
	if err := q.Unpack(b[2:]); err != nil || q.Id != 0 {
		conn.CloseWithError(0x2, "")
		return
	}
	out, _ := h.answer(q).Pack()
	str.Write(binary.BigEndian.AppendUint16(nil, uint16(len(out))))
	str.Write(out)
	str.Close()
}

// startDoH3 serves RFC 8484 POST over HTTP/3.
func startDoH3(t *testing.T, h *dnsHandler, cert tls.Certificate) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /dns-query", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		q := new(dns.Msg)
		if r.Header.Get("Content-Type") != "application/dns-message" || q.Unpack(b) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		out, _ := h.answer(q).Pack()
		w.Header().Set("Content-Type", "application/dns-message")
		w.Write(out)
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http3.Server{Handler: mux, TLSConfig: http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(pc)
	}()
	t.Cleanup(func() {
		srv.Close()
		pc.Close()
		<-done
	})
	return pc.LocalAddr().String()
}

func TestQueryQUIC(t *testing.T) {
	pki := newTestPKI(t)
	h := &dnsHandler{}
	servers := map[string]string{
		"doq":  startDoQ(t, h, pki.leaf, pki.leafStaple),
		"doh3": startDoH3(t, h, pki.leaf),
	}
	for proto, addr := range servers {
		t.Run(proto, func(t *testing.T) {
			o := QueryOptions{Target: addr, Proto: proto, Connections: 2, Inflight: 8,
				TLS: TLSOptions{CAFile: pki.caFile, SNI: "dns.test"}}
			r, err := runQuery(t, o, 300*time.Millisecond)
			if err != nil {
				t.Fatalf("RunQuery: %v", err)
			}
			res := r.Results
			if res.OK == 0 || res.Errors != 0 {
				t.Fatalf("ok %d, errors %v", res.OK, res.ErrorsByKind)
			}
			if res.Rcodes["NOERROR"] == 0 {
				t.Errorf("rcodes %v: want NOERROR answers", res.Rcodes)
			}
			if r.Params.Protocol != proto || r.Params.Connections != 2 || r.Params.Inflight != 8 {
				t.Errorf("params %+v", r.Params)
			}
		})
	}
}

// A DoQ server that answers with the wrong ID fails the first query, so the
// run does not start; a server speaking another ALPN is refused.
func TestQueryQUICBadAnswers(t *testing.T) {
	pki := newTestPKI(t)
	addr := startDoQ(t, &dnsHandler{wrongID: true}, pki.leaf, nil)
	o := QueryOptions{Target: addr, Proto: "doq", Duration: time.Second, TLS: TLSOptions{CAFile: pki.caFile, SNI: "dns.test"}}
	if _, err := RunQuery(context.Background(), o); err == nil || !strings.Contains(err.Error(), "wrong id") {
		t.Errorf("wrong ID: err %v, want a first answer with the wrong id", err)
	}
	h3 := startDoH3(t, &dnsHandler{}, pki.leaf)
	o.Target = h3
	if _, err := RunQuery(context.Background(), o); err == nil {
		t.Error("doq against an h3 server: no error")
	}
	o.TLS.Version = "1.2"
	if _, err := RunQuery(context.Background(), o); err == nil {
		t.Error("doq with TLS 1.2: no error")
	}
}

func TestHandshakeQUIC(t *testing.T) {
	pki := newTestPKI(t)
	h := &dnsHandler{}
	stapled := startDoQ(t, h, pki.leaf, pki.leafStaple)
	bare := startDoQ(t, h, pki.leaf, nil)
	tlsOpts := TLSOptions{CAFile: pki.caFile, SNI: "dns.test"}

	r := runHS(t, HandshakeOptions{Target: stapled, Proto: "quic", TLS: tlsOpts, Query: "www.dns.test"})
	res := r.Results
	if r.Params.Protocol != "quic" || res.FullHandshake != res.OK || res.StapleValid != res.OK || res.StapleFrac != 1 {
		t.Errorf("stapled: protocol %q, ok %d, full %d, valid %d, fraction %v, error %q",
			r.Params.Protocol, res.OK, res.FullHandshake, res.StapleValid, res.StapleFrac, res.StapleError)
	}
	r = runHS(t, HandshakeOptions{Target: bare, Proto: "quic", TLS: tlsOpts})
	if res := r.Results; res.StapleMissing != res.OK || res.StapleFrac != 0 {
		t.Errorf("no staple: missing %d of %d", res.StapleMissing, res.OK)
	}
	if _, err := RunHandshake(context.Background(), HandshakeOptions{Target: bare, Proto: "sctp", Duration: time.Second}); err == nil {
		t.Error("unknown protocol: no error")
	}
}
