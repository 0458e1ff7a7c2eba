package engine

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/panjf2000/gnet/v2"

	"github.com/dnsfront/dnsfront/config"
	"github.com/dnsfront/dnsfront/doh"
	"github.com/dnsfront/dnsfront/engine/rules"
	"github.com/dnsfront/dnsfront/internal/testutil"
)

// The lives of proxy protocol state: a header read across a reload, and the backend
// connections a use_proxy_protocol backend gets, which must close when their query or
// client ends, whatever ends it.

// countingPPBackend is a tcp_only backend that takes a PROXY header at the start of each
// connection, answers every query, and counts the connections open.
type countingPPBackend struct {
	addr netip.AddrPort
	open atomic.Int64
}

func startCountingPPBackend(t *testing.T) *countingPPBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	b := &countingPPBackend{addr: ln.Addr().(*net.TCPAddr).AddrPort()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.open.Add(1)
			go func() {
				defer b.open.Add(-1)
				defer c.Close()
				br := bufio.NewReader(c)
				var fixed [16]byte
				if _, err := io.ReadFull(br, fixed[:]); err != nil {
					return
				}
				if _, err := br.Discard(int(binary.BigEndian.Uint16(fixed[14:]))); err != nil {
					return
				}
				for {
					var n [2]byte
					if _, err := io.ReadFull(br, n[:]); err != nil {
						return
					}
					m := make([]byte, binary.BigEndian.Uint16(n[:]))
					if _, err := io.ReadFull(br, m); err != nil {
						return
					}
					q := new(dns.Msg)
					if q.Unpack(m) != nil {
						return
					}
					r := new(dns.Msg)
					r.SetReply(q)
					out, _ := r.Pack()
					if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(out))), out...)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return b
}

// onLoop runs f on the engine's only loop and waits for it.
func onLoop(t *testing.T, e *Engine, f func(l *loop)) {
	t.Helper()
	done := make(chan struct{})
	l := e.loopList()[0]
	if err := l.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		f(l)
		close(done)
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the loop did not run the task within 10s")
	}
}

func proxySocks(t *testing.T, e *Engine) (n int) {
	onLoop(t, e, func(l *loop) { n = len(l.ppl.socks) })
	return n
}

// A header that began before a reload removed proxy_protocol is read to its end against
// the setting that required it, and the connection's query is answered (it crashed the
// loop: the rest of the header was read against the new, nil, setting).
func TestProxyHeaderReadAgainstItsSetting(t *testing.T) {
	backend := udpTestBackend(t)
	acl, _ := NewACL([]string{"127.0.0.0/8"})
	be := &Backend{Key: "b", Name: "b", Addr: backend, Timeout: 5 * time.Second}
	st := newTestState(acl, []*Backend{be}, map[string]*Pool{"": {Backends: []*Backend{be}}})
	st.Proxy = &ProxyProtocol{ACL: acl, MaxSize: 512}
	bind := testutil.FreeAddr(t, "127.0.0.1")
	e := startTestEngine(t, st, 1, BindOptions{Addr: bind, Protocol: "Do53", Proxy: BindProxy{Enabled: true}})
	c, err := net.Dial("tcp", bind.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := appendProxyHeader(nil, netip.MustParseAddrPort("127.0.0.9:1000"), bind, true, false)
	if _, err := c.Write(h[:8]); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the loop waits for the rest of the header", func() bool {
		waiting := false
		onLoop(t, e, func(l *loop) {
			for cc := range l.clients {
				waiting = waiting || cc.pp.state == ppOutside
			}
		})
		return waiting
	})
	e.Publish(newTestState(acl, []*Backend{be}, map[string]*Pool{"": {Backends: []*Backend{be}}}))
	q := packQuery(t, "www.example.", 7, false)
	if _, err := c.Write(append(h[8:], append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...)...)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	r, err := (&dns.Conn{Conn: c}).ReadMsg()
	if err != nil || r.Id != 7 {
		t.Fatalf("answer %v, err %v", r, err)
	}
}

