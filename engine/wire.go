package engine

import (
	"encoding/binary"
	"errors"

	"github.com/miekg/dns"

	"github.com/dnsfront/dnsfront/internal/dnswire"
)

// Wire-format helpers for the hot path. They read only the header, the question and the
// additional section's OPT record, never unpack a whole message, and do not allocate.

const (
	headerLen   = dnswire.HeaderLen
	maxMsgLen   = 65535
	optLen      = 11 // the OPT record appendOPT writes
	typeOPT     = dnswire.TypeOPT
	maxNameWire = dnswire.MaxNameLen
	// backendEDNSSize is the UDP payload size advertised to backends when the client sent
	// no OPT record (dnsdist's choice); the answer is cut down to the client's own limit.
	backendEDNSSize = 4096
	// minUDPSize is the limit of a client that sent no OPT record (RFC 1035).
	minUDPSize = 512
)

var (
	errShort      = errors.New("message shorter than its header")
	errResponse   = errors.New("QR bit set in a query")
	errQDCount    = errors.New("question count is not 1")
	errBadName    = dnswire.ErrBadName
	errTruncated  = dnswire.ErrShort
	errCompressed = errors.New("compression pointer in the question of a query")
)

// question is what the engine keeps of a query: enough to match the response and to
// restore what the client sent.
type question struct {
	end      int    // offset just after the question section
	hash     uint64 // FNV-1a over the lower-cased qname, qtype and qclass
	nameHash uint64 // FNV-1a over the lower-cased qname alone (consistent hashing)
	qtype    uint16
	optOff   int    // offset of the OPT RR, or -1
	udpSize  uint16 // the client's UDP payload limit (512 without EDNS)
	do       bool   // DNSSEC OK
}

func msgID(m []byte) uint16        { return binary.BigEndian.Uint16(m) }
func setMsgID(m []byte, id uint16) { binary.BigEndian.PutUint16(m, id) }
func isTruncated(m []byte) bool    { return m[2]&0x02 != 0 }

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// parseQuery checks a client query and reads its question and OPT record.
func parseQuery(m []byte) (question, error) {
	q := question{optOff: -1, udpSize: minUDPSize}
	if len(m) < headerLen {
		return q, errShort
	}
	if dnswire.IsResponse(m) {
		return q, errResponse
	}
	if dnswire.Count(m, dnswire.Question) != 1 {
		return q, errQDCount
	}
	h, nh, off, err := hashQuestionName(m, headerLen)
	if err != nil {
		return q, err
	}
	q.hash, q.nameHash, q.end = h, nh, off
	q.qtype = binary.BigEndian.Uint16(m[off-4:])
	// Skip answer and authority records (normally none in a query), then look for OPT.
	off, err = dnswire.SkipRRs(m, off, int(dnswire.Count(m, dnswire.Answer))+int(dnswire.Count(m, dnswire.Authority)))
	if err != nil {
		return q, err
	}
	for i := 0; i < int(dnswire.Count(m, dnswire.Additional)); i++ {
		start := off
		if off, err = dnswire.SkipName(m, off); err != nil {
			return q, err
		}
		if off+10 > len(m) {
			return q, errTruncated
		}
		if binary.BigEndian.Uint16(m[off:]) == typeOPT && q.optOff < 0 {
			q.optOff = start
			q.udpSize = max(binary.BigEndian.Uint16(m[off+2:]), minUDPSize)
			q.do = m[off+6]&0x80 != 0
		}
		rdlen := int(binary.BigEndian.Uint16(m[off+8:]))
		off += 10 + rdlen
		if off > len(m) {
			return q, errTruncated
		}
	}
	return q, nil
}

// hashQuestion hashes the question starting at off (qname lower-cased, qtype, qclass) and
// returns the offset after it. Queries carry no compression in their question.
func hashQuestion(m []byte, off int) (uint64, int, error) {
	h, _, off, err := hashQuestionName(m, off)
	return h, off, err
}

// hashQuestionName is hashQuestion that also returns the hash of the name alone.
func hashQuestionName(m []byte, off int) (uint64, uint64, int, error) {
	h := uint64(fnvOffset)
	n := 0
	for {
		if off >= len(m) {
			return 0, 0, 0, errBadName
		}
		l := int(m[off])
		if l&0xc0 != 0 {
			return 0, 0, 0, errCompressed
		}
		n += l + 1
		if n > maxNameWire || off+1+l > len(m) {
			return 0, 0, 0, errBadName
		}
		h = (h ^ uint64(l)) * fnvPrime
		for _, c := range m[off+1 : off+1+l] {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			h = (h ^ uint64(c)) * fnvPrime
		}
		off += 1 + l
		if l == 0 {
			break
		}
	}
	if off+4 > len(m) {
		return 0, 0, 0, errBadName
	}
	nh := h
	for _, c := range m[off : off+4] {
		h = (h ^ uint64(c)) * fnvPrime
	}
	return h, nh, off + 4, nil
}

