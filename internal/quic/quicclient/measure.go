package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	quicgo "github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

func measure(proto, addr, name, caFile, sni, path string, d time.Duration, conns, inflight int, handshakes bool) error {
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
	alpn := "doq"
	if proto == "doh3" {
		alpn = http3.NextProtoH3
	}
	tc := &tls.Config{RootCAs: pool, ServerName: sni, NextProtos: []string{alpn}}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var ok, failed atomic.Uint64
	var wg sync.WaitGroup
	start := time.Now()
	if handshakes {
		for range conns {
			wg.Go(func() {
				for ctx.Err() == nil {
					hctx, hcancel := context.WithTimeout(ctx, 5*time.Second)
					c, err := quicgo.DialAddr(hctx, addr, tc, nil)
					hcancel()
					if err != nil {
						if ctx.Err() == nil {
							failed.Add(1)
						}
						continue
					}
					ok.Add(1)
					_ = c.CloseWithError(0, "")
				}
			})
		}
		wg.Wait()
		report("handshakes", proto, ok.Load(), failed.Load(), time.Since(start))
		return nil
	}
	for range conns {
		var ask func() error
		switch proto {
		case "doq":
			c, err := quicgo.DialAddr(ctx, addr, tc, &quicgo.Config{MaxIdleTimeout: 30 * time.Second})
			if err != nil {
				return err
			}
			defer c.CloseWithError(0, "")
			ask = func() error { return doqAsk(ctx, c, wire) }
		case "doh3":
			tr := &http3.Transport{TLSClientConfig: tc}
			defer tr.Close()
			client := &http.Client{Transport: tr}
			ask = func() error { return doh3Ask(ctx, client, "https://"+addr+path, wire) }
		default:
			return fmt.Errorf("unknown protocol %q", proto)
		}
		for range inflight {
			wg.Go(func() {
				for ctx.Err() == nil {
					if err := ask(); err != nil {
						if ctx.Err() == nil {
							failed.Add(1)
						}
						continue
					}
					ok.Add(1)
				}
			})
		}
	}
	wg.Wait()
	report("queries", proto, ok.Load(), failed.Load(), time.Since(start))
	return nil
}

func report(what, proto string, ok, failed uint64, d time.Duration) {
	fmt.Printf("%s %s: %d ok, %d failed in %.1fs: %.0f/s\n", proto, what, ok, failed, d.Seconds(), float64(ok)/d.Seconds())
}

func doqAsk(ctx context.Context, c *quicgo.Conn, wire []byte) error {
	str, err := c.OpenStreamSync(ctx)
	if err != nil {
		return err
	}
	out := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(wire)), uint16(len(wire)))
	if _, err := str.Write(append(out, wire...)); err != nil {
		return err
	}
	_ = str.Close()
	b, err := io.ReadAll(str)
	if err != nil {
		return err
	}
	if len(b) < 2+12 {
		return fmt.Errorf("short answer")
	}
	return nil
}

func doh3Ask(ctx context.Context, client *http.Client, url string, wire []byte) error {
	req, _ := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(wire))
	req.Header.Set("Content-Type", "application/dns-message")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 || len(b) < 12 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}
