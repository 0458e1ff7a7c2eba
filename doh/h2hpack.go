package doh

import (
	"errors"
	"fmt"

	"golang.org/x/net/http2/hpack"
)

// The HPACK decoder (RFC 7541) of request header blocks. x/net's
// hpack.Decoder builds a string for every literal it emits, which is most of
// what an HTTP/2 request costs in allocations; this one hands out []byte
// views that live until the next field, and allocates only when a field
// enters the dynamic table (in steady state clients send indexed fields).
//
// Invariants:
//   - The dynamic table's size (RFC 7541 4.1: name + value + 32 per entry)
//     never exceeds max, and max never exceeds limit, the
//     SETTINGS_HEADER_TABLE_SIZE we advertise (the default, 4096).
//   - A size update is accepted only before the first field of a block (4.2).
//   - No string longer than maxStr is decoded (errHPACKString): the
//     defence against blocks that decode to far more than they weigh.
//   - An error leaves the table in an unknown state: the caller ends the
//     connection (COMPRESSION_ERROR, or ENHANCE_YOUR_CALM for errHPACKString).

var (
	errHPACK       = errors.New("hpack: invalid header block")
	errHPACKString = errors.New("hpack: string over max_header_list_size")
	errHPACKStop   = errors.New("hpack: decoding stopped by the field sink")
	// x/net's decoder lets this pass while the dynamic table is empty; RFC
	// 7541 4.2 does not.
	errHPACKLateSizeUpdate = fmt.Errorf("%w: dynamic table size update after a field", errHPACK)
)

// fieldSink receives decoded fields; name and value are valid only during
// the call. Returning false stops decoding with errHPACKStop.
type fieldSink interface {
	field(name, value []byte) bool
}

type hpackEntry struct{ name, value []byte }

// hpackSlot locates a dynamic table entry in hpackDecoder.buf: the name at
// off, the value right after it.
type hpackSlot struct{ off, nameLen, valueLen uint32 }

// The dynamic table is one byte buffer and a slice of slots, not an
// allocation per entry: an idle connection keeps its client's few indexed
// fields in about half the memory.
type hpackDecoder struct {
	slots   []hpackSlot // oldest first
	buf     []byte      // the entries' bytes; before slots[0].off, dead
	size    int
	max     int
	limit   int
	maxStr  int
	sink    fieldSink
	scratch hpackScratch // Huffman-decoded strings of the current field
}

// hpackScratch collects HuffmanDecode's output without allocating.
type hpackScratch struct{ b []byte }

func (s *hpackScratch) Write(p []byte) (int, error) {
	s.b = append(s.b, p...)
	return len(p), nil
}

func newHPACKDecoder(tableSize, maxStr int, sink fieldSink) *hpackDecoder {
	return &hpackDecoder{max: tableSize, limit: tableSize, maxStr: maxStr, sink: sink}
}

// decode decodes one complete header block.
func (d *hpackDecoder) decode(b []byte) error {
	first := true
	for len(b) > 0 {
		c := b[0]
		var err error
		switch {
		case c&0x80 != 0: // indexed field (6.1)
			var idx uint64
			if idx, b, err = hpackInt(7, b); err != nil {
				return err
			}
			e, ok := d.at(idx)
			if !ok {
				return errHPACK
			}
			if !d.sink.field(e.name, e.value) {
				return errHPACKStop
			}
		case c&0xc0 == 0x40: // literal with incremental indexing (6.2.1)
			if b, err = d.literal(6, true, b); err != nil {
				return err
			}
		case c&0xe0 == 0x20: // dynamic table size update (6.3)
			if !first {
				return errHPACKLateSizeUpdate
			}
			var v uint64
			if v, b, err = hpackInt(5, b); err != nil {
				return err
			}
			if v > uint64(d.limit) {
				return errHPACK
			}
			d.max = int(v)
			d.evict(0)
			d.compact()
			continue
		default: // literal without indexing or never indexed (6.2.2, 6.2.3)
			if b, err = d.literal(4, false, b); err != nil {
				return err
			}
		}
		first = false
	}
	return nil
}

