package engine

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsfront/dnsfront/internal/testutil"
)

// udpTestBackend answers every query it gets: big.example. with TXT records larger than
// 512 bytes, any other name with one A record.
func udpTestBackend(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			q := new(dns.Msg)
			if q.Unpack(buf[:n]) != nil || len(q.Question) != 1 {
				continue
			}
			r := new(dns.Msg)
			r.SetReply(q)
			name := q.Question[0].Name
			if name == "big.example." {
				for range 6 {
					r.Answer = append(r.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
						Txt: []string{strings.Repeat("x", 200)}})
				}
			} else {
				rr, _ := dns.NewRR(name + " 60 IN A 192.0.2.7")
				r.Answer = append(r.Answer, rr)
			}
			if o := q.IsEdns0(); o != nil {
				r.SetEdns0(o.UDPSize(), false)
			}
			out, err := r.Pack()
			if err != nil {
				continue
			}
			_, _ = pc.WriteToUDPAddrPort(out, from)
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

// startUDPEngine runs a one-loop engine with Do53 binds on 127.0.0.1 and ::1 in front of
// backend; it returns the two bind addresses.
func startUDPEngine(t *testing.T, backend netip.AddrPort) (v4, v6 netip.AddrPort) {
	t.Helper()
	acl, err := NewACL([]string{"127.0.0.0/8", "::1/128"})
	if err != nil {
		t.Fatal(err)
	}
	be := &Backend{Key: "b", Name: "b", Addr: backend, Timeout: 5 * time.Second}
	st := newTestState(acl, []*Backend{be}, map[string]*Pool{"": {Backends: []*Backend{be}}})
	v4 = testutil.FreeAddr(t, "127.0.0.1")
	v6 = netip.AddrPortFrom(netip.IPv6Loopback(), testutil.RequireIPv6Loopback(t))
	startTestEngine(t, st, 1, BindOptions{Addr: v4, Protocol: "Do53"}, BindOptions{Addr: v6, Protocol: "Do53"})
	return v4, v6
}

func packQuery(t *testing.T, name string, id uint16, edns bool) []byte {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(name, dns.TypeA)
	if name == "big.example." {
		q.Question[0].Qtype = dns.TypeTXT
	}
	if edns {
		q.SetEdns0(1232, false)
	}
	q.Id = id
	b, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A burst from many source addresses, on IPv4 and IPv6 at once, is read in batches and
// answered in batches: every query gets exactly one answer, at the address it came from.
// A last query from each client is answered after everything it sent before, so any
// duplicate of an earlier answer would be read before it.
func TestUDPBurstAnsweredOnceEach(t *testing.T) {
	v4, v6 := startUDPEngine(t, udpTestBackend(t))
	// 96 queries per listener and 192 at the backend stay within the sockets' default
	// receive buffers (212992 bytes, about 270 small datagrams): no drop is expected.
	const clientsPerFamily, perClient = 32, 3
	var clients []*net.UDPConn
	for _, bind := range []netip.AddrPort{v4, v6} {
		for range clientsPerFamily {
			c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(bind))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetReadBuffer(1 << 20)
			clients = append(clients, c)
		}
	}
	// Everything is sent before anything is read: the loop sees full socket queues.
	for i, c := range clients {
		for j := range perClient {
			id := uint16(i*16 + j)
			name := "q" + string(rune('a'+j)) + ".example."
			if _, err := c.Write(packQuery(t, name, id, true)); err != nil {
				t.Fatal(err)
			}
		}
	}
	buf := make([]byte, 65535)
	read := func(c *net.UDPConn) *dns.Msg {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("client %v: %v", c.LocalAddr(), err)
		}
		m := new(dns.Msg)
		if err := m.Unpack(buf[:n]); err != nil {
			t.Fatalf("client %v: %v", c.LocalAddr(), err)
		}
		return m
	}
	for i, c := range clients {
		seen := map[uint16]bool{}
		for range perClient {
			m := read(c)
			j := int(m.Id) - i*16
			if j < 0 || j >= perClient || seen[m.Id] {
				t.Fatalf("client %d (%v): answer with ID %d (seen %v)", i, c.LocalAddr(), m.Id, seen)
			}
			want := "q" + string(rune('a'+j)) + ".example."
			if len(m.Question) != 1 || m.Question[0].Name != want || len(m.Answer) != 1 {
				t.Fatalf("client %d: answer %v, want one for %s", i, m, want)
			}
			seen[m.Id] = true
		}
		last := uint16(i*16 + 15)
		if _, err := c.Write(packQuery(t, "last.example.", last, true)); err != nil {
			t.Fatal(err)
		}
		if m := read(c); m.Id != last {
			t.Fatalf("client %d: ID %d after its %d answers, want the last query's %d (a duplicate?)", i, m.Id, perClient, last)
		}
	}
}

// An answer larger than the client's limit still leaves with TC=1, cut to the limit,
// from a batch of answers.
func TestUDPTruncatedInBatch(t *testing.T) {
	v4, v6 := startUDPEngine(t, udpTestBackend(t))
	for _, bind := range []netip.AddrPort{v4, v6} {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(bind))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// No EDNS: 512 bytes at most. The small queries around it share its batch.
		for i, q := range [][]byte{
			packQuery(t, "a.example.", 1, true),
			packQuery(t, "big.example.", 2, false),
			packQuery(t, "b.example.", 3, true),
		} {
			if _, err := c.Write(q); err != nil {
				t.Fatalf("query %d: %v", i, err)
			}
		}
		buf := make([]byte, 65535)
		for range 3 {
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := c.Read(buf)
			if err != nil {
				t.Fatalf("%v: %v", bind, err)
			}
			m := new(dns.Msg)
			if err := m.Unpack(buf[:n]); err != nil {
				t.Fatal(err)
			}
			switch m.Id {
			case 2:
				if !m.Truncated || n > 512 {
					t.Errorf("%v: big answer of %d bytes, TC=%v; want TC=1 within 512", bind, n, m.Truncated)
				}
			case 1, 3:
				if m.Truncated || len(m.Answer) != 1 {
					t.Errorf("%v: small answer %v", bind, m)
				}
			default:
				t.Errorf("%v: unexpected ID %d", bind, m.Id)
			}
		}
	}
}
