package doh

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/http2/hpack"
)

// collect is a fieldSink that keeps copies of the fields.
type collect struct{ fields []hpack.HeaderField }

func (c *collect) field(name, value []byte) bool {
	c.fields = append(c.fields, hpack.HeaderField{Name: string(name), Value: string(value)})
	return true
}

// TestHPACKDecoderAgainstXNet encodes random header lists with x/net's
// encoder (Huffman, dynamic table, evictions, table size updates) and
// checks that our decoder reads back exactly what was written, block after
// block on one connection.
func TestHPACKDecoderAgainstXNet(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	names := []string{":method", ":path", "content-type", "x-long", "accept", "user-agent", "x-a", "cookie"}
	for _, tableSize := range []uint32{4096, 256, 0} {
		var buf bytes.Buffer
		enc := hpack.NewEncoder(&buf)
		enc.SetMaxDynamicTableSizeLimit(tableSize)
		sink := &collect{}
		dec := newHPACKDecoder(4096, 8192, sink)
		for block := range 300 {
			buf.Reset()
			var want []hpack.HeaderField
			for range 1 + rng.IntN(12) {
				f := hpack.HeaderField{Name: names[rng.IntN(len(names))], Value: strconv.Itoa(rng.IntN(50))}
				if rng.IntN(5) == 0 {
					f.Value = string(bytes.Repeat([]byte{byte('a' + rng.IntN(26))}, rng.IntN(300)))
				}
				f.Sensitive = rng.IntN(7) == 0
				if err := enc.WriteField(f); err != nil {
					t.Fatal(err)
				}
				want = append(want, hpack.HeaderField{Name: f.Name, Value: f.Value})
			}
			sink.fields = sink.fields[:0]
			if err := dec.decode(buf.Bytes()); err != nil {
				t.Fatalf("table %d block %d: %v", tableSize, block, err)
			}
			if len(sink.fields) != len(want) {
				t.Fatalf("table %d block %d: %d fields, want %d", tableSize, block, len(sink.fields), len(want))
			}
			for i := range want {
				if sink.fields[i] != want[i] {
					t.Fatalf("table %d block %d field %d: %v, want %v", tableSize, block, i, sink.fields[i], want[i])
				}
			}
			if dec.size > dec.max {
				t.Fatalf("table size %d over max %d", dec.size, dec.max)
			}
		}
	}
}

