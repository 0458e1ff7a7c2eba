package doh

import (
	"errors"
	"math"

	"github.com/miekg/dns"
)

// The helpers below follow miekg/dns's (msg, off) -> (newOff, error) shape but
// never allocate: dns.UnpackDomainName builds a string, and a full Msg.Unpack
// is far too costly for a check that runs on every request.

var (
	errShortMsg   = errors.New("message too short")
	errBadName    = errors.New("bad domain name")
	errNotQuery   = errors.New("not a query (QR set)")
	errQuestions  = errors.New("question count is not 1")
	errBadPointer = errors.New("bad compression pointer")
)

const headerLen = 12

// skipName returns the offset just past the (possibly compressed) name at off.
func skipName(msg []byte, off int) (int, error) {
	total := 0
	for {
		if off >= len(msg) {
			return 0, errShortMsg
		}
		c := int(msg[off])
		switch c & 0xC0 {
		case 0x00:
			if c == 0 {
				return off + 1, nil
			}
			total += c + 1
			if total > 255 {
				return 0, errBadName
			}
			off += c + 1
		case 0xC0:
			if off+2 > len(msg) {
				return 0, errBadPointer
			}
			return off + 2, nil
		default:
			return 0, errBadName
		}
	}
}

// validateQuery checks what the session relies on: a header, QR clear, and
// exactly one complete question. The rest is the backend's business.
func validateQuery(msg []byte) error {
	if len(msg) < headerLen {
		return errShortMsg
	}
	if msg[2]&0x80 != 0 {
		return errNotQuery
	}
	if msg[4] != 0 || msg[5] != 1 {
		return errQuestions
	}
	off, err := skipName(msg, headerLen)
	if err != nil {
		return err
	}
	if off+4 > len(msg) {
		return errShortMsg
	}
	return nil
}

// minTTL returns the smallest TTL of the answer and authority records (RFC
// 8484 5.1), and for a negative answer (no answer records) the SOA's
// min(TTL, MINIMUM) as in RFC 2308 5. ok is false when the message holds no
// record to take a TTL from, or cannot be walked.
func minTTL(msg []byte) (ttl uint32, ok bool) {
	if len(msg) < headerLen {
		return 0, false
	}
	qd := int(msg[4])<<8 | int(msg[5])
	an := int(msg[6])<<8 | int(msg[7])
	ns := int(msg[8])<<8 | int(msg[9])
	off := headerLen
	var err error
	for i := 0; i < qd; i++ {
		if off, err = skipName(msg, off); err != nil || off+4 > len(msg) {
			return 0, false
		}
		off += 4
	}
	ttl = math.MaxUint32
	for i := 0; i < an+ns; i++ {
		if off, err = skipName(msg, off); err != nil || off+10 > len(msg) {
			return 0, false
		}
		typ := uint16(msg[off])<<8 | uint16(msg[off+1])
		t := be32(msg[off+4:])
		rdlen := int(msg[off+8])<<8 | int(msg[off+9])
		off += 10
		if off+rdlen > len(msg) {
			return 0, false
		}
		if typ == dns.TypeSOA && an == 0 && rdlen >= 20 {
			t = min(t, be32(msg[off+rdlen-4:]))
		}
		ttl = min(ttl, t)
		off += rdlen
		ok = true
	}
	if !ok {
		return 0, false
	}
	// RFC 2181 8: a TTL with the top bit set is treated as zero.
	if ttl > math.MaxInt32 {
		ttl = 0
	}
	return ttl, true
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
