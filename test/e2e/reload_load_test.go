package e2e

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsfront/dnsfront/internal/devpki"
)

// loadBinds serves Do53, DoT and DoH, the TLS binds stapled from one response file.
const loadBinds = `
general:
  event_loops: 2
  log_level: info
acl: ["127.0.0.0/8"]
binds:
  - listen_address: "127.0.0.1:{{port "dns"}}"
  - listen_address: "127.0.0.1:{{port "dot"}}"
    protocol: DoT
    tls:
      certificates: [{certificate: "{{.Chain}}", key: "{{.Key}}"}]
      ocsp_response_files: ["{{.Staple}}"]
  - listen_address: "127.0.0.1:{{port "doh"}}"
    protocol: DoH
    tls:
      certificates: [{certificate: "{{.Chain}}", key: "{{.Key}}"}]
      ocsp_response_files: ["{{.Staple}}"]
backends:
  - address: "{{.Backend}}"
    name: b1
    health_checks: {mode: up}
webserver:
  listen_addresses: ["127.0.0.1:{{port "admin"}}"]
`

// TestReloadUnderLoad: SIGHUP every 100 ms for two seconds while full TLS handshakes,
// DoT queries on a kept connection, DoH queries and UDP queries run: no query fails, no
// reload is rejected, and every handshake is stapled.
func TestReloadUnderLoad(t *testing.T) {
	t.Parallel()
	p := devpki.NewTestPKI(t, t.TempDir())
	be := StartTestBackend(t)
	data := struct{ Chain, Key, Staple, Backend string }{p.Leaf.ChainFile, p.Leaf.KeyFile, p.WriteFile("leaf.ocsp", p.Good()), be.Addr}
	d := Start(t, loadBinds, data)
	roots := CertPool(t, p.Root.Cert)
	answer := net.ParseIP(testAnswer)
	reloads0 := d.Metric("dnsfront_reloads_total")

	var (
		stop                        atomic.Bool
		wg                          sync.WaitGroup
		mu                          sync.Mutex
		errs                        []string
		handshakes, unstapled, dotQ atomic.Int64
		dohQ, udpQ                  atomic.Int64
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(errs) < 20 {
			errs = append(errs, fmt.Sprintf(format, args...))
		}
	}
	ok := func(r *dns.Msg) bool {
		for _, rr := range r.Answer {
			if a, isA := rr.(*dns.A); isA && a.A.Equal(answer) {
				return true
			}
		}
		return false
	}
	run := func(f func(i int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				f(i)
			}
		}()
	}
	// Full handshakes, each checked for a staple.
	run(func(int) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", d.Addr("dot"),
			&tls.Config{ServerName: "dns.test", RootCAs: roots, NextProtos: []string{"dot"}, ClientSessionCache: nil})
		if err != nil {
			fail("handshake: %v", err)
			return
		}
		handshakes.Add(1)
		if len(c.ConnectionState().OCSPResponse) == 0 {
			unstapled.Add(1)
		}
		c.Close()
	})
	// DoT queries on one connection opened before the reloads.
	dot := DialDoT(t, d.Addr("dot"), "dns.test", roots, nil)
	run(func(i int) {
		m := NewQuery(testName, dns.TypeA)
		m.Id = uint16(i)
		_ = dot.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := dot.Write(FrameDoT(t, m)); err != nil {
			fail("DoT write: %v", err)
			stop.Store(true)
			return
		}
		r, err := ReadDoT(dot)
		switch {
		case err != nil:
			fail("DoT read: %v", err)
			stop.Store(true)
		case r.Id != m.Id || !ok(r):
			fail("DoT answer %d: %v", r.Id, AnswerStrings(r))
		default:
			dotQ.Add(1)
		}
	})
	// DoH over HTTP/2, one client (its connection is reused).
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{ServerName: "dns.test", RootCAs: roots, NextProtos: []string{"h2"}}}}
	t.Cleanup(hc.CloseIdleConnections)
	wire, err := NewQuery(testName, dns.TypeA).Pack()
	if err != nil {
		t.Fatal(err)
	}
	run(func(int) {
		resp, err := hc.Post("https://"+d.Addr("doh")+"/dns-query", "application/dns-message", bytes.NewReader(wire))
		if err != nil {
			fail("DoH: %v", err)
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		r := new(dns.Msg)
		if err != nil || resp.StatusCode != http.StatusOK || r.Unpack(body) != nil || !ok(r) {
			fail("DoH: status %d, err %v, %d bytes", resp.StatusCode, err, len(body))
			return
		}
		dohQ.Add(1)
	})
	// UDP queries.
	run(func(int) {
		r, err := ExchangeTimeout("udp", d.Addr("dns"), NewQuery(testName, dns.TypeA), 5*time.Second)
		if err != nil || !ok(r) {
			fail("UDP: %v %v", err, r)
			return
		}
		udpQ.Add(1)
	})

	tick := time.NewTicker(100 * time.Millisecond)
	for range 20 {
		<-tick.C
		d.Signal(syscall.SIGHUP)
	}
	tick.Stop()
	stop.Store(true)
	wg.Wait()

	for _, e := range errs {
		t.Error(e)
	}
	if n := unstapled.Load(); n != 0 {
		t.Errorf("%d of %d handshakes were not stapled", n, handshakes.Load())
	}
	if handshakes.Load() == 0 || dotQ.Load() == 0 || dohQ.Load() == 0 || udpQ.Load() == 0 {
		t.Errorf("no traffic of some kind: %d handshakes, %d DoT, %d DoH, %d UDP", handshakes.Load(), dotQ.Load(), dohQ.Load(), udpQ.Load())
	}
	if got := d.Metric("dnsfront_reloads_total") - reloads0; got < 1 {
		t.Errorf("%v reloads applied", got)
	}
	if f := d.Metric("dnsfront_reload_failures_total"); f != 0 {
		t.Errorf("%v reloads rejected", f)
	}
	t.Logf("%d handshakes, %d DoT, %d DoH, %d UDP queries across %v reloads", handshakes.Load(), dotQ.Load(), dohQ.Load(), udpQ.Load(),
		d.Metric("dnsfront_reloads_total")-reloads0)
}
