package dnswire

import (
	"bytes"
	"errors"
	"testing"

	"github.com/miekg/dns"
)

func TestSkipName(t *testing.T) {
	long := bytes.Repeat([]byte{63}, 1)
	for i := 0; i < 4; i++ { // 4 labels of 63 octets: 256 octets before the root
		if i > 0 {
			long = append(long, 63)
		}
		long = append(long, bytes.Repeat([]byte{'a'}, 63)...)
	}
	long = append(long, 0)
	// 3 labels of 63 and one of 61: 254 octets, 255 with the root.
	maxName := append([]byte{}, long[:3*64]...)
	maxName = append(maxName, 61)
	maxName = append(maxName, bytes.Repeat([]byte{'b'}, 61)...)
	maxName = append(maxName, 0)
	cases := []struct {
		name string
		msg  []byte
		off  int
		want int
		err  error
	}{
		{name: "root", msg: []byte{0}, want: 1},
		{name: "two labels", msg: []byte{1, 'a', 2, 'b', 'c', 0, 0xff}, want: 6},
		{name: "at an offset", msg: []byte{9, 9, 1, 'a', 0}, off: 2, want: 5},
		{name: "pointer alone", msg: []byte{0xC0, 12}, want: 2},
		{name: "label then pointer", msg: []byte{1, 'a', 0xC0, 12, 7}, want: 4},
		{name: "255 octets", msg: maxName, want: 255},
		{name: "over 255 octets", msg: long, err: ErrBadName},
		{name: "empty", msg: nil, err: ErrShort},
		{name: "offset past the end", msg: []byte{0}, off: 1, err: ErrShort},
		{name: "no root", msg: []byte{1, 'a'}, err: ErrShort},
		{name: "label past the end", msg: []byte{5, 'a'}, err: ErrShort},
		{name: "cut pointer", msg: []byte{1, 'a', 0xC0}, err: ErrShort},
		{name: "label type 0x40", msg: []byte{0x41, 0}, err: ErrBadName},
		{name: "label type 0x80", msg: []byte{1, 'a', 0x80, 0}, err: ErrBadName},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := SkipName(c.msg, c.off)
			if !errors.Is(err, c.err) || (c.err == nil && got != c.want) {
				t.Fatalf("SkipName = %d, %v; want %d, %v", got, err, c.want, c.err)
			}
		})
	}
}

// packed returns a real message with every section filled, compressed by miekg/dns.
func packed(t testing.TB) []byte {
	m := new(dns.Msg)
	m.SetQuestion("www.Example.org.", dns.TypeA)
	m.Response = true
	for _, s := range []string{"www.example.org. 300 IN A 192.0.2.1", "www.example.org. 300 IN A 192.0.2.2"} {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		m.Answer = append(m.Answer, rr)
	}
	ns, _ := dns.NewRR("example.org. 3600 IN NS ns1.example.org.")
	m.Ns = append(m.Ns, ns)
	m.SetEdns0(1232, true)
	m.Compress = true
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWalkMessage(t *testing.T) {
	msg := packed(t)
	if !IsResponse(msg) || Count(msg, Question) != 1 || Count(msg, Answer) != 2 ||
		Count(msg, Authority) != 1 || Count(msg, Additional) != 1 {
		t.Fatalf("header: response %v, counts %d %d %d %d", IsResponse(msg),
			Count(msg, 0), Count(msg, 1), Count(msg, 2), Count(msg, 3))
	}
	off, err := SkipQuestion(msg, HeaderLen)
	if err != nil {
		t.Fatal(err)
	}
	h, off, err := ReadRR(msg, off)
	if err != nil || h.Type != dns.TypeA || h.Class != dns.ClassINET || h.TTL != 300 || h.RDLen != 4 {
		t.Fatalf("first answer: %+v, %v", h, err)
	}
	if off, err = SkipRRs(msg, off, 2); err != nil {
		t.Fatal(err)
	}
	opt, off, err := ReadRR(msg, off)
	if err != nil || opt.Type != TypeOPT || opt.Class != 1232 || opt.TTL&0x8000 == 0 {
		t.Fatalf("OPT: %+v, %v", opt, err)
	}
	if off != len(msg) {
		t.Fatalf("walk ended at %d of %d", off, len(msg))
	}
	SetCount(msg, Additional, 0)
	if Count(msg, Additional) != 0 {
		t.Fatal("SetCount did not stick")
	}
	// Every cut of the message fails cleanly at the last record.
	for n := len(msg) - 1; n > opt.RDOff-rrFixedLen-1; n-- {
		if _, _, err := ReadRR(msg[:n], opt.RDOff-rrFixedLen-1); !errors.Is(err, ErrShort) {
			t.Fatalf("cut at %d: %v", n, err)
		}
	}
}

func TestSkipQuestionShort(t *testing.T) {
	if _, err := SkipQuestion([]byte{0, 0, 1, 0}, 0); !errors.Is(err, ErrShort) {
		t.Fatalf("err = %v, want ErrShort", err)
	}
}

func TestNoAllocations(t *testing.T) {
	msg := packed(t)
	n := testing.AllocsPerRun(100, func() {
		off, _ := SkipQuestion(msg, HeaderLen)
		off, _ = SkipRRs(msg, off, 3)
		_, _, _ = ReadRR(msg, off)
		_, _, _ = FindOPT(msg)
	})
	if n != 0 {
		t.Fatalf("%v allocations per walk", n)
	}
}

// FuzzWalk checks that no input makes the helpers panic, read out of range or move
// backwards.
func FuzzWalk(f *testing.F) {
	f.Add(packed(f), 0)
	f.Add([]byte{1, 'a', 0xC0}, 0)
	f.Add([]byte{0x41, 0}, 0)
	f.Fuzz(func(t *testing.T, msg []byte, start int) {
		if start < 0 || start > len(msg) {
			start = HeaderLen
		}
		if end, err := SkipName(msg, start); err == nil && (end <= start || end > len(msg)) {
			t.Fatalf("SkipName(%d) = %d of %d", start, end, len(msg))
		}
		if at, h, err := FindOPT(msg); err == nil && at >= 0 && (h.Type != TypeOPT || h.End() > len(msg)) {
			t.Fatalf("FindOPT = %d, %+v of %d", at, h, len(msg))
		}
		off := start
		for off < len(msg) {
			h, next, err := ReadRR(msg, off)
			if err != nil {
				break
			}
			if next <= off || next > len(msg) || h.RDOff+h.RDLen != next || h.TTLOff+6 != h.RDOff {
				t.Fatalf("ReadRR(%d) = %+v, %d of %d", off, h, next, len(msg))
			}
			off = next
		}
	})
}

func TestFindOPT(t *testing.T) {
	msg := packed(t)
	start, h, err := FindOPT(msg)
	if err != nil || h.Type != TypeOPT || msg[start] != 0 || h.End() != len(msg) {
		t.Fatalf("FindOPT = %d, %+v, %v", start, h, err)
	}
	SetCount(msg, Additional, 0)
	if start, _, err := FindOPT(msg); start != -1 || err != nil {
		t.Fatalf("without OPT: %d, %v", start, err)
	}
	SetCount(msg, Answer, 9)
	if start, _, err := FindOPT(msg); start != -1 || !errors.Is(err, ErrShort) {
		t.Fatalf("counts past the end: %d, %v", start, err)
	}
	if start, _, err := FindOPT(msg[:5]); start != -1 || !errors.Is(err, ErrShort) {
		t.Fatalf("short header: %d, %v", start, err)
	}
}
