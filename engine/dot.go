package engine

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/dnsfront/dnsfront/tlsframe"
	"github.com/panjf2000/gnet/v2"
)

// dotStream is DNS over TLS (RFC 7858): 2-byte length frames inside TLS records. Frames
// may span records and records may carry several frames; partial frames wait in in.
type dotStream struct {
	t   *tlsframe.Conn
	in  []byte
	bad bool
	pp  *proxyIn // a PROXY header expected inside TLS (proxy.go); nil: none
	// full reports that the connection is at MaxTCPInFlight: frames wait in in, and
	// records in gnet's buffer, until answers drain and the engine wakes the connection.
	full func() bool
}

func (d *dotStream) setFull(full func() bool) { d.full = full }

func newDoTStream(b *BindOptions) func(gnet.Conn, *loop, netip.AddrPort) stream {
	return func(gc gnet.Conn, l *loop, peer netip.AddrPort) stream {
		return &dotStream{t: tlsframe.NewConn(gc, b.TLSStore, l.idx, b.Handshaker, peer)}
	}
}

func (d *dotStream) read(gc gnet.Conn, query func([]byte, uint64)) error {
	// Frames held back at the limit go first, in order.
	if !d.frames(query) {
		return nil
	}
	return d.t.OnTraffic(gc, func(p []byte) {
		if p, d.bad = d.pp.inside(p, d.bad); len(p) == 0 {
			return
		}
		d.in = append(d.in, p...)
		d.frames(query)
	})
}

// frames hands the complete frames in d.in to query until the connection is full; it
// reports whether it may read more.
func (d *dotStream) frames(query func([]byte, uint64)) bool {
	off := 0
	room := true
	for len(d.in)-off >= 2 && !d.bad {
		if d.full != nil && d.full() {
			room = false
			break
		}
		n := int(binary.BigEndian.Uint16(d.in[off:]))
		if n < headerLen {
			d.bad = true // not DNS: answer what is pending, then close
			break
		}
		if len(d.in)-off < 2+n {
			break
		}
		query(d.in[off+2:off+2+n], 0)
		off += 2 + n
	}
	if off > 0 {
		m := copy(d.in, d.in[off:])
		d.in = d.in[:m]
	}
	return room && !d.bad
}

func (d *dotStream) answer(_ uint64, msg []byte) {
	var hdr [2]byte
	binary.BigEndian.PutUint16(hdr[:], uint16(len(msg)))
	d.t.Write(hdr[:])
	d.t.Write(msg)
}

func (d *dotStream) fail(tag uint64, _ failKind, msg []byte) {
	if msg == nil {
		d.bad = true // a frame that is not a DNS query: the connection goes
		return
	}
	d.answer(tag, msg)
}

func (d *dotStream) flush(gc gnet.Conn) error { return d.t.Flush(gc) }
func (d *dotStream) Expired(time.Time) bool   { return false } // tlsframe times out handshakes itself
func (d *dotStream) wantClose() bool          { return d.bad }
func (d *dotStream) close()                   { d.t.OnClose() }
func (d *dotStream) shutdown(gc gnet.Conn)    { _ = d.t.SendCloseNotify(gc) }
