package rules

import (
	"encoding/binary"
)

// Answer is a compiled self-generated answer (Spoof, SpoofCNAME, SpoofRaw, NegativeAndSOA,
// and the header bits of RCode and ERCode). Immutable.
type Answer struct {
	answer    []rrTemplate
	authority []rrTemplate
	extra     []rrTemplate
	rcode     uint16
	// byType: the answer records are chosen by the query type (Spoof with addresses);
	// otherwise every answer record is sent.
	byType bool
	aa, ad bool
	ra     int8 // -1: copy RD (dnsdist's default), 0 clear, 1 set
}

// rrTemplate is one record of an Answer. A nil owner stands for the query name (written as
// a compression pointer to the question); type 0 stands for the query type (SpoofRaw).
type rrTemplate struct {
	owner []byte
	typ   uint16
	ttl   uint32
	rdata []byte
	// typeForAny replaces type 0 when the query type is ANY (SpoofRaw's qtype_for_any).
	typeForAny uint16
}

const (
	typeANY = 255
	// answerUDPSize is the payload size advertised in the OPT of self-generated answers
	// (the DNS flag day 2020 value, which dnsdist uses as well).
	answerUDPSize = 1232
	optionEDE     = 15
)

// answers reports whether the answer has records for a query of type qtype.
func (a *Answer) answers(qtype uint16) bool {
	if !a.byType || qtype == typeANY {
		return true
	}
	for i := range a.answer {
		if a.answer[i].typ == qtype {
			return true
		}
	}
	return false
}

// WriteAnswer appends to dst the answer the verdict asks the engine to send (Kind RCode,
// Spoof or Truncate) for the query q, and returns it. It reuses q.Msg's ID, question, opcode,
// RD and CD, adds an OPT record when the query had one (with the verdict's Extended DNS
// Error, if any), and never allocates when dst has room (4096 bytes is plenty). A UDP
// answer larger than the client's limit is sent as TC=1 without records.
func WriteAnswer(dst []byte, q *Query, v *Verdict) []byte {
	start := len(dst)
	qend := 12 + len(q.QName) + 4
	if len(q.Msg) < qend {
		return dst
	}
	rcode := uint16(0)
	var ans *Answer
	switch v.Kind {
	case KindRCode:
		rcode = v.RCode
		ans = v.Answer
	case KindSpoof:
		ans = v.Answer
		if ans != nil {
			rcode = ans.rcode
		}
	}
	flags := binary.BigEndian.Uint16(q.Msg[2:])
	out := uint16(0x8000) | flags&0x7800 | flags&0x0100 | flags&0x0010 // QR, opcode, RD, CD
	ra := flags&0x0100 != 0
	if ans != nil {
		if ans.aa {
			out |= 0x0400
		}
		if ans.ad {
			out |= 0x0020
		}
		if ans.ra >= 0 {
			ra = ans.ra == 1
		}
	}
	if ra {
		out |= 0x0080
	}
	if v.Kind == KindTruncate {
		out |= 0x0200
	}
	out |= rcode & 0x0f
	dst = append(dst, q.Msg[0], q.Msg[1], byte(out>>8), byte(out), 0, 1, 0, 0, 0, 0, 0, 0)
	dst = append(dst, q.Msg[12:qend]...)
	var an, ns, ar int
	if v.Kind == KindSpoof && ans != nil {
		for i := range ans.answer {
			rr := &ans.answer[i]
			if ans.byType && q.QType != typeANY && rr.typ != q.QType {
				continue
			}
			dst = rr.append(dst, q.QType)
			an++
		}
		for i := range ans.authority {
			dst = ans.authority[i].append(dst, q.QType)
			ns++
		}
		for i := range ans.extra {
			dst = ans.extra[i].append(dst, q.QType)
			ar++
		}
	}
	limit := 512
	if q.EDNS && q.UDPSize > 512 {
		limit = int(q.UDPSize)
	}
	if q.Proto == DoUDP && len(dst)-start > limit {
		dst = dst[:start+qend]
		dst[start+2] |= 0x02
		an, ns, ar = 0, 0, 0
	}
	if q.EDNS {
		dst = appendOPT(dst, q.DO, rcode, v.EDE)
		ar++
	}
	binary.BigEndian.PutUint16(dst[start+6:], uint16(an))
	binary.BigEndian.PutUint16(dst[start+8:], uint16(ns))
	binary.BigEndian.PutUint16(dst[start+10:], uint16(ar))
	return dst
}

