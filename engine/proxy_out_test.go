package engine

import (
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsfront/dnsfront/internal/testutil"
)

// ppBackendConn is one TCP connection a proxy protocol backend accepted: the client its
// header named, and closed once the connection ends.
type ppBackendConn struct {
	src    netip.AddrPort
	closed chan struct{}
}

// startPPBackend is a tcp_only backend that requires a PROXY header at the start of each
// connection and answers every query but those for hold.example., which it keeps and
// reports on held.
func startPPBackend(t *testing.T) (addr netip.AddrPort, conns chan ppBackendConn, held chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns = make(chan ppBackendConn, 16)
	held = make(chan struct{}, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var buf []byte
				tmp := make([]byte, 4096)
				var h ppHeader
				for {
					n, err := c.Read(tmp)
					if err != nil {
						return
					}
					buf = append(buf, tmp[:n]...)
					var used int
					h, used, err = parseProxyHeader(buf, 512)
					if err == errPPShort {
						continue
					}
					if err != nil {
						return
					}
					buf = buf[used:]
					break
				}
				bc := ppBackendConn{src: h.src, closed: make(chan struct{})}
				defer close(bc.closed)
				conns <- bc
				for {
					for len(buf) >= 2 && len(buf) >= 2+int(binary.BigEndian.Uint16(buf)) {
						n := int(binary.BigEndian.Uint16(buf))
						q := new(dns.Msg)
						switch {
						case q.Unpack(buf[2:2+n]) != nil || len(q.Question) != 1:
						case q.Question[0].Name == "hold.example.":
							held <- struct{}{}
						default:
							r := new(dns.Msg)
							r.SetReply(q)
							out, _ := r.Pack()
							_, _ = c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(out))), out...))
						}
						buf = buf[2+n:]
					}
					n, err := c.Read(tmp)
					if err != nil {
						return
					}
					buf = append(buf, tmp[:n]...)
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort(), conns, held
}

// TestProxyOutTCPPerClient: over TCP a use_proxy_protocol backend gets a connection per
// client connection, whose header names that client, reused by its queries and closed
// with it; a reload that removes the backend answers what waits on such a connection.
func TestProxyOutTCPPerClient(t *testing.T) {
	baddr, conns, held := startPPBackend(t)
	acl, err := NewACL([]string{"127.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	be := &Backend{Key: "b", Name: "b", Addr: baddr, Timeout: 10 * time.Second, TCPOnly: true, Proxy: BackendProxy{Use: true}}
	st := newTestState(acl, []*Backend{be}, map[string]*Pool{"": {Backends: []*Backend{be}}})
	bind := testutil.FreeAddr(t, "127.0.0.1")
	e := startTestEngine(t, st, 1, BindOptions{Addr: bind, Protocol: "Do53"})

	dial := func(src string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", bind.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	send := func(c net.Conn, name string, id uint16) {
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeA)
		q.Id = id
		b, _ := q.Pack()
		if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...)); err != nil {
			t.Fatal(err)
		}
	}
	recv := func(c net.Conn) *dns.Msg {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var l [2]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(c, b); err != nil {
			t.Fatal(err)
		}
		m := new(dns.Msg)
		if err := m.Unpack(b); err != nil {
			t.Fatal(err)
		}
		return m
	}
	next := func() ppBackendConn {
		select {
		case bc := <-conns:
			return bc
		case <-time.After(10 * time.Second):
			t.Fatal("no backend connection")
		}
		return ppBackendConn{}
	}

	a := dial("127.0.0.1")
	send(a, "a.example.", 1)
	if m := recv(a); m.Id != 1 || m.Rcode != dns.RcodeSuccess {
		t.Fatalf("client a: %v", m)
	}
	ca := next()
	if ca.src != a.LocalAddr().(*net.TCPAddr).AddrPort() {
		t.Fatalf("a's backend connection names %v, a is %v", ca.src, a.LocalAddr())
	}
	send(a, "a.example.", 2)
	if m := recv(a); m.Id != 2 {
		t.Fatalf("client a, second query: %v", m)
	}
	b := dial("127.0.0.2")
	send(b, "b.example.", 3)
	if m := recv(b); m.Id != 3 {
		t.Fatalf("client b: %v", m)
	}
	cb := next()
	if cb.src.Addr() != netip.MustParseAddr("127.0.0.2") {
		t.Fatalf("b's backend connection names %v", cb.src)
	}
	select {
	case extra := <-conns:
		t.Fatalf("a's second query opened another backend connection (%v)", extra.src)
	default:
	}
	a.Close()
	select {
	case <-ca.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("a's backend connection outlived a")
	}

	// A reload replaces the backend while b's query waits on b's connection to it.
	send(b, "hold.example.", 4)
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("the held query did not reach the backend")
	}
	c := &Backend{Key: "c", Name: "c", Addr: baddr, Timeout: 10 * time.Second, TCPOnly: true, Proxy: BackendProxy{Use: true}}
	e.Publish(newTestState(acl, []*Backend{c}, map[string]*Pool{"": {Backends: []*Backend{c}}}))
	send(b, "b.example.", 5)
	got := map[uint16]int{}
	for range 2 {
		m := recv(b)
		got[m.Id] = m.Rcode
	}
	if got[4] != dns.RcodeServerFailure || got[5] != dns.RcodeSuccess {
		t.Fatalf("after the reload: %v, want 4 SERVFAIL and 5 answered", got)
	}
	if bc := next(); bc.src.Addr() != netip.MustParseAddr("127.0.0.2") {
		t.Fatalf("the new backend's connection names %v", bc.src)
	}
	select {
	case <-cb.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the removed backend's connection stayed open")
	}
}
