package engine

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// proxyHotPath is the UDP hot path (bench_test.go) with proxy protocol both ways: the
// client's datagrams carry a header that names 192.0.2.77:4242, and the backend takes
// one in front of each query.
func proxyHotPath(tb testing.TB) (*hotPath, *net.UDPConn, func()) {
	fd, client := udpPair(tb)
	h := newHotPath(tb, fd, client)
	st := h.l.current()
	acl, err := NewACL([]string{"127.0.0.1"})
	if err != nil {
		tb.Fatal(err)
	}
	st.Proxy = &ProxyProtocol{ACL: acl, MaxSize: 512}
	h.bind.Proxy.Enabled = true
	st.Backends[0].Proxy = BackendProxy{Use: true}
	src, dst := netip.MustParseAddrPort("192.0.2.77:4242"), netip.MustParseAddrPort("198.51.100.1:53")
	h.query = append(appendProxyHeader(nil, src, dst, false, false), h.query...)
	roundTrip := func() {
		h.listener.in = h.query
		h.l.onUDP(h.listener, h.bind)
		h.readSent()
		_, n, err := parseProxyHeader(h.sent, 512)
		if err != nil {
			panic(err)
		}
		h.ans = append(h.ans[:0], h.answer...)
		copy(h.ans[:2], h.sent[n:n+2]) // the ID the loop chose
		h.backend.in = h.ans
		h.l.onBackendTraffic(h.sock, h.backend)
	}
	return h, client, roundTrip
}

// TestHotPathProxy: the backend's header names the client and destination the incoming
// one named, and the client is answered.
func TestHotPathProxy(t *testing.T) {
	h, client, roundTrip := proxyHotPath(t)
	for i := range 2 {
		roundTrip()
		hdr, n, err := parseProxyHeader(h.sent, 512)
		if err != nil || hdr.src != netip.MustParseAddrPort("192.0.2.77:4242") || hdr.dst != netip.MustParseAddrPort("198.51.100.1:53") {
			t.Fatalf("round %d: backend header %+v %v", i, hdr, err)
		}
		if h.sent[13] != ppAFInet<<4|ppDgram || len(h.sent)-n != len(h.query)-28 {
			t.Fatalf("round %d: datagram % x", i, h.sent[:n])
		}
		_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 4096)
		m, err := client.Read(buf)
		if err != nil || m != len(h.answer) {
			t.Fatalf("round %d: client read %d bytes, %v", i, m, err)
		}
	}
	if v := h.l.ppl.stats.valid.Load(); v != 2 {
		t.Fatalf("valid headers %d, want 2", v)
	}
	if v := h.l.ppl.stats.sentUDP.Load(); v != 2 {
		t.Fatalf("headers sent %d, want 2", v)
	}
}

// BenchmarkHotPathUDPProxy is BenchmarkHotPathUDP with a header read from every query and
// one written in front of every backend query: it must allocate no more than the plain path.
func BenchmarkHotPathUDPProxy(b *testing.B) {
	h, _, roundTrip := proxyHotPath(b)
	h.bench(b, roundTrip, func() int { return int(h.l.stats.responses[protoUDP].Load()) })
}
