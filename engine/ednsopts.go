package engine

import (
	"encoding/binary"

	"github.com/dnsfront/dnsfront/internal/dnswire"
)

// EDNS options that the engine itself answers on stream transports:
//   - Padding (RFC 7830): on DoT, DoH, DoQ and DoH3, an answer to a query that carried the
//     option is padded to a multiple of 468 octets (RFC 8467's recommended policy for
//     responders). Cleartext Do53 is never padded.
//   - edns-tcp-keepalive (RFC 7828): on Do53 TCP and DoT, a query that carries the option
//     gets it back with the connection's idle timeout (Options.TCPIdleTimeout, in units of
//     100 ms), the timeout after which the engine closes the idle connection. Never on UDP,
//     and never on DoQ (RFC 9250 §5.5.2).
//
// The client's options are read in handleQuery (queryExt) and the answer is rewritten just
// before it is delivered (addEDNSOptions), whatever produced it: a backend, the cache, the
// rules or DDR.

const (
	optKeepalive = 11
	optPadding   = 12

	paddingBlock = 468 // RFC 8467 §4.1: responders pad to a multiple of 468 octets

	extPadding   uint8 = 1 << 0 // answer padded
	extKeepalive uint8 = 1 << 1 // answer carries edns-tcp-keepalive
)

// queryExt reads the padding and keepalive options of the query in msg, as they apply
// to transport pr: the bits of the options that its answer must carry. padAll (the
// bind's pad_responses) pads every answer to a query with EDNS on an encrypted transport.
func queryExt(msg []byte, q question, pr proto, padAll bool) uint8 {
	if pr == protoUDP || q.optOff < 0 {
		return 0
	}
	var ext uint8
	if padAll && pr != protoTCP {
		ext = extPadding
	}
	off, err := dnswire.SkipName(msg, q.optOff)
	if err != nil || off+10 > len(msg) {
		return ext
	}
	end := off + 10 + int(binary.BigEndian.Uint16(msg[off+8:]))
	if end > len(msg) {
		return ext
	}
	for o := off + 10; o+4 <= end; {
		code := binary.BigEndian.Uint16(msg[o:])
		n := int(binary.BigEndian.Uint16(msg[o+2:]))
		switch {
		case code == optPadding && pr != protoTCP:
			ext |= extPadding
		case code == optKeepalive && (pr == protoTCP || pr == protoDoT):
			ext |= extKeepalive
		}
		o += 4 + n
	}
	return ext
}

// addEDNSOptions returns m with the options that ext asks for, built in the loop's
// scratch buffer (m may sit in a read buffer, with a pipelined frame after it). Any
// padding or keepalive option the answer already had is replaced. m is returned as it
// is when its OPT record is not the last record, or when it cannot be read.
func (l *loop) addEDNSOptions(ext uint8, m []byte) []byte {
	if len(m) < headerLen {
		return m
	}
	off := headerLen
	var err error
	for i := 0; i < int(dnswire.Count(m, dnswire.Question)); i++ {
		if off, err = dnswire.SkipName(m, off); err != nil {
			return m
		}
		off += 4
	}
	if off, err = dnswire.SkipRRs(m, off, int(dnswire.Count(m, dnswire.Answer))+int(dnswire.Count(m, dnswire.Authority))); err != nil {
		return m
	}
	optStart, rdStart, rdEnd := -1, 0, 0
	for i := 0; i < int(dnswire.Count(m, dnswire.Additional)); i++ {
		start := off
		if off, err = dnswire.SkipName(m, off); err != nil || off+10 > len(m) {
			return m
		}
		end := off + 10 + int(binary.BigEndian.Uint16(m[off+8:]))
		if end > len(m) {
			return m
		}
		if binary.BigEndian.Uint16(m[off:]) == typeOPT {
			if end != len(m) {
				return m
			}
			optStart, rdStart, rdEnd = start, off+10, end
		}
		off = end
	}
	b := l.ext[:0]
	if optStart < 0 {
		// The answer has no OPT record (the query had one): add ours.
		b = append(b, m...)
		b = appendOPT(b, ddrUDPSize)
		rdStart = len(b)
	} else {
		b = append(b, m[:rdStart]...)
		for o := rdStart; o+4 <= rdEnd; {
			code := binary.BigEndian.Uint16(m[o:])
			n := 4 + int(binary.BigEndian.Uint16(m[o+2:]))
			if o+n > rdEnd {
				break
			}
			if code != optPadding && code != optKeepalive {
				b = append(b, m[o:o+n]...)
			}
			o += n
		}
	}
	if ext&extKeepalive != 0 {
		t := l.e.opts.TCPIdleTimeout.Milliseconds() / 100
		t = min(max(t, 0), 0xffff)
		b = append(b, 0, optKeepalive, 0, 2, byte(t>>8), byte(t))
	}
	if ext&extPadding != 0 {
		n := (paddingBlock - (len(b)+4)%paddingBlock) % paddingBlock
		if len(b)+4+n <= maxMsgLen {
			b = append(b, 0, optPadding, byte(n>>8), byte(n))
			for range n {
				b = append(b, 0)
			}
		}
	}
	binary.BigEndian.PutUint16(b[rdStart-2:], uint16(len(b)-rdStart))
	l.ext = b
	return b
}
