package e2e

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// header builds a 12-byte DNS header.
func header(id uint16, flags uint16, qd, an, ns, ar uint16) []byte {
	b := make([]byte, 0, 12)
	for _, v := range []uint16{id, flags, qd, an, ns, ar} {
		b = binary.BigEndian.AppendUint16(b, v)
	}
	return b
}

// question is the wire form of "a.test. IN A" after a header.
var questionWire = []byte{1, 'a', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1}

// badQueries are messages that a Do53 frontend must drop as non-compliant, by name.
func badQueries(t *testing.T) map[string][]byte {
	t.Helper()
	resp := NewQuery("www.example.test", dns.TypeA)
	resp.Response = true
	respWire, err := resp.Pack()
	if err != nil {
		t.Fatal(err)
	}
	longName := header(7, 0x0100, 1, 0, 0, 0)
	for range 5 {
		longName = append(longName, 63)
		longName = append(longName, strings.Repeat("x", 63)...)
	}
	longName = append(longName, 0, 0, 1, 0, 1)
	return map[string][]byte{
		"short":                    {0x12, 0x34, 0x01, 0x00, 0x00},
		"header only, no question": header(1, 0x0100, 0, 0, 0, 0),
		"QR=1 (a response)":        respWire,
		"label past the end":       append(header(2, 0x0100, 1, 0, 0, 0), 63, 'a', 'b'),
		"question without type":    append(header(3, 0x0100, 1, 0, 0, 0), 1, 'a', 0),
		"pointer loop in question": append(header(4, 0x0100, 1, 0, 0, 0), 0xc0, 12, 0, 1, 0, 1),
		"reserved label type":      append(header(5, 0x0100, 1, 0, 0, 0), 0x80, 0, 0, 1, 0, 1),
		"name over 255 bytes":      longName,
		"65535 questions":          append(header(6, 0x0100, 0xffff, 0, 0, 0), questionWire...),
		"65535 answers claimed":    append(header(8, 0x0100, 1, 0xffff, 0, 0), questionWire...),
		"65535 additional claimed": append(header(9, 0x0100, 1, 0, 0, 0xffff), questionWire...),
		"additional record cut":    append(append(header(10, 0x0100, 1, 0, 0, 1), questionWire...), 0, 0, 41, 0x10),
		"rdlength past the end":    append(append(header(11, 0x0100, 1, 0, 0, 1), questionWire...), 0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 200),
	}
}

// TestGarbageUDP: malformed datagrams get no answer, are counted as non_compliant, and the
// server answers good queries afterwards, on the same socket and others.
func TestGarbageUDP(t *testing.T) {
	t.Parallel()
	be := StartBackend(t, BackendOptions{Records: exampleRecords})
	d := startFE(t, do53FE(be.Addr))
	addr := d.Addr("dns")
	before := d.Metric(`dnsfront_dropped_queries_total{reason="non_compliant"}`)

	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	bad := badQueries(t)
	for _, m := range bad {
		if _, err := conn.Write(m); err != nil {
			t.Fatal(err)
		}
	}
	// Then a good query on the same socket: the first datagram back must be its answer,
	// since every garbage datagram before it must have been dropped.
	good := NewQuery("www.example.test", dns.TypeA)
	good.Id = 0xbeef
	wire, _ := good.Pack()
	if _, err := conn.Write(wire); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 65535)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no answer to a good query after garbage: %v", err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(buf[:n]); err != nil || r.Id != good.Id || len(r.Answer) != 2 {
		t.Fatalf("first datagram back is not the good query's answer (id %d, err %v): %v", r.Id, err, r)
	}
	after := d.WaitMetric(`dnsfront_dropped_queries_total{reason="non_compliant"}`, 10*time.Second, func(v float64) bool { return v >= before+float64(len(bad)) })
	if after-before != float64(len(bad)) {
		t.Errorf(`dnsfront_dropped_queries_total{reason="non_compliant"} went %v → %v, want +%d`, before, after, len(bad))
	}

	// Random datagrams, some shaped like queries (QR=0, one question) to get past the
	// header checks, and a compression loop in the additional section that a parser
	// following pointers would spin on.
	rnd := rand.New(rand.NewPCG(42, 7))
	for i := range 300 {
		m := make([]byte, 1+rnd.IntN(600))
		for j := range m {
			m[j] = byte(rnd.Uint32())
		}
		if i%2 == 0 && len(m) >= 12 {
			copy(m[2:], []byte{0x01, 0x00, 0x00, 0x01})
		}
		_, _ = conn.Write(m)
	}
	loop := append(append(header(12, 0x0100, 1, 0, 0, 1), questionWire...), 0xc0, 24, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0)
	_, _ = conn.Write(loop)
	for _, proto := range []string{"udp", "tcp"} {
		r := MustExchange(t, proto, addr, NewQuery("www.example.test", dns.TypeA))
		if len(r.Answer) != 2 {
			t.Errorf("%s after random garbage: %v", proto, r)
		}
	}
}