func (d *hpackDecoder) literal(prefix uint8, index bool, b []byte) ([]byte, error) {
	idx, b, err := hpackInt(prefix, b)
	if err != nil {
		return nil, err
	}
	d.scratch.b = d.scratch.b[:0]
	var name, value []byte
	nameStart, nameEnd := -1, -1
	if idx > 0 {
		e, ok := d.at(idx)
		if !ok {
			return nil, errHPACK
		}
		name = e.name
	} else {
		var huff bool
		if name, huff, b, err = d.str(b); err != nil {
			return nil, err
		}
		if huff {
			nameStart, nameEnd = len(d.scratch.b)-len(name), len(d.scratch.b)
		}
	}
	if value, _, b, err = d.str(b); err != nil {
		return nil, err
	}
	if nameStart >= 0 {
		// The value's decoding may have moved the scratch buffer.
		name = d.scratch.b[nameStart:nameEnd]
	}
	if index {
		name, value = d.add(name, value)
	}
	if !d.sink.field(name, value) {
		return nil, errHPACKStop
	}
	return b, nil
}

// str reads a string literal (5.2). A Huffman-coded one is decoded into the
// scratch buffer, a plain one is a view of b.
func (d *hpackDecoder) str(b []byte) (s []byte, huff bool, rest []byte, err error) {
	if len(b) == 0 {
		return nil, false, nil, errHPACK
	}
	huff = b[0]&0x80 != 0
	n, b, err := hpackInt(7, b)
	if err != nil {
		return nil, false, nil, err
	}
	if n > uint64(len(b)) {
		return nil, false, nil, errHPACK
	}
	if n > uint64(d.maxStr) {
		return nil, false, nil, errHPACKString
	}
	raw, rest := b[:n], b[n:]
	if !huff {
		return raw, false, rest, nil
	}
	start := len(d.scratch.b)
	if _, err := hpack.HuffmanDecode(&d.scratch, raw); err != nil {
		return nil, false, nil, errHPACK
	}
	s = d.scratch.b[start:]
	if len(s) > d.maxStr {
		return nil, false, nil, errHPACKString
	}
	return s, true, rest, nil
}

// hpackInt reads an integer with an n-bit prefix (5.1). Values past 2^30
// are refused: no index, length or size we accept comes near.
func hpackInt(n uint8, b []byte) (uint64, []byte, error) {
	if len(b) == 0 {
		return 0, nil, errHPACK
	}
	mask := uint64(1)<<n - 1
	v := uint64(b[0]) & mask
	b = b[1:]
	if v < mask {
		return v, b, nil
	}
	var m uint
	for len(b) > 0 {
		c := b[0]
		b = b[1:]
		v += uint64(c&0x7f) << m
		if v > 1<<30 {
			return 0, nil, errHPACK
		}
		if c&0x80 == 0 {
			return v, b, nil
		}
		m += 7
	}
	return 0, nil, errHPACK
}

// at returns the entry at a 1-based index of the static then the dynamic
// table (2.3.3).
func (d *hpackDecoder) at(i uint64) (hpackEntry, bool) {
	if i == 0 {
		return hpackEntry{}, false
	}
	if i <= uint64(len(hpackStatic)) {
		return hpackStatic[i-1], true
	}
	i -= uint64(len(hpackStatic)) + 1
	if i >= uint64(len(d.slots)) {
		return hpackEntry{}, false
	}
	return d.entry(len(d.slots) - 1 - int(i)), true
}

// entry returns views of slot k's name and value.
func (d *hpackDecoder) entry(k int) hpackEntry {
	sl := d.slots[k]
	n := sl.off + sl.nameLen
	v := n + sl.valueLen
	return hpackEntry{name: d.buf[sl.off:n:n], value: d.buf[n:v:v]}
}

