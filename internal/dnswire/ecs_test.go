package dnswire

import (
	"net/netip"
	"testing"
)

func TestECSFromAddr(t *testing.T) {
	cases := []struct {
		addr string
		bits uint8
		want string
		wire int // address octets on the wire
	}{
		{"192.0.2.77", 24, "192.0.2.0/24", 3},
		{"192.0.2.77", 32, "192.0.2.77/32", 4},
		{"192.0.2.77", 40, "192.0.2.77/32", 4},
		{"192.0.2.77", 0, "0.0.0.0/0", 0},
		{"192.0.2.77", 20, "192.0.0.0/20", 3},
		{"::ffff:192.0.2.77", 24, "192.0.2.0/24", 3},
		{"2001:db8:aaaa:bbcc::1", 56, "2001:db8:aaaa:bb00::/56", 7},
		{"::1", 56, "::/56", 7},
		{"::1", 128, "::1/128", 16},
	}
	for _, c := range cases {
		e := ECSFromAddr(netip.MustParseAddr(c.addr), c.bits)
		if got := e.Prefix().String(); got != c.want || e.AddrLen() != c.wire || e.Scope != 0 {
			t.Errorf("%s/%d: %s with %d octets, want %s with %d", c.addr, c.bits, got, e.AddrLen(), c.want, c.wire)
		}
		opt := e.AppendOption(nil)
		if len(opt) != e.OptionLen() || opt[1] != OptionECS || int(opt[3]) != len(opt)-4 {
			t.Errorf("%s: option %x", c.want, opt)
		}
		back, err := ParseECS(opt[4:])
		if err != nil || back != e {
			t.Errorf("%s: parsed back as %+v, %v", c.want, back, err)
		}
	}
}

func TestParseECSRejects(t *testing.T) {
	for _, d := range [][]byte{
		{0, 1, 24},                           // short
		{0, 3, 24, 0, 1, 2, 3},               // unknown family
		{0, 1, 33, 0, 1, 2, 3, 4},            // prefix longer than IPv4
		{0, 1, 24, 0, 1, 2, 3, 4},            // one octet too many
		{0, 1, 24, 0, 1, 2},                  // one octet short
		{0, 2, 56, 129, 1, 2, 3, 4, 5, 6, 7}, // scope longer than IPv6
	} {
		if _, err := ParseECS(d); err == nil {
			t.Errorf("%x accepted", d)
		}
	}
	// Bits beyond the source prefix are cleared, so the key is the subnet's.
	e, err := ParseECS([]byte{0, 1, 20, 0, 192, 0, 255})
	if err != nil || e.Prefix().String() != "192.0.240.0/20" {
		t.Errorf("got %v, %v", e.Prefix(), err)
	}
}

func TestFindAndRemoveOption(t *testing.T) {
	// An OPT record (root, type 41, class 1232, TTL 0) with a cookie, ECS and padding.
	ecs := ECSFromAddr(netip.MustParseAddr("192.0.2.1"), 24).AppendOption(nil)
	rd := append([]byte{0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8}, ecs...)
	rd = append(rd, 0, 12, 0, 2, 0, 0)
	msg := append([]byte{0, 0, 41, 4, 208, 0, 0, 0, 0, byte(len(rd) >> 8), byte(len(rd))}, rd...)
	h, _, err := ReadRR(msg, 0)
	if err != nil {
		t.Fatal(err)
	}
	off, n, err := FindOption(msg, h, OptionECS)
	if err != nil || off != h.RDOff+12 || n != len(ecs) {
		t.Fatalf("FindOption: %d %d %v", off, n, err)
	}
	if e, found, err := ReadECS(msg, h); !found || err != nil || e.Prefix().String() != "192.0.2.0/24" {
		t.Fatalf("ReadECS: %v %v %v", e.Prefix(), found, err)
	}
	out := RemoveOption(msg, h, off, n)
	h2, end, err := ReadRR(out, 0)
	if err != nil || end != len(out) || h2.RDLen != len(rd)-len(ecs) {
		t.Fatalf("after removal: %+v %d %v", h2, end, err)
	}
	if o, _, _ := FindOption(out, h2, OptionECS); o >= 0 {
		t.Error("ECS still there")
	}
	if o, _, _ := FindOption(out, h2, 12); o < 0 {
		t.Error("padding lost")
	}
	// An option running past its record.
	bad := append([]byte{0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 6}, 0, 8, 0, 9, 0, 1)
	hb, _, _ := ReadRR(bad, 0)
	if _, _, err := FindOption(bad, hb, OptionECS); err == nil {
		t.Error("overrun accepted")
	}
}

// FuzzParseECS: whatever ParseECS accepts writes back to an option that parses to the
// same subnet.
func FuzzParseECS(f *testing.F) {
	f.Add([]byte{0, 1, 24, 0, 192, 0, 2})
	f.Add([]byte{0, 2, 56, 0, 0x20, 1, 0x0d, 0xb8, 0, 0, 0})
	f.Add([]byte{0, 1, 0, 0})
	f.Fuzz(func(t *testing.T, d []byte) {
		e, err := ParseECS(d)
		if err != nil {
			return
		}
		opt := e.AppendOption(nil)
		back, err := ParseECS(opt[4:])
		if err != nil || back != e || len(opt) != e.OptionLen() {
			t.Fatalf("%x: %+v written as %x, read back as %+v, %v", d, e, opt, back, err)
		}
		if !e.Prefix().IsValid() || e.Prefix() != e.Prefix().Masked() {
			t.Fatalf("%x: prefix %v", d, e.Prefix())
		}
	})
}