// TestGarbageTCP: bad lengths close the connection, garbage frames are dropped, half
// frames followed by a close leave nothing behind, and the server keeps answering.
func TestGarbageTCP(t *testing.T) {
	t.Parallel()
	be := StartBackend(t, BackendOptions{Records: exampleRecords})
	d := startFE(t, do53FE(be.Addr))
	addr := d.Addr("dns")
	before := d.Metric(`dnsfront_dropped_queries_total{reason="non_compliant"}`)

	send := func(name string, b []byte, wantClosed bool) {
		t.Helper()
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		defer conn.Close()
		if _, err := conn.Write(b); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !wantClosed {
			return
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := conn.Read(make([]byte, 64)); n != 0 || err == nil || isTimeout(err) {
			t.Errorf("%s: read %d bytes, err %v; want the connection closed", name, n, err)
		}
	}
	frame := func(m []byte) []byte { return append(binary.BigEndian.AppendUint16(nil, uint16(len(m))), m...) }

	send("length 0", []byte{0, 0}, true)
	send("length 5 (shorter than a header)", []byte{0, 5, 1, 2, 3, 4, 5}, true)
	counted := 2
	// Bad frames of the right length: dropped and counted.
	var frames []byte
	for _, m := range badQueries(t) {
		if len(m) >= 12 {
			frames = append(frames, frame(m)...)
			counted++
		}
	}
	send("malformed frames", frames, false)
	send("half a length", []byte{0}, false)
	send("half a frame", append([]byte{0, 100}, make([]byte, 10)...), false)
	send("length 65535, 1 KiB of it", append([]byte{0xff, 0xff}, make([]byte, 1024)...), false)
	rnd := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		b := make([]byte, 1+rnd.IntN(4096))
		for j := range b {
			b[j] = byte(rnd.Uint32())
		}
		send("random bytes", b, false)
	}

	// A connection that sent a malformed frame and then a good one.
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	good := NewQuery("www.example.test", dns.TypeA)
	wire, _ := good.Pack()
	bad := badQueries(t)["QR=1 (a response)"]
	counted++
	_, _ = conn.Write(append(frame(bad), frame(wire)...))
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	dc := &dns.Conn{Conn: conn}
	if r, err := dc.ReadMsg(); err != nil || r.Id != good.Id || len(r.Answer) != 2 {
		t.Errorf("good query after a malformed frame on the same connection: %v, err %v", r, err)
	}

	for _, proto := range []string{"tcp", "udp"} {
		r := MustExchange(t, proto, addr, NewQuery("www.example.test", dns.TypeA))
		if len(r.Answer) != 2 {
			t.Errorf("%s after garbage: %v", proto, r)
		}
	}
	after := d.WaitMetric(`dnsfront_dropped_queries_total{reason="non_compliant"}`, 10*time.Second, func(v float64) bool { return v >= before+float64(counted) })
	if after < before+float64(counted) {
		t.Errorf(`dnsfront_dropped_queries_total{reason="non_compliant"} went %v → %v, want at least +%d`, before, after, counted)
	}
}
