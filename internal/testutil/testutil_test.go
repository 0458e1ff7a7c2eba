package testutil

import (
	"crypto/tls"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsfront/dnsfront/internal/devpki"
)

// recorder is a testing.TB whose Fatalf and Skip record their message and
// end the goroutine, as testing's do, so that the helpers' failure paths can
// be checked.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(f string, args ...any) {
	r.fatal = fmt.Sprintf(f, args...)
	runtime.Goexit()
}

func (r *recorder) Skip(args ...any) {
	r.skip = fmt.Sprint(args...)
	runtime.Goexit()
}

// capture runs f on its own goroutine with a recorder.
func capture(t *testing.T, f func(tb testing.TB)) *recorder {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r
}

func TestEventually(t *testing.T) {
	var n atomic.Int32
	Eventually(t, 10*time.Second, "the third call", func() bool { return n.Add(1) == 3 })
	start := time.Now()
	r := capture(t, func(tb testing.TB) { Eventually(tb, 50*time.Millisecond, "never", func() bool { return false }) })
	if r.fatal == "" || time.Since(start) < 50*time.Millisecond {
		t.Errorf("gave up after %v with %q", time.Since(start), r.fatal)
	}
}

func TestToolFailsUnderCI(t *testing.T) {
	const missing = "dnsfront-no-such-tool"
	t.Setenv("CI", "true")
	r := capture(t, func(tb testing.TB) { Tool(tb, missing) })
	if r.fatal == "" || r.skip != "" {
		t.Errorf("under CI: fatal %q, skip %q", r.fatal, r.skip)
	}
	t.Setenv("CI", "")
	r = capture(t, func(tb testing.TB) { Tool(tb, missing) })
	if r.fatal != "" || r.skip == "" {
		t.Errorf("outside CI: fatal %q, skip %q", r.fatal, r.skip)
	}
	t.Setenv("CI", "false")
	if InCI() {
		t.Error("CI=false is a CI")
	}
	if p := Tool(t, "sh"); p == "" {
		t.Error("sh not found")
	}
}

func TestStartDNS(t *testing.T) {
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		_ = w.WriteMsg(m)
	})
	ask := func(t *testing.T, c *dns.Client, addr string) {
		t.Helper()
		q := new(dns.Msg)
		q.SetQuestion("dns.test.", dns.TypeA)
		if _, _, err := c.Exchange(q, addr); err != nil {
			t.Errorf("%s %s: %v", c.Net, addr, err)
		}
	}
	both := StartDNS(t, h, DNSOptions{})
	ask(t, &dns.Client{Net: "udp"}, both.Addr)
	ask(t, &dns.Client{Net: "tcp"}, both.Addr)

	p := devpki.NewTestPKI(t, t.TempDir())
	dot := StartDNS(t, h, DNSOptions{TLS: &tls.Config{Certificates: []tls.Certificate{p.Leaf.TLSCertificate()}}})
	ask(t, &dns.Client{Net: "tcp-tls", TLSConfig: &tls.Config{RootCAs: p.RootPool(), ServerName: "dns.test"}}, dot.Addr)

	dot.Stop()
	dot.Stop()
	if _, _, err := (&dns.Client{Net: "tcp", Timeout: time.Second}).Exchange(new(dns.Msg).SetQuestion("x.", dns.TypeA), dot.Addr); err == nil {
		t.Error("a stopped server answered")
	}
}
