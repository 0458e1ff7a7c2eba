package dnswire

import (
	"net/netip"
	"testing"
)

// optRecord is an OPT record (root, type 41, class 1232, TTL 0) with the options opts,
// the whole message for these tests.
func optRecord(opts ...[]byte) []byte {
	var rd []byte
	for _, o := range opts {
		rd = append(rd, o...)
	}
	return append([]byte{0, 0, 41, 4, 208, 0, 0, 0, 0, byte(len(rd) >> 8), byte(len(rd))}, rd...)
}

func ecsOpt(prefix string, scope uint8) []byte {
	e := ECSFromPrefix(netip.MustParsePrefix(prefix))
	e.Scope = scope
	return e.AppendOption(nil)
}

func TestCheckECSAnswer(t *testing.T) {
	sent := ECSFromPrefix(netip.MustParsePrefix("192.0.2.0/24"))
	cookie := []byte{0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8}
	for _, c := range []struct {
		name string
		opts [][]byte
		want ECSAnswer
	}{
		{"none", [][]byte{cookie}, ECSAnswer{}},
		{"matching", [][]byte{ecsOpt("192.0.2.0/24", 24)}, ECSAnswer{Count: 1}},
		{"matching, scope 0", [][]byte{cookie, ecsOpt("192.0.2.0/24", 0)}, ECSAnswer{Count: 1, ZeroScope: true}},
		{"family", [][]byte{ecsOpt("::/24", 0)}, ECSAnswer{Count: 1, Mismatch: true}},
		{"source prefix", [][]byte{ecsOpt("192.0.2.0/23", 0)}, ECSAnswer{Count: 1, Mismatch: true}},
		{"address", [][]byte{ecsOpt("192.0.3.0/24", 0)}, ECSAnswer{Count: 1, Mismatch: true}},
		{"two, scope 0", [][]byte{ecsOpt("192.0.2.0/24", 0), cookie, ecsOpt("192.0.2.0/24", 0)}, ECSAnswer{Count: 2, ZeroScope: true}},
		{"two, one scoped", [][]byte{ecsOpt("192.0.2.0/24", 0), ecsOpt("192.0.2.0/24", 24)}, ECSAnswer{Count: 2}},
		{"two, one another subnet", [][]byte{ecsOpt("192.0.2.0/24", 0), ecsOpt("198.51.100.0/24", 0)}, ECSAnswer{Count: 2, Mismatch: true}},
		{"malformed", [][]byte{{0, 8, 0, 5, 0, 1, 24, 0, 192}}, ECSAnswer{Count: 1, Mismatch: true}},
		{"overrun", [][]byte{{0, 8, 0, 9, 0, 1}}, ECSAnswer{Mismatch: true}},
	} {
		msg := optRecord(c.opts...)
		h, _, err := ReadRR(msg, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := CheckECSAnswer(msg, h, sent); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestRemoveOptions(t *testing.T) {
	cookie := []byte{0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8}
	pad := []byte{0, 12, 0, 2, 0, 0}
	a, b := ecsOpt("192.0.2.0/24", 0), ecsOpt("2001:db8::/56", 0)
	msg := optRecord(a, cookie, b, pad, a)
	h, _, _ := ReadRR(msg, 0)
	// From the second option on: the first ECS option stays.
	first := append([]byte(nil), msg...)
	out, h2, err := RemoveOptions(first, h, OptionECS, h.RDOff+len(a))
	if want := optRecord(a, cookie, pad); err != nil || string(out) != string(want) || h2.RDLen != len(want)-11 {
		t.Errorf("from the second option: % x (%+v, %v), want % x", out, h2, err, want)
	}
	out, h2, err = RemoveOptions(msg, h, OptionECS, h.RDOff)
	if want := optRecord(cookie, pad); err != nil || string(out) != string(want) || h2.RDLen != len(want)-11 {
		t.Errorf("all: % x (%+v, %v), want % x", out, h2, err, want)
	}
	if _, _, err := RemoveOptions(msg, h, OptionECS, h.RDOff-1); err == nil {
		t.Error("an offset before the record's data accepted")
	}
}

// FuzzRemoveOptions: whatever the options, none of the removed code is left after the
// offset it starts from unless an error says the options are malformed.
func FuzzRemoveOptions(f *testing.F) {
	f.Add(append(ecsOpt("192.0.2.0/24", 0), ecsOpt("192.0.2.0/24", 0)...))
	f.Add([]byte{0, 8, 0, 9, 0, 1})
	sent := ECSFromPrefix(netip.MustParsePrefix("192.0.2.0/24"))
	f.Fuzz(func(t *testing.T, rd []byte) {
		if len(rd) > 0xffff {
			return
		}
		msg := optRecord(rd)
		h, _, err := ReadRR(msg, 0)
		if err != nil {
			return
		}
		a := CheckECSAnswer(msg, h, sent)
		out, h2, err := RemoveOptions(msg, h, OptionECS, h.RDOff)
		if err != nil {
			if !a.Mismatch {
				t.Fatalf("malformed options passed the check: %+v", a)
			}
			return
		}
		if off, _, err := FindOption(out, h2, OptionECS); err != nil || off >= 0 || h2.End() != len(out) {
			t.Fatalf("after removal % x: ECS at %d (%v)", out, off, err)
		}
	})
}
