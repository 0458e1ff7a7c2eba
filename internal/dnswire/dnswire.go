// Package dnswire reads DNS messages in wire format without unpacking them.
//
// The helpers follow miekg/dns's (msg, off) -> (value, newOff, error) shape and never
// allocate: the engine, the DoH session and the packet cache run them on every query,
// where dns.Msg.Unpack (or even dns.UnpackDomainName, which builds a string) costs too
// much. They check bounds and label types and never follow a compression pointer, so a
// hostile message cannot make them loop or read out of range. They hold no state and are
// safe for concurrent use.
package dnswire

import (
	"encoding/binary"
	"errors"
)

const (
	// HeaderLen is the length of the fixed message header.
	HeaderLen = 12
	// MaxNameLen is the longest a name may be on the wire, root label included (RFC 1035 §2.3.4).
	MaxNameLen = 255
	// TypeOPT is the EDNS(0) pseudo-record type (RFC 6891).
	TypeOPT = 41
	// rrFixedLen is the part of a record after its owner name: type, class, TTL, rdlength.
	rrFixedLen = 10
)

// Sections, as indexes for Count.
const (
	Question   = 0
	Answer     = 1
	Authority  = 2
	Additional = 3
)

var (
	// ErrShort is returned when a name or record runs past the end of the message.
	ErrShort = errors.New("dnswire: message truncated")
	// ErrBadName is returned for a reserved label type (0x40, 0x80) or a name over
	// MaxNameLen octets.
	ErrBadName = errors.New("dnswire: malformed name")
)

// Count returns the record count of section s (Question ... Additional). msg must hold
// a whole header.
func Count(msg []byte, s int) uint16 { return binary.BigEndian.Uint16(msg[4+2*s:]) }

// SetCount sets the record count of section s. msg must hold a whole header.
func SetCount(msg []byte, s int, n int) { binary.BigEndian.PutUint16(msg[4+2*s:], uint16(n)) }

// IsResponse reports whether the QR bit is set. msg must hold a whole header.
func IsResponse(msg []byte) bool { return msg[2]&0x80 != 0 }

// SkipName returns the offset just past the possibly compressed name at off. A pointer
// ends the name and is not followed.
func SkipName(msg []byte, off int) (int, error) {
	n := 0 // octets of the labels read so far, length bytes included
	for {
		if off < 0 || off >= len(msg) {
			return 0, ErrShort
		}
		c := int(msg[off])
		switch c & 0xC0 {
		case 0x00:
			if c == 0 {
				return off + 1, nil
			}
			// The root label (or what a pointer leads to) adds at least one octet more.
			if n += c + 1; n >= MaxNameLen {
				return 0, ErrBadName
			}
			off += c + 1
		case 0xC0:
			if off+2 > len(msg) {
				return 0, ErrShort
			}
			return off + 2, nil
		default:
			return 0, ErrBadName
		}
	}
}

// SkipQuestion returns the offset just past the question entry (name, type, class) at off.
func SkipQuestion(msg []byte, off int) (int, error) {
	off, err := SkipName(msg, off)
	if err != nil {
		return 0, err
	}
	if off+4 > len(msg) {
		return 0, ErrShort
	}
	return off + 4, nil
}

// RRHeader is the fixed part of a resource record after its owner name, with the
// offsets a caller needs to rewrite the TTL or read the RDATA in place.
type RRHeader struct {
	Type   uint16
	Class  uint16 // for OPT, the requestor's UDP payload size
	TTL    uint32 // for OPT, extended rcode, version and flags (DO is bit 15)
	TTLOff int    // offset of the TTL field
	RDOff  int    // offset of RDATA
	RDLen  int
}

// End returns the offset just past the record.
func (h RRHeader) End() int { return h.RDOff + h.RDLen }

// ReadRR parses the record at off and returns its header and the offset past it.
func ReadRR(msg []byte, off int) (RRHeader, int, error) {
	off, err := SkipName(msg, off)
	if err != nil {
		return RRHeader{}, 0, err
	}
	if off+rrFixedLen > len(msg) {
		return RRHeader{}, 0, ErrShort
	}
	h := RRHeader{
		Type:   binary.BigEndian.Uint16(msg[off:]),
		Class:  binary.BigEndian.Uint16(msg[off+2:]),
		TTL:    binary.BigEndian.Uint32(msg[off+4:]),
		TTLOff: off + 4,
		RDOff:  off + rrFixedLen,
		RDLen:  int(binary.BigEndian.Uint16(msg[off+8:])),
	}
	if h.End() > len(msg) {
		return RRHeader{}, 0, ErrShort
	}
	return h, h.End(), nil
}

// SkipRRs returns the offset just past the n resource records starting at off.
func SkipRRs(msg []byte, off, n int) (int, error) {
	var err error
	for i := 0; i < n; i++ {
		if _, off, err = ReadRR(msg, off); err != nil {
			return 0, err
		}
	}
	return off, nil
}

// FindOPT returns the offset and header of the first OPT record in the additional
// section, or start -1 when there is none. Every record before it must parse.
func FindOPT(msg []byte) (start int, h RRHeader, err error) {
	if len(msg) < HeaderLen {
		return -1, RRHeader{}, ErrShort
	}
	off := HeaderLen
	for i := 0; i < int(Count(msg, Question)); i++ {
		if off, err = SkipQuestion(msg, off); err != nil {
			return -1, RRHeader{}, err
		}
	}
	if off, err = SkipRRs(msg, off, int(Count(msg, Answer))+int(Count(msg, Authority))); err != nil {
		return -1, RRHeader{}, err
	}
	for i := 0; i < int(Count(msg, Additional)); i++ {
		start = off
		if h, off, err = ReadRR(msg, off); err != nil {
			return -1, RRHeader{}, err
		}
		if h.Type == TypeOPT {
			return start, h, nil
		}
	}
	return -1, RRHeader{}, nil
}
