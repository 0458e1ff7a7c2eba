package engine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

func TestProxyHeaderRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name     string
		src, dst string
		tcp, tls bool
		wantSrc  string
		wantDst  string
	}{
		{"v4 udp", "192.0.2.1:5353", "198.51.100.2:53", false, false, "", ""},
		{"v4 tcp tls", "192.0.2.1:40000", "198.51.100.2:853", true, true, "", ""},
		{"v6", "[2001:db8::1]:1", "[2001:db8::2]:443", true, false, "", ""},
		// Mixed families travel as IPv6 and come back unmapped.
		{"mixed", "192.0.2.1:1", "[2001:db8::2]:53", false, false, "192.0.2.1:1", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, dst := netip.MustParseAddrPort(tc.src), netip.MustParseAddrPort(tc.dst)
			b := appendProxyHeader(nil, src, dst, tc.tcp, tc.tls)
			b = append(b, "rest"...)
			h, n, err := parseProxyHeader(b, 512)
			if err != nil {
				t.Fatal(err)
			}
			if string(b[n:]) != "rest" {
				t.Fatalf("header length %d leaves %q", n, b[n:])
			}
			if h.local || h.src != src || h.dst != dst {
				t.Fatalf("got %+v, want %v → %v", h, src, dst)
			}
			if tc.tls != bytes.Contains(b[:n], []byte{ppTLVSSL, 0, 0}) {
				t.Fatalf("SSL TLV presence wrong in % x", b[:n])
			}
			wantTransport := byte(ppDgram)
			if tc.tcp {
				wantTransport = ppStream
			}
			if b[13]&0xf != wantTransport {
				t.Fatalf("transport %x", b[13])
			}
			// Every proper prefix asks for more.
			for i := range n {
				if _, _, err := parseProxyHeader(b[:i], 512); !errors.Is(err, errPPShort) {
					t.Fatalf("prefix of %d bytes: %v, want errPPShort", i, err)
				}
			}
		})
	}
}

// The header dnsdist 1.7 sends for a UDP query from 127.0.0.2:5300 to 127.0.0.1:53
// (makeProxyHeader), and the LOCAL header of its health checks.
func TestProxyHeaderDnsdistBytes(t *testing.T) {
	b := []byte("\r\n\r\n\x00\r\nQUIT\n\x21\x12\x00\x0c\x7f\x00\x00\x02\x7f\x00\x00\x01\x14\xb4\x00\x35")
	h, n, err := parseProxyHeader(b, 512)
	if err != nil || n != 28 || h.src != netip.MustParseAddrPort("127.0.0.2:5300") || h.dst != netip.MustParseAddrPort("127.0.0.1:53") {
		t.Fatalf("got %+v %d %v", h, n, err)
	}
	if got := appendProxyHeader(nil, h.src, h.dst, false, false); !bytes.Equal(got, b) {
		t.Fatalf("we write % x, dnsdist % x", got, b)
	}
	local := []byte("\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00")
	if !bytes.Equal(appendProxyLocal(nil), local) {
		t.Fatalf("LOCAL header % x", appendProxyLocal(nil))
	}
	if h, n, err := parseProxyHeader(local, 512); err != nil || !h.local || n != 16 {
		t.Fatalf("LOCAL: %+v %d %v", h, n, err)
	}
}

func TestProxyHeaderRefused(t *testing.T) {
	good := appendProxyHeader(nil, netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("192.0.2.2:53"), false, false)
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for _, tc := range []struct {
		name string
		b    []byte
		max  int
		want error
	}{
		{"dns query", []byte{0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0}, 512, errPPInvalid},
		{"bad signature", mod(func(b []byte) []byte { b[3] = 'x'; return b }), 512, errPPInvalid},
		{"version 1", mod(func(b []byte) []byte { b[12] = 0x11; return b }), 512, errPPInvalid},
		{"version 1 short", mod(func(b []byte) []byte { b[12] = 0x11; return b[:13] }), 512, errPPInvalid},
		{"command 2", mod(func(b []byte) []byte { b[12] = 0x22; return b }), 512, errPPInvalid},
		{"unspec family", mod(func(b []byte) []byte { b[13] = 0x02; return b }), 512, errPPInvalid},
		{"unix family", mod(func(b []byte) []byte { b[13] = 0x31; return b }), 512, errPPInvalid},
		{"transport 0", mod(func(b []byte) []byte { b[13] = 0x10; return b }), 512, errPPInvalid},
		{"length below addresses", mod(func(b []byte) []byte { binary.BigEndian.PutUint16(b[14:], 11); return b[:27] }), 512, errPPInvalid},
		{"broken tlv", mod(func(b []byte) []byte { binary.BigEndian.PutUint16(b[14:], 14); return append(b, 1, 0) }), 512, errPPInvalid},
		{"tlv past end", mod(func(b []byte) []byte { binary.BigEndian.PutUint16(b[14:], 15); return append(b, 1, 0, 9) }), 512, errPPInvalid},
		{"too large", good, 27, errPPTooLarge},
		{"declared too large", mod(func(b []byte) []byte { binary.BigEndian.PutUint16(b[14:], 1000); return b[:16] }), 512, errPPTooLarge},
	} {
		if _, _, err := parseProxyHeader(tc.b, tc.max); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestProxyHeaderNoAlloc(t *testing.T) {
	b := appendProxyHeader(nil, netip.MustParseAddrPort("[2001:db8::1]:1"), netip.MustParseAddrPort("[2001:db8::2]:53"), false, true)
	out := make([]byte, 0, 128)
	if n := testing.AllocsPerRun(100, func() {
		if _, _, err := parseProxyHeader(b, 512); err != nil {
			t.Fatal(err)
		}
		out = appendProxyHeader(out[:0], netip.MustParseAddrPort("192.0.2.1:1"), netip.AddrPort{}, false, true)
	}); n != 0 {
		t.Fatalf("%v allocations per header", n)
	}
}

// FuzzProxyHeader: the parser never panics, never claims more than it was given or than
// max, and what it accepts it writes back to an equivalent header.
func FuzzProxyHeader(f *testing.F) {
	f.Add(appendProxyHeader(nil, netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("192.0.2.2:53"), false, true), 512)
	f.Add(appendProxyHeader(nil, netip.MustParseAddrPort("[::1]:1"), netip.MustParseAddrPort("[::1]:53"), true, false), 40)
	f.Add(appendProxyLocal(nil), 16)
	f.Add([]byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0f\x7f\x00\x00\x01\x7f\x00\x00\x01\x00\x01\x00\x02\x04\x00\x00"), 512)
	f.Fuzz(func(t *testing.T, b []byte, max int) {
		h, n, err := parseProxyHeader(b, max)
		if err != nil {
			if n != 0 {
				t.Fatalf("error %v with length %d", err, n)
			}
			return
		}
		if n < ppFixedLen || n > len(b) || n > max {
			t.Fatalf("length %d of %d bytes, max %d", n, len(b), max)
		}
		if h.local {
			return
		}
		again, m, err := parseProxyHeader(appendProxyHeader(nil, h.src, h.dst, b[13]&0xf == ppStream, false), 1<<16)
		if err != nil || m == 0 || again != h {
			t.Fatalf("rewritten header %+v %v, want %+v", again, err, h)
		}
	})
}
