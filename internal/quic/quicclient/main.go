// Command quicclient asks one DNS question over DoQ or DoH3 with quic-go's client and
// prints the answer, the negotiated protocol and whether the handshake carried a staple
// that verifies against the issuer. The QUIC tests start it as a separate program.
//
// With -duration it measures instead: queries per second on warm connections
// (-connections, each with -inflight queries outstanding), or with -handshakes full
// handshakes per second (a new connection each, no resumption).
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/miekg/dns"
	quicgo "github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"golang.org/x/crypto/ocsp"
)

func main() {
	proto := flag.String("proto", "doq", "doq or doh3")
	addr := flag.String("addr", "127.0.0.1:10853", "server host:port")
	name := flag.String("name", "dnsfront.test.", "question name")
	ca := flag.String("ca", "", "PEM file of the CA that issued the server certificate")
	sni := flag.String("sni", "dns.test", "server name")
	path := flag.String("path", "/dns-query", "DoH3 path")
	duration := flag.Duration("duration", 0, "measure for this long instead of asking once")
	conns := flag.Int("connections", 4, "measure: connections")
	inflight := flag.Int("inflight", 16, "measure: queries outstanding per connection")
	handshakes := flag.Bool("handshakes", false, "measure full handshakes per second instead of queries")
	flag.Parse()
	var err error
	if *duration > 0 {
		err = measure(*proto, *addr, *name, *ca, *sni, *path, *duration, *conns, *inflight, *handshakes)
	} else {
		err = run(*proto, *addr, *name, *ca, *sni, *path)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "quicclient:", err)
		os.Exit(1)
	}
}

func run(proto, addr, name, caFile, sni, path string) error {
	pool := x509.NewCertPool()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return err
		}
		pool.AppendCertsFromPEM(pem)
	}
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeA)
	q.Id = 0
	wire, _ := q.Pack()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var answer []byte
	var cs tls.ConnectionState
	switch proto {
	case "doq":
		c, err := quicgo.DialAddr(ctx, addr, &tls.Config{RootCAs: pool, ServerName: sni, NextProtos: []string{"doq"}}, nil)
		if err != nil {
			return err
		}
		defer c.CloseWithError(0, "")
		cs = c.ConnectionState().TLS
		str, err := c.OpenStreamSync(ctx)
		if err != nil {
			return err
		}
		_, _ = str.Write(binary.BigEndian.AppendUint16(nil, uint16(len(wire))))
		_, _ = str.Write(wire)
		_ = str.Close()
		b, err := io.ReadAll(str)
		if err != nil {
			return err
		}
		if len(b) < 2 {
			return fmt.Errorf("answer of %d bytes", len(b))
		}
		answer = b[2:]
	case "doh3":
		tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: sni}}
		defer tr.Close()
		req, _ := http.NewRequestWithContext(ctx, "POST", "https://"+addr+path, bytes.NewReader(wire))
		req.Header.Set("Content-Type", "application/dns-message")
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("HTTP status %d", resp.StatusCode)
		}
		cs = *resp.TLS
		if answer, err = io.ReadAll(resp.Body); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown protocol %q", proto)
	}
	m := new(dns.Msg)
	if err := m.Unpack(answer); err != nil {
		return err
	}
	staple := "none"
	if len(cs.OCSPResponse) > 0 && len(cs.VerifiedChains) > 0 && len(cs.VerifiedChains[0]) > 1 {
		r, err := ocsp.ParseResponseForCert(cs.OCSPResponse, cs.VerifiedChains[0][0], cs.VerifiedChains[0][1])
		switch {
		case err != nil:
			staple = "invalid: " + err.Error()
		case r.Status == ocsp.Good:
			staple = "good"
		default:
			staple = fmt.Sprintf("status %d", r.Status)
		}
	}
	fmt.Printf("alpn=%s staple=%s rcode=%s id=%d answers=%d\n", cs.NegotiatedProtocol, staple, dns.RcodeToString[m.Rcode], m.Id, len(m.Answer))
	for _, rr := range m.Answer {
		fmt.Println(rr)
	}
	return nil
}