// One DoH connection whose queries name many clients in X-Forwarded-For does not hold a
// backend connection per named client: each such query has a connection of its own,
// closed once answered.
func TestProxyOutForwardedForBounded(t *testing.T) {
	b := startCountingPPBackend(t)
	acl, _ := NewACL([]string{"127.0.0.0/8"})
	be := &Backend{Key: "b", Name: "b", Addr: b.addr, Timeout: 5 * time.Second, TCPOnly: true, Proxy: BackendProxy{Use: true}}
	st := newTestState(acl, []*Backend{be}, map[string]*Pool{"": {Backends: []*Backend{be}}})
	bind := testutil.FreeAddr(t, "127.0.0.1")
	e := startTestEngine(t, st, 1, BindOptions{Addr: bind, Protocol: "DoH", DoH: &doh.Options{TrustForwardedFor: true}})
	c, err := net.Dial("tcp", bind.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	const n = 100
	for i := range n {
		q := base64.RawURLEncoding.EncodeToString(packQuery(t, "www.example.", uint16(i), false))
		fmt.Fprintf(c, "GET /dns-query?dns=%s HTTP/1.1\r\nHost: x\r\nAccept: application/dns-message\r\nX-Forwarded-For: 127.1.0.%d\r\n\r\n", q, i+1)
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("query %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("query %d: status %d", i, resp.StatusCode)
		}
	}
	testutil.Eventually(t, 10*time.Second, "every per-query backend connection closed", func() bool {
		return b.open.Load() == 0 && proxySocks(t, e) == 0
	})
}

// The one-query connections of UDP clients' queries to a tcp_only use_proxy_protocol
// backend are forgotten when they fail (a refused connect), and closed when a response
// rule drops their answer.
func TestProxyOutOneQuerySocketsEnd(t *testing.T) {
	acl, _ := NewACL([]string{"127.0.0.0/8"})
	t.Run("refused", func(t *testing.T) {
		dead := testutil.FreeAddr(t, "127.0.0.1") // reserved: nothing listens there
		be := &Backend{Key: "b", Name: "b", Addr: dead, Timeout: 5 * time.Second, TCPOnly: true, Proxy: BackendProxy{Use: true}}
		st := newTestState(acl, []*Backend{be}, map[string]*Pool{"": {Backends: []*Backend{be}}})
		bind := testutil.FreeAddr(t, "127.0.0.1")
		e := startTestEngine(t, st, 1, BindOptions{Addr: bind, Protocol: "Do53"})
		c, err := net.Dial("udp", bind.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		buf := make([]byte, 512)
		for i := range 20 {
			if _, err := c.Write(packQuery(t, "www.example.", uint16(i), false)); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Read(buf); err != nil {
				t.Fatalf("query %d: %v", i, err)
			}
		}
		if n := proxySocks(t, e); n != 0 {
			t.Fatalf("%d failed one-query sockets still held", n)
		}
	})
	t.Run("answer dropped by a rule", func(t *testing.T) {
		b := startCountingPPBackend(t)
		be := &Backend{Key: "b", Name: "b", Addr: b.addr, Timeout: 5 * time.Second, TCPOnly: true, Proxy: BackendProxy{Use: true}}
		st := newTestState(acl, []*Backend{be}, map[string]*Pool{"": {Backends: []*Backend{be}}})
		cfg, err := config.ParseRules("t.yaml", []byte("response_rules:\n  - {name: d, selector: {type: QNameSuffix, suffixes: [\"drop.example.\"]}, action: {type: Drop}}\n"))
		if err != nil {
			t.Fatal(err)
		}
		if st.Rules, err = rules.Compile(cfg, rules.Options{Loops: 1}); err != nil {
			t.Fatal(err)
		}
		bind := testutil.FreeAddr(t, "127.0.0.1")
		e := startTestEngine(t, st, 1, BindOptions{Addr: bind, Protocol: "Do53"})
		c, err := net.Dial("udp", bind.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for i := range 20 {
			if _, err := c.Write(packQuery(t, "x.drop.example.", uint16(i), false)); err != nil {
				t.Fatal(err)
			}
		}
		var dropped uint64
		testutil.Eventually(t, 10*time.Second, "the 20 answers dropped and their connections closed", func() bool {
			onLoop(t, e, func(l *loop) { dropped = l.pol.stats.respDrops.Load() })
			return dropped == 20 && b.open.Load() == 0 && proxySocks(t, e) == 0
		})
	})
}
