package doh

import (
	"bytes"
	"unsafe"

	"github.com/valyala/bytebufferpool"
)

// Headers are a request's path and header fields (pseudo-header fields excepted) as the
// engine's rules read them while its query is being emitted. The storage is a pooled
// buffer that the request holds until it is answered, so an idle session keeps none:
// nothing read from Headers may be kept after emit returns.
type Headers struct {
	// b holds each field as a 2-byte name length, the name, a 2-byte value length and the
	// value (fields too long for that are left out), then the path from b[path:].
	b    []byte
	path int // -1 until setPath
	pb   *bytebufferpool.ByteBuffer
}

// add appends a field, taking a pooled buffer for the first.
func (h *Headers) add(name, value []byte) {
	if len(name) > 0xffff || len(value) > 0xffff || h.pb != nil && h.path >= 0 {
		return
	}
	h.take()
	h.b = append(h.b, byte(len(name)>>8), byte(len(name)))
	h.b = append(h.b, name...)
	h.b = append(h.b, byte(len(value)>>8), byte(len(value)))
	h.b = append(h.b, value...)
}

// setPath records the request's path (target without its query string) after the fields.
func (h *Headers) setPath(target []byte) {
	if i := bytes.IndexByte(target, '?'); i >= 0 {
		target = target[:i]
	}
	h.take()
	h.path = len(h.b)
	h.b = append(h.b, target...)
}

func (h *Headers) take() {
	if h.pb == nil {
		h.pb = bytebufferpool.Get()
		h.b, h.path = h.pb.B[:0], -1
	}
}

// release gives the storage back to the pool.
func (h *Headers) release() {
	if h.pb != nil {
		h.pb.B = h.b[:0]
		bytebufferpool.Put(h.pb)
	}
	*h = Headers{}
}

// Path is the request's path without its query string, valid until emit returns.
func (h *Headers) Path() []byte {
	if h.pb == nil || h.path < 0 {
		return nil
	}
	return h.b[h.path:]
}

// Header returns the value of the first field named name (compared without regard to
// case). The string is a view into the session's buffer, valid until emit returns.
func (h *Headers) Header(name string) (string, bool) {
	b := h.b
	if h.path >= 0 && h.pb != nil {
		b = b[:h.path]
	}
	for len(b) >= 2 {
		n := int(b[0])<<8 | int(b[1])
		k := b[2 : 2+n]
		b = b[2+n:]
		m := int(b[0])<<8 | int(b[1])
		v := b[2 : 2+m]
		b = b[2+m:]
		if len(k) == len(name) && bytes.EqualFold(k, unsafe.Slice(unsafe.StringData(name), len(name))) {
			if len(v) == 0 {
				return "", true
			}
			return unsafe.String(&v[0], len(v)), true
		}
	}
	return "", false
}
