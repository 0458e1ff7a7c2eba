package engine

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// pipeConn is a TCP backend connection whose inbound buffer holds pipelined frames, inside
// a larger array as gnet's read buffer is: what lies after a frame is the next frame.
type pipeConn struct {
	fakeConn
	buf []byte
	off int
}

func (c *pipeConn) Peek(n int) ([]byte, error) {
	if len(c.buf)-c.off < n {
		return nil, net.ErrClosed
	}
	return c.buf[c.off : c.off+n], nil
}

func (c *pipeConn) Next(n int) ([]byte, error) {
	b, err := c.Peek(n)
	if err == nil {
		c.off += n
	}
	return b, err
}

func (c *pipeConn) InboundBuffered() int { return len(c.buf) - c.off }

// srvAnswer is a backend's answer to an SRV query for name (which the question holds at
// offset 12) whose target points back to the question, with the OPT record before
// another additional record: stripping the OPT record takes the repacking path, and
// miekg/dns writes SRV targets uncompressed, so the repacked message is longer.
func srvAnswer(id uint16, name string) []byte {
	m := []byte{byte(id >> 8), byte(id), 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 2}
	m = append(m, mustWireName(name)...)
	m = append(m, 0, 33, 0, 1)                                           // SRV IN
	m = append(m, 0xc0, 12, 0, 33, 0, 1, 0, 0, 0, 60, 0, 8)              // name, SRV IN, TTL 60, rdlength 8
	m = append(m, 0, 10, 0, 5, 0, 53, 0xc0, 12)                          // priority, weight, port, target
	m = append(m, 0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0)                   // OPT, 4096
	m = append(m, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1) // A 192.0.2.1
	return m
}

func mustWireName(name string) []byte {
	b := make([]byte, 256)
	n, err := dns.PackDomainName(name, b, 0, nil, false)
	if err != nil {
		panic(err)
	}
	return b[:n]
}

// Two answers pipelined in one read from a TCP backend: stripping the OPT record from the
// first (its client sent none) must not write over the second, which follows it in the
// read buffer.
func TestRepackedAnswerLeavesNextFrame(t *testing.T) {
	fd, conn := udpPair(t)
	h := newHotPath(t, fd, conn)
	h.l.state.Backends[0].TCPOnly = true
	h.sock.tcp = true
	h.l.udp[0], h.l.tcp[0] = nil, h.sock
	names := []string{"a-rather-long-label-for-growth.example.com.", "b-rather-long-label-for-growth.example.com."}
	var ids []uint16
	from := h.listener.remote.(*net.UDPAddr).AddrPort()
	for i, name := range names {
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeSRV)
		q.Id = uint16(100 + i)
		b, err := q.Pack()
		if err != nil {
			t.Fatal(err)
		}
		h.l.onDatagram(h.listener.fd, h.bind, b, from.Addr(), int(from.Port()))
		ids = append(ids, binary.BigEndian.Uint16(h.backend.out[2:]))
	}
	var in []byte
	for i, name := range names {
		a := srvAnswer(ids[i], name)
		in = binary.BigEndian.AppendUint16(in, uint16(len(a)))
		in = append(in, a...)
	}
	pc := &pipeConn{buf: append(make([]byte, 0, 4096), in...)}
	h.sock.gc = pc
	h.l.onBackendTraffic(h.sock, pc)

	for i, name := range names {
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 1500)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("answer %d: %v (mismatches %d)", i, err, h.l.stats.mismatches.Load())
		}
		m := new(dns.Msg)
		if err := m.Unpack(buf[:n]); err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		srv, ok := m.Answer[0].(*dns.SRV)
		if m.Id != uint16(100+i) || len(m.Answer) != 1 || !ok || srv.Target != name || m.IsEdns0() != nil || len(m.Extra) != 1 {
			t.Errorf("answer %d: %v", i, m)
		}
	}
}