// add inserts a field (4.4): an entry larger than the table empties it.
// It returns views of the field that stay valid until the next add: name
// may have been a view of an entry that had to make room for it (4.4 allows
// that), so the caller uses these, not its own.
func (d *hpackDecoder) add(name, value []byte) ([]byte, []byte) {
	size := len(name) + len(value) + 32
	if size > d.max {
		d.evict(d.max + 1)
		return name, value
	}
	// evict only drops slots: the evicted bytes, which name may point
	// into, stay in place until the entry is copied.
	d.evict(size)
	off := len(d.buf)
	d.buf = append(d.buf, name...)
	d.buf = append(d.buf, value...)
	d.slots = append(d.slots, hpackSlot{off: uint32(off), nameLen: uint32(len(name)), valueLen: uint32(len(value))})
	d.size += size
	d.compact()
	e := d.entry(len(d.slots) - 1)
	return e.name, e.value
}

// evict drops the oldest entries until room more bytes fit under max.
func (d *hpackDecoder) evict(room int) {
	k := 0
	for k < len(d.slots) && d.size+room > d.max {
		sl := d.slots[k]
		d.size -= int(sl.nameLen+sl.valueLen) + 32
		k++
	}
	if k > 0 {
		d.slots = d.slots[:copy(d.slots, d.slots[k:])]
	}
}

// compact moves the live entries to the front of buf once the evicted bytes
// before them are at least half of it, so buf stays within twice the live
// bytes.
func (d *hpackDecoder) compact() {
	if len(d.slots) == 0 {
		d.buf = d.buf[:0]
		return
	}
	dead := d.slots[0].off
	if dead == 0 || int(dead) < len(d.buf)/2 {
		return
	}
	d.buf = d.buf[:copy(d.buf, d.buf[dead:])]
	for k := range d.slots {
		d.slots[k].off -= dead
	}
}

func staticEntry(name, value string) hpackEntry {
	return hpackEntry{name: []byte(name), value: []byte(value)}
}

// hpackStatic is the static table (RFC 7541 Appendix A).
var hpackStatic = [...]hpackEntry{
	staticEntry(":authority", ""),
	staticEntry(":method", "GET"),
	staticEntry(":method", "POST"),
	staticEntry(":path", "/"),
	staticEntry(":path", "/index.html"),
	staticEntry(":scheme", "http"),
	staticEntry(":scheme", "https"),
	staticEntry(":status", "200"),
	staticEntry(":status", "204"),
	staticEntry(":status", "206"),
	staticEntry(":status", "304"),
	staticEntry(":status", "400"),
	staticEntry(":status", "404"),
	staticEntry(":status", "500"),
	staticEntry("accept-charset", ""),
	staticEntry("accept-encoding", "gzip, deflate"),
	staticEntry("accept-language", ""),
	staticEntry("accept-ranges", ""),
	staticEntry("accept", ""),
	staticEntry("access-control-allow-origin", ""),
	staticEntry("age", ""),
	staticEntry("allow", ""),
	staticEntry("authorization", ""),
	staticEntry("cache-control", ""),
	staticEntry("content-disposition", ""),
	staticEntry("content-encoding", ""),
	staticEntry("content-language", ""),
	staticEntry("content-length", ""),
	staticEntry("content-location", ""),
	staticEntry("content-range", ""),
	staticEntry("content-type", ""),
	staticEntry("cookie", ""),
	staticEntry("date", ""),
	staticEntry("etag", ""),
	staticEntry("expect", ""),
	staticEntry("expires", ""),
	staticEntry("from", ""),
	staticEntry("host", ""),
	staticEntry("if-match", ""),
	staticEntry("if-modified-since", ""),
	staticEntry("if-none-match", ""),
	staticEntry("if-range", ""),
	staticEntry("if-unmodified-since", ""),
	staticEntry("last-modified", ""),
	staticEntry("link", ""),
	staticEntry("location", ""),
	staticEntry("max-forwards", ""),
	staticEntry("proxy-authenticate", ""),
	staticEntry("proxy-authorization", ""),
	staticEntry("range", ""),
	staticEntry("referer", ""),
	staticEntry("refresh", ""),
	staticEntry("retry-after", ""),
	staticEntry("server", ""),
	staticEntry("set-cookie", ""),
	staticEntry("strict-transport-security", ""),
	staticEntry("transfer-encoding", ""),
	staticEntry("user-agent", ""),
	staticEntry("vary", ""),
	staticEntry("via", ""),
	staticEntry("www-authenticate", ""),
}