func (rr *rrTemplate) append(dst []byte, qtype uint16) []byte {
	if rr.owner == nil {
		dst = append(dst, 0xc0, 12)
	} else {
		dst = append(dst, rr.owner...)
	}
	typ := rr.typ
	if typ == 0 {
		typ = qtype
		if qtype == typeANY && rr.typeForAny != 0 {
			typ = rr.typeForAny
		}
	}
	dst = binary.BigEndian.AppendUint16(dst, typ)
	dst = binary.BigEndian.AppendUint16(dst, 1) // IN
	dst = binary.BigEndian.AppendUint32(dst, rr.ttl)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(rr.rdata)))
	return append(dst, rr.rdata...)
}

// appendOPT appends an OPT record with the upper bits of rcode, the DO bit and an EDE option.
func appendOPT(dst []byte, do bool, rcode uint16, ede *EDE) []byte {
	dst = append(dst, 0, 0, typeOPT, byte(answerUDPSize>>8), byte(answerUDPSize&0xff), byte(rcode>>4), 0)
	if do {
		dst = append(dst, 0x80, 0)
	} else {
		dst = append(dst, 0, 0)
	}
	if ede == nil {
		return append(dst, 0, 0)
	}
	n := 4 + 2 + len(ede.ExtraText)
	dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	dst = binary.BigEndian.AppendUint16(dst, optionEDE)
	dst = binary.BigEndian.AppendUint16(dst, uint16(2+len(ede.ExtraText)))
	dst = binary.BigEndian.AppendUint16(dst, ede.InfoCode)
	return append(dst, ede.ExtraText...)
}

// CapTTLs lowers every TTL of msg above max to max, in place (SetMaxReturnedTTL); the OPT
// record is left alone. It reports false if the message is malformed.
func CapTTLs(msg []byte, max uint32) bool { return LimitTTLs(msg, 0, max, nil) }

// LimitTTLs clamps the TTLs of msg's records into [min, max] in place (max 0: no upper bound),
// only for the listed types when types is not empty. The OPT record is left alone.
func LimitTTLs(msg []byte, min, max uint32, types []uint16) bool {
	return walkRecords(msg, func(sec, off int, typ uint16) bool {
		if sec == 0 || typ == typeOPT {
			return true
		}
		if len(types) > 0 {
			found := false
			for _, t := range types {
				found = found || t == typ
			}
			if !found {
				return true
			}
		}
		ttl := binary.BigEndian.Uint32(msg[off+4:])
		if max > 0 && ttl > max {
			ttl = max
		}
		if ttl < min {
			ttl = min
		}
		binary.BigEndian.PutUint32(msg[off+4:], ttl)
		return true
	})
}

// ClearRD clears the RD bit of a query in place (SetNoRecurse).
func ClearRD(msg []byte) {
	if len(msg) >= 12 {
		msg[2] &^= 0x01
	}
}

// AddEDE appends to dst a copy of the response resp with the Extended DNS Error added to its
// OPT record (and, when ede.ClearExisting, the backend's own EDE options removed), and
// returns it with true. A response without an OPT record (the client did not speak EDNS) is
// appended unchanged, with false. It does not allocate when dst has room.
func AddEDE(dst, resp []byte, ede *EDE) ([]byte, bool) {
	opt := findOPT(resp)
	if ede == nil || opt < 0 || opt+10 > len(resp) {
		return append(dst, resp...), false
	}
	rdlen := int(binary.BigEndian.Uint16(resp[opt+8:]))
	end := opt + 10 + rdlen
	if end > len(resp) {
		return append(dst, resp...), false
	}
	start := len(dst)
	dst = append(dst, resp[:opt+10]...)
	rdStart := len(dst)
	for o := resp[opt+10 : end]; len(o) >= 4; {
		code := binary.BigEndian.Uint16(o)
		l := 4 + int(binary.BigEndian.Uint16(o[2:]))
		if l > len(o) {
			break
		}
		if code != optionEDE || !ede.ClearExisting {
			dst = append(dst, o[:l]...)
		}
		o = o[l:]
	}
	dst = binary.BigEndian.AppendUint16(dst, optionEDE)
	dst = binary.BigEndian.AppendUint16(dst, uint16(2+len(ede.ExtraText)))
	dst = binary.BigEndian.AppendUint16(dst, ede.InfoCode)
	dst = append(dst, ede.ExtraText...)
	binary.BigEndian.PutUint16(dst[start+opt+8:], uint16(len(dst)-rdStart))
	// Records after the OPT (a TSIG or SIG(0)) follow unchanged.
	dst = append(dst, resp[end:]...)
	return dst, true
}
