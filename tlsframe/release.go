package tlsframe

import (
	"bytes"
	"crypto/tls"
	"reflect"
	"sync"
	"unsafe"
)

// crypto/tls keeps, per connection and for the connection's life, the
// buffers its handshake grew: rawInput (records as read, sized by the
// ClientHello's record plus 512 bytes) and hand (handshake messages, sized by
// the ClientHello), about 3 kB with a post-quantum key share, and it offers
// no call to release them. An idle DoT connection needs neither: the next
// query's record regrows rawInput to its own size, and hand is used again
// only by a post-handshake message (KeyUpdate). So once a connection is on
// its loop and both are empty, they are dropped (dnsdist's
// release_buffers does the same for OpenSSL's).
//
// The fields are reached by their offsets, found by name and type through
// reflection once: if a Go release renames them or changes their types,
// tlsBuffers reports !ok and nothing is released (contract_test.go fails
// then, so the loss is seen in CI, not in production RSS). Only empty
// buffers are touched, only on the loop, after the handshake goroutine is
// done with the tls.Conn: crypto/tls reads these fields only inside its own
// calls.
type tlsBufferOffsets struct {
	rawInput, input, hand uintptr
	ok                    bool
}

var tlsBuffers = sync.OnceValue(func() tlsBufferOffsets {
	t := reflect.TypeFor[tls.Conn]()
	buf, rd := reflect.TypeFor[bytes.Buffer](), reflect.TypeFor[bytes.Reader]()
	raw, ok1 := t.FieldByName("rawInput")
	in, ok2 := t.FieldByName("input")
	hand, ok3 := t.FieldByName("hand")
	if !ok1 || !ok2 || !ok3 || raw.Type != buf || in.Type != rd || hand.Type != buf {
		return tlsBufferOffsets{}
	}
	return tlsBufferOffsets{rawInput: raw.Offset, input: in.Offset, hand: hand.Offset, ok: true}
})

// releaseTLSBuffers drops tc's empty read buffers and reports whether both
// are released (false: one held bytes, try again after the next read pass).
// Call it on the loop, between calls into tc.
func releaseTLSBuffers(tc *tls.Conn) bool {
	o := tlsBuffers()
	if !o.ok {
		return true
	}
	p := unsafe.Pointer(tc)
	raw := (*bytes.Buffer)(unsafe.Add(p, o.rawInput))
	in := (*bytes.Reader)(unsafe.Add(p, o.input))
	hand := (*bytes.Buffer)(unsafe.Add(p, o.hand))
	done := true
	// input's bytes live in rawInput's array: both go, or neither.
	if raw.Len() == 0 && in.Len() == 0 {
		in.Reset(nil)
		*raw = bytes.Buffer{}
	} else {
		done = false
	}
	if hand.Len() == 0 {
		*hand = bytes.Buffer{}
	} else {
		done = false
	}
	return done
}

// tlsBufferCaps reports the capacities of tc's rawInput and hand (tests).
func tlsBufferCaps(tc *tls.Conn) (rawInput, hand int, ok bool) {
	o := tlsBuffers()
	if !o.ok {
		return 0, 0, false
	}
	p := unsafe.Pointer(tc)
	return (*bytes.Buffer)(unsafe.Add(p, o.rawInput)).Cap(), (*bytes.Buffer)(unsafe.Add(p, o.hand)).Cap(), true
}
