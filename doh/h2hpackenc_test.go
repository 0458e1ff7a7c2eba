package doh

import (
	"math/rand/v2"
	"strconv"
	"testing"

	"golang.org/x/net/http2/hpack"
)

// Our encoder's blocks decode, with x/net's decoder, to the fields we meant,
// through table evictions and a peer that lowers its table size midway.
func TestHPACKEncoderAgainstXNet(t *testing.T) {
	var e hpackEncoder
	e.init()
	dec := hpack.NewDecoder(headerTableSize, nil)
	r := rand.New(rand.NewPCG(1, 2))
	for block := range 2000 {
		if block == 1000 {
			e.setPeerLimit(100)
			dec.SetAllowedMaxDynamicTableSize(100)
		}
		var out []byte
		out = e.begin(out)
		want := []hpack.HeaderField{{Name: ":status", Value: "200"}}
		out = e.field(out, ":status", "200", 8, 8, true)
		status := []string{"200", "403", "502", "504"}[r.IntN(4)]
		want = append(want, hpack.HeaderField{Name: ":status", Value: status})
		out = e.field(out, ":status", status, statusIndex(atoi(status)), 8, true)
		want = append(want, hpack.HeaderField{Name: "content-type", Value: "application/dns-message"})
		out = e.field(out, "content-type", "application/dns-message", 0, 31, true)
		n := int64(r.IntN(40))
		want = append(want, hpack.HeaderField{Name: "content-length", Value: strconv.FormatInt(n, 10)})
		out = e.number(out, "content-length", "", n, 28)
		ttl := int64(r.IntN(20))
		want = append(want, hpack.HeaderField{Name: "cache-control", Value: "max-age=" + strconv.FormatInt(ttl, 10)})
		out = e.number(out, "cache-control", "max-age=", ttl, 24)
		want = append(want, hpack.HeaderField{Name: "x-custom-header", Value: "a value long enough to fill the table a little"})
		out = e.field(out, "x-custom-header", "a value long enough to fill the table a little", 0, 0, block%3 != 0)
		got, err := dec.DecodeFull(out)
		if err != nil {
			t.Fatalf("block %d %x: %v", block, out, err)
		}
		if len(got) != len(want) {
			t.Fatalf("block %d: %v, want %v", block, got, want)
		}
		for i := range want {
			if got[i].Name != want[i].Name || got[i].Value != want[i].Value {
				t.Fatalf("block %d field %d: %v, want %v", block, i, got[i], want[i])
			}
		}
		if e.size > e.max {
			t.Fatalf("block %d: table of %d bytes over %d", block, e.size, e.max)
		}
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// A repeated answer's numbers are found in the table: one byte each, no
// allocation.
func TestHPACKEncoderRepeatedNumber(t *testing.T) {
	var e hpackEncoder
	e.init()
	buf := e.begin(nil)
	buf = e.number(buf, "cache-control", "max-age=", 300, 24)
	if allocs := testing.AllocsPerRun(100, func() {
		buf = e.number(buf[:0], "cache-control", "max-age=", 300, 24)
	}); allocs != 0 {
		t.Errorf("%v allocations for a repeated value", allocs)
	}
	if len(buf) != 1 {
		t.Errorf("repeated value encoded in %d bytes, want 1 (indexed)", len(buf))
	}
}
