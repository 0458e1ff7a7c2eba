package engine

import (
	"encoding/binary"
	"net"
	"testing"

	"github.com/miekg/dns"
)

// tcpBackendPath is hotPath with the backend reached over TCP (tcp_only).
func tcpBackendPath(tb testing.TB) *hotPath {
	fd, client := udpPair(tb)
	h := newHotPath(tb, fd, client)
	h.l.state.Backends[0].TCPOnly = true
	h.sock.tcp = true
	h.l.udp[0], h.l.tcp[0] = nil, h.sock
	return h
}

// roundTripTCP sends the client's query and answers it as the TCP backend would, the
// length prefix stripped by the caller of onBackendAnswer.
func (h *hotPath) roundTripTCP() {
	h.listener.in = h.query
	h.l.onUDP(h.listener, h.bind)
	h.ans = append(h.ans[:0], h.answer...)
	copy(h.ans[:2], h.backend.out[2:4]) // the ID the loop chose
	h.l.onBackendAnswer(h.sock, h.ans)
}

// A query to a TCP backend goes out as one length-prefixed frame.
func TestTCPBackendFrame(t *testing.T) {
	h := tcpBackendPath(t)
	h.listener.in = h.query
	h.l.onUDP(h.listener, h.bind)
	out := h.backend.out
	if len(out) < 2+headerLen || int(binary.BigEndian.Uint16(out)) != len(out)-2 {
		t.Fatalf("frame of %d bytes with length prefix %d", len(out), binary.BigEndian.Uint16(out))
	}
	sent := new(dns.Msg)
	if err := sent.Unpack(out[2:]); err != nil {
		t.Fatalf("query sent to the backend: %v", err)
	}
	if sent.Question[0].Name != "www.example.com." || sent.IsEdns0() == nil || sent.IsEdns0().UDPSize() != 1232 {
		t.Errorf("query sent to the backend: %v", sent)
	}
	if _, ok := h.sock.pending[sent.Id]; !ok {
		t.Errorf("no query pending under the ID sent, %#x", sent.Id)
	}
}

// BenchmarkHotPathTCPBackend is BenchmarkHotPathUDP with the backend reached over TCP.
func BenchmarkHotPathTCPBackend(b *testing.B) {
	h := tcpBackendPath(b)
	h.bench(b, h.roundTripTCP, func() int { return int(h.l.stats.responses[protoUDP].Load()) })
}

// A query too large to take an added OPT record within a message's 65535 bytes goes to
// the backend as the client sent it: the frame's length prefix would wrap otherwise and
// the backend connection, shared by the loop's queries, would lose its framing.
func TestLargestQueryKeepsFraming(t *testing.T) {
	h := tcpBackendPath(t)
	const size = 65535
	q := make([]byte, 0, size)
	q = append(q, 0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1) // RD, one question, one additional
	q = append(q, 1, 'a', 0, 0, 1, 0, 1)                          // a. A IN
	rdlen := size - len(q) - 11
	q = append(q, 0, 0, 16, 0, 1, 0, 0, 0, 0, byte(rdlen>>8), byte(rdlen)) // . TXT IN, no OPT
	q = append(q, make([]byte, rdlen)...)
	if len(q) != size {
		t.Fatalf("query of %d bytes", len(q))
	}
	from := h.listener.remote.(*net.UDPAddr).AddrPort()
	h.l.onDatagram(h.listener.fd, h.bind, q, from.Addr(), int(from.Port()))
	out := h.backend.out
	if n := int(binary.BigEndian.Uint16(out)); n != len(out)-2 {
		t.Fatalf("frame of %d bytes with length prefix %d", len(out)-2, n)
	}
	if len(h.sock.pending) != 1 {
		t.Fatalf("%d queries pending, want 1", len(h.sock.pending))
	}
}
