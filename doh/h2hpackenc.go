package doh

import (
	"strconv"

	"golang.org/x/net/http2/hpack"
)

// The HPACK encoder (RFC 7541) of our response header blocks. x/net's
// hpack.Encoder keeps two maps and a table that grows to the peer's 4096
// bytes (about 900 bytes on a connection that answered one query, more on a
// busy one). Ours knows the few fields we send: static-table names by index,
// and a dynamic table bounded by encTableSize, enough for the fields that
// repeat from one answer to the next (content-type, content-length and
// cache-control of a repeated answer, custom headers).
//
// Invariants:
//   - The table we index from is always the newest entries of the peer's
//     decoder table: we announce our size (a dynamic table size update) in
//     the first block and whenever the peer lowers SETTINGS_HEADER_TABLE_SIZE,
//     and we evict exactly as RFC 7541 4.4 says.
//   - Values entered in the table are strings that outlive the entry:
//     constants, the configuration's custom headers, or numbers made once
//     (number): answers to the same questions repeat their length and TTL,
//     so a repeated number is found in the table and costs no allocation.

// encTableSize bounds our encoder's dynamic table (RFC 7541 sizes: name +
// value + 32 per entry): the fields of one answer and a few repeats.
const encTableSize = 512

type hpackEncEntry struct{ name, value string }

type hpackEncoder struct {
	dyn    []hpackEncEntry // oldest first
	size   int
	max    int
	update bool // a dynamic table size update starts the next block
}

func (e *hpackEncoder) init() { e.max, e.update = encTableSize, true }

// setPeerLimit applies the peer's SETTINGS_HEADER_TABLE_SIZE.
func (e *hpackEncoder) setPeerLimit(v uint32) {
	if int64(v) < int64(e.max) {
		e.max = int(v)
		e.evict(0)
		e.update = true
	}
}

// begin starts a header block.
func (e *hpackEncoder) begin(dst []byte) []byte {
	if e.update {
		e.update = false
		dst = appendHPACKInt(dst, 5, 0x20, uint64(e.max))
	}
	return dst
}

// field appends one field. full is the static index of name: value (0 if
// none), nameIdx the static index of the name (0: the name is written as
// a literal). index enters the field in the dynamic table when it is new.
func (e *hpackEncoder) field(dst []byte, name, value string, full, nameIdx int, index bool) []byte {
	if full > 0 {
		return appendHPACKInt(dst, 7, 0x80, uint64(full))
	}
	for i := len(e.dyn) - 1; i >= 0; i-- {
		if en := e.dyn[i]; en.value == value && en.name == name {
			return appendHPACKInt(dst, 7, 0x80, uint64(len(hpackStatic)+len(e.dyn)-i))
		}
	}
	size := len(name) + len(value) + 32
	if !index || size > e.max {
		// Literal without indexing (6.2.2).
		dst = appendHPACKInt(dst, 4, 0x00, uint64(nameIdx))
	} else {
		// Literal with incremental indexing (6.2.1).
		dst = appendHPACKInt(dst, 6, 0x40, uint64(nameIdx))
		e.evict(size)
		e.dyn = append(e.dyn, hpackEncEntry{name, value})
		e.size += size
	}
	if nameIdx == 0 {
		dst = appendHPACKString(dst, name)
	}
	return appendHPACKString(dst, value)
}

// number appends a field whose value is prefix and n in decimal
// (content-length, cache-control), indexed from the table when it is there.
func (e *hpackEncoder) number(dst []byte, name, prefix string, n int64, nameIdx int) []byte {
	var b [32]byte
	v := strconv.AppendInt(append(b[:0], prefix...), n, 10)
	for i := len(e.dyn) - 1; i >= 0; i-- {
		if en := e.dyn[i]; en.value == string(v) && en.name == name {
			return appendHPACKInt(dst, 7, 0x80, uint64(len(hpackStatic)+len(e.dyn)-i))
		}
	}
	return e.field(dst, name, string(v), 0, nameIdx, true)
}

// evict drops the oldest entries until room more bytes fit under max.
func (e *hpackEncoder) evict(room int) {
	k := 0
	for k < len(e.dyn) && e.size+room > e.max {
		e.size -= len(e.dyn[k].name) + len(e.dyn[k].value) + 32
		k++
	}
	if k > 0 {
		n := copy(e.dyn, e.dyn[k:])
		clear(e.dyn[n:])
		e.dyn = e.dyn[:n]
	}
}

// appendHPACKInt appends v with an n-bit prefix (5.1); flags fill the bits
// of the first byte above the prefix.
func appendHPACKInt(dst []byte, n uint8, flags byte, v uint64) []byte {
	mask := uint64(1)<<n - 1
	if v < mask {
		return append(dst, flags|byte(v))
	}
	dst = append(dst, flags|byte(mask))
	v -= mask
	for v >= 0x80 {
		dst = append(dst, byte(v)|0x80)
		v >>= 7
	}
	return append(dst, byte(v))
}

// appendHPACKString appends a string literal (5.2), Huffman-coded when that
// is shorter.
func appendHPACKString(dst []byte, s string) []byte {
	if h := hpack.HuffmanEncodeLength(s); h < uint64(len(s)) {
		dst = appendHPACKInt(dst, 7, 0x80, h)
		return hpack.AppendHuffmanString(dst, s)
	}
	dst = appendHPACKInt(dst, 7, 0, uint64(len(s)))
	return append(dst, s...)
}

// staticNameIndex is the static table index of name, 0 if it has none.
func staticNameIndex(name string) int {
	for i := range hpackStatic {
		if string(hpackStatic[i].name) == name {
			return i + 1
		}
	}
	return 0
}