func TestHPACKDecoderErrors(t *testing.T) {
	lit := func(name, value string) []byte { // literal without indexing, new name
		b := appendHPACKInt(nil, 4, 0, 0)
		b = appendHPACKInt(b, 7, 0, uint64(len(name)))
		b = append(b, name...)
		b = appendHPACKInt(b, 7, 0, uint64(len(value)))
		return append(b, value...)
	}
	cases := []struct {
		name  string
		block []byte
		want  error
	}{
		{"index 0", []byte{0x80}, errHPACK},
		{"index past the tables", []byte{0x80 | 70}, errHPACK},
		{"size update after a field", append([]byte{0x82}, 0x20), errHPACK},
		{"size update over the limit", appendHPACKInt(nil, 5, 0x20, 4097), errHPACK},
		{"truncated integer", []byte{0xff, 0x80}, errHPACK},
		{"integer overflow", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, errHPACK},
		{"truncated string", []byte{0x00, 0x05, 'a'}, errHPACK},
		{"string over the limit", lit("x", string(make([]byte, 100))), errHPACKString},
		{"bad Huffman", []byte{0x00, 0x81, 0x00, 0x01, 'a'}, errHPACK},
	}
	for _, tc := range cases {
		dec := newHPACKDecoder(4096, 64, &collect{})
		if err := dec.decode(tc.block); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// A size update first in a block is fine, and evicts.
	dec := newHPACKDecoder(4096, 64, &collect{})
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	enc.WriteField(hpack.HeaderField{Name: "x-a", Value: "b"})
	if err := dec.decode(buf.Bytes()); err != nil || len(dec.slots) != 1 {
		t.Fatalf("%v, %d entries", err, len(dec.slots))
	}
	if err := dec.decode([]byte{0x20, 0x82}); err != nil || len(dec.slots) != 0 || dec.size != 0 {
		t.Fatalf("size update to 0: %v, %d entries, size %d", err, len(dec.slots), dec.size)
	}
}

// FuzzHPACKDecoder compares our decoder with x/net's on arbitrary blocks:
// both accept or both reject, and accepted blocks decode to the same fields.
func FuzzHPACKDecoder(f *testing.F) {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, hf := range []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: "x-a", Value: "hello world"}, {Name: "cookie", Value: "a=b", Sensitive: true}} {
		enc.WriteField(hf)
	}
	f.Add(buf.Bytes(), buf.Bytes())
	f.Add([]byte{0x3f, 0xe1, 0x1f, 0x82}, []byte{0xbe})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		const maxStr = 512
		sink := &collect{}
		ours := newHPACKDecoder(4096, maxStr, sink)
		theirs := hpack.NewDecoder(4096, nil)
		theirs.SetMaxStringLength(maxStr)
		for _, block := range [][]byte{a, b} {
			sink.fields = sink.fields[:0]
			err := ours.decode(block)
			want, werr := theirs.DecodeFull(block)
			if errors.Is(err, errHPACKLateSizeUpdate) {
				return // we are stricter, as RFC 7541 4.2 asks
			}
			if err == nil && werr != nil && strings.Contains(werr.Error(), "size update") {
				return // two updates at the start of a block are legal (RFC 7541 4.2); x/net refuses some
			}
			if (err == nil) != (werr == nil) {
				t.Fatalf("block %x: ours %v, x/net %v", block, err, werr)
			}
			if err != nil {
				return
			}
			if len(want) != len(sink.fields) {
				t.Fatalf("block %x: %d fields, x/net %d", block, len(sink.fields), len(want))
			}
			for i := range want {
				if want[i].Name != sink.fields[i].Name || want[i].Value != sink.fields[i].Value {
					t.Fatalf("block %x field %d: %v, x/net %v", block, i, sink.fields[i], want[i])
				}
			}
		}
	})
}

// Through many evictions in a small table, including fields whose name is
// that of the entry their insertion evicts (RFC 7541 4.4), our decoder's
// one-buffer table reads what x/net's encoder wrote.
func TestHPACKDecoderEvictionAgainstXNet(t *testing.T) {
	for _, size := range []uint32{64, 100, 256, 4096} {
		var buf bytes.Buffer
		enc := hpack.NewEncoder(&buf)
		enc.SetMaxDynamicTableSizeLimit(size)
		sink := &collect{}
		dec := newHPACKDecoder(4096, 8192, sink)
		r := rand.New(rand.NewPCG(uint64(size), 7))
		names := []string{"x-a", "x-bb", "user-agent", "x-a-much-longer-name-for-the-table"}
		for block := range 3000 {
			buf.Reset()
			var want []hpack.HeaderField
			for range 1 + r.IntN(4) {
				f := hpack.HeaderField{Name: names[r.IntN(len(names))], Value: strings.Repeat("v", r.IntN(40))}
				want = append(want, f)
				enc.WriteField(f)
			}
			sink.fields = sink.fields[:0]
			if err := dec.decode(buf.Bytes()); err != nil {
				t.Fatalf("table %d, block %d: %v", size, block, err)
			}
			if len(sink.fields) != len(want) {
				t.Fatalf("table %d, block %d: %d fields, want %d", size, block, len(sink.fields), len(want))
			}
			for i, f := range want {
				if sink.fields[i].Name != f.Name || sink.fields[i].Value != f.Value {
					t.Fatalf("table %d, block %d, field %d: %v, want %v", size, block, i, sink.fields[i], f)
				}
			}
			if dec.size > dec.max || len(dec.buf) > 3*dec.max {
				t.Fatalf("table %d: size %d, buffer %d", size, dec.size, len(dec.buf))
			}
		}
	}
}
