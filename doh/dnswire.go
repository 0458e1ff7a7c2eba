package doh

import (
	"errors"
	"math"

	"github.com/miekg/dns"

	"github.com/dnsfront/dnsfront/internal/dnswire"
)

// The checks below walk the message with internal/dnswire, which never
// allocates: a full Msg.Unpack is far too costly for a check that runs on every
// request.

var (
	errShortMsg  = errors.New("message too short")
	errNotQuery  = errors.New("not a query (QR set)")
	errQuestions = errors.New("question count is not 1")
)

const headerLen = dnswire.HeaderLen

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
	_, err := dnswire.SkipQuestion(msg, headerLen)
	return err
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
		if off, err = dnswire.SkipQuestion(msg, off); err != nil {
			return 0, false
		}
	}
	ttl = math.MaxUint32
	for i := 0; i < an+ns; i++ {
		var h dnswire.RRHeader
		if h, off, err = dnswire.ReadRR(msg, off); err != nil {
			return 0, false
		}
		t := h.TTL
		if h.Type == dns.TypeSOA && an == 0 && h.RDLen >= 20 {
			t = min(t, be32(msg[h.End()-4:]))
		}
		ttl = min(ttl, t)
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