// appendOPT appends an OPT record advertising size to the query in dst and counts it.
func appendOPT(dst []byte, size uint16) []byte {
	dst = append(dst, 0, 0, typeOPT, byte(size>>8), byte(size), 0, 0, 0, 0, 0, 0)
	dnswire.SetCount(dst, dnswire.Additional, int(dnswire.Count(dst, dnswire.Additional))+1)
	return dst
}

// stripOPT removes the OPT record from a response (the client sent none), returning the
// shortened message. It works in place when the OPT record is the last one, as nearly
// every server writes it. RFC 6891 lets it sit anywhere in the additional section; then
// records after it may carry compression pointers to each other that cutting bytes would
// break, so the message is unpacked and packed again (the rare, slow path).
func stripOPT(m []byte) []byte {
	qd := int(dnswire.Count(m, dnswire.Question))
	off := headerLen
	var err error
	for i := 0; i < qd; i++ {
		if off, err = dnswire.SkipName(m, off); err != nil {
			return m
		}
		off += 4
	}
	if off, err = dnswire.SkipRRs(m, off, int(dnswire.Count(m, dnswire.Answer))+int(dnswire.Count(m, dnswire.Authority))); err != nil {
		return m
	}
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
			if end == len(m) {
				if m[off+4] != 0 {
					// An extended rcode (BADCOOKIE, BADVERS...) lives partly in the OPT
					// record; without it the client would read the wrong rcode.
					m[3] = m[3]&0xf0 | rcodeServfail
				}
				m = m[:start]
				dnswire.SetCount(m, dnswire.Additional, int(dnswire.Count(m, dnswire.Additional))-1)
				return m
			}
			return repackWithoutOPT(m)
		}
		off = end
	}
	return m
}

// repackWithoutOPT is stripOPT's slow path, through miekg/dns.
func repackWithoutOPT(m []byte) []byte {
	var msg dns.Msg
	if err := msg.Unpack(m); err != nil {
		return m
	}
	extra := msg.Extra[:0]
	for _, rr := range msg.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			extra = append(extra, rr)
		}
	}
	msg.Extra = extra
	if msg.Rcode > 0xf {
		msg.Rcode = dns.RcodeServerFailure // an extended rcode needs the OPT record
	}
	msg.Compress = true
	// A fresh buffer, not m's array: m may point into gnet's read buffer, where the bytes
	// after it are the next pipelined TCP frame, and the repacked message can be longer
	// than m (our packer may compress less than the backend did).
	out, err := msg.Pack()
	if err != nil {
		return m
	}
	return out
}

// truncateTo cuts a response that does not fit a UDP client's limit down to its header and
// question, with TC=1, so that the client retries over TCP (RFC 7766 §5).
func truncateTo(m []byte, qend int) []byte {
	m = m[:qend]
	m[2] |= 0x02
	dnswire.SetCount(m, dnswire.Answer, 0)
	dnswire.SetCount(m, dnswire.Authority, 0)
	dnswire.SetCount(m, dnswire.Additional, 0)
	return m
}

// responseQuestionHash hashes a response's question like hashQuestion does for queries.
func responseQuestionHash(m []byte) (uint64, int, bool) {
	if len(m) < headerLen || !dnswire.IsResponse(m) || dnswire.Count(m, dnswire.Question) != 1 {
		return 0, 0, false
	}
	h, off, err := hashQuestion(m, headerLen)
	return h, off, err == nil
}

// appendServfail appends to dst a SERVFAIL (or other rcode) answer to query q whose
// question ends at qend, echoing the question and no OPT.
func appendError(dst, query []byte, qend int, rc byte) []byte {
	start := len(dst)
	dst = append(dst, query[:qend]...)
	r := dst[start:]
	r[2] = (r[2] & 0x79) | 0x80 // QR=1, keep opcode and RD, clear AA and TC
	r[3] = (r[3] & 0x10) | 0x80 | rc&0x0f
	dnswire.SetCount(r, dnswire.Answer, 0)
	dnswire.SetCount(r, dnswire.Authority, 0)
	dnswire.SetCount(r, dnswire.Additional, 0)
	return dst
}

const (
	rcodeServfail = 2
	rcodeRefused  = 5
)
