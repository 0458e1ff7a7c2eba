package rules

import (
	"encoding/binary"
	"math/rand/v2"
	"regexp"
	"strings"

	"github.com/dnsfront/dnsfront/internal/dnswire"
)

// selector decides whether a rule applies to a query. Implementations do not allocate and
// keep no per-query state outside the Query.
type selector interface {
	match(q *Query) bool
}

type allSel struct{}

func (allSel) match(*Query) bool { return true }

type andSel []selector

func (s andSel) match(q *Query) bool {
	for _, x := range s {
		if !x.match(q) {
			return false
		}
	}
	return true
}

type orSel []selector

func (s orSel) match(q *Query) bool {
	for _, x := range s {
		if x.match(q) {
			return true
		}
	}
	return false
}

type notSel struct{ s selector }

func (s notSel) match(q *Query) bool { return !s.s.match(q) }

// nameSel is QName, QNameSet and QNameSuffix. The rule set's name index marks, once per
// query, which name selectors hold (q.selBits bit id); a selector beyond the index's
// capacity (id < 0) looks its own table up.
type nameSel struct {
	id     int
	suffix bool
	t      *nameTable
}

func (s *nameSel) match(q *Query) bool {
	if s.id >= 0 {
		return q.selBits[s.id>>6]&(1<<(s.id&63)) != 0
	}
	if s.suffix {
		return s.t.hasSuffix(q.QName)
	}
	_, ok := s.t.lookup(q.QName)
	return ok
}

// regexSel searches (Regex) or fully matches (RE2, anchored at compile time) the query name
// in presentation form without the trailing dot, as dnsdist does.
type regexSel struct{ re *regexp.Regexp }

func (s regexSel) match(q *Query) bool { return s.re.Match(q.nameText()) }

type qtypeSel uint16

func (s qtypeSel) match(q *Query) bool { return q.QType == uint16(s) }

type qclassSel uint16

func (s qclassSel) match(q *Query) bool { return q.QClass == uint16(s) }

type opcodeSel int

func (s opcodeSel) match(q *Query) bool { return q.Opcode() == int(s) }

type rdSel struct{}

func (rdSel) match(q *Query) bool { return q.RD() }

type dnssecSel struct{}

func (dnssecSel) match(q *Query) bool { return q.DO }

type ednsOptionSel uint16

func (s ednsOptionSel) match(q *Query) bool {
	o := q.EDNSOptions
	for len(o) >= 4 {
		code := binary.BigEndian.Uint16(o)
		l := int(binary.BigEndian.Uint16(o[2:]))
		if code == uint16(s) {
			return true
		}
		if 4+l > len(o) {
			return false
		}
		o = o[4+l:]
	}
	return false
}

type ednsVersionSel uint8

// match follows dnsdist's EDNSVersionRule: queries whose EDNS version is above the value.
func (s ednsVersionSel) match(q *Query) bool { return q.EDNS && q.EDNSVersion > uint8(s) }

type payloadSizeSel struct {
	cmp  int // -2 smaller, -1 smallerOrEqual, 0 equal, 1 greaterOrEqual, 2 greater
	size int
}

func (s payloadSizeSel) match(q *Query) bool {
	n := len(q.Msg)
	if q.Resp != nil {
		n = len(q.Resp)
	}
	switch s.cmp {
	case -2:
		return n < s.size
	case -1:
		return n <= s.size
	case 0:
		return n == s.size
	case 1:
		return n >= s.size
	default:
		return n > s.size
	}
}

type labelsCountSel struct{ min, max int }

func (s labelsCountSel) match(q *Query) bool {
	n := labelCount(q.QName)
	return n >= s.min && n <= s.max
}

type wireLengthSel struct{ min, max int }

func (s wireLengthSel) match(q *Query) bool { return len(q.QName) >= s.min && len(q.QName) <= s.max }

type netmaskSel struct {
	g      *NetmaskGroup
	source bool
}

func (s netmaskSel) match(q *Query) bool {
	if s.source {
		return s.g.Contains(q.Client)
	}
	return s.g.Contains(q.LocalAddr)
}

// maxQPSSel matches while the process-wide rate is not exceeded (dnsdist's MaxQPSRule).
type maxQPSSel struct{ l *Limiter }

func (s maxQPSSel) match(q *Query) bool { return s.l.Allow(q.Now) }

// maxQPSIPSel matches queries of a client network above its rate (dnsdist's MaxQPSIPRule).
type maxQPSIPSel struct{ l *ClientLimiter }

func (s maxQPSIPSel) match(q *Query) bool { return !s.l.Allow(q.Client, q.Now) }

// tcpSel matches queries that came over TCP (Do53 TCP, DoT, DoH) when true, the others when false.
type tcpSel bool

func (s tcpSel) match(q *Query) bool {
	tcp := q.Proto == DoTCP || q.Proto == DoT || q.Proto == DoH
	return tcp == bool(s)
}

type protoSel Protocol

func (s protoSel) match(q *Query) bool { return q.Proto == Protocol(s) }

type sniSel string

func (s sniSel) match(q *Query) bool { return strings.EqualFold(q.SNI, string(s)) }

type httpHeaderSel struct {
	name string
	re   *regexp.Regexp
}

func (s httpHeaderSel) match(q *Query) bool {
	if q.Headers == nil {
		return false
	}
	v, ok := q.Headers.Header(s.name)
	return ok && s.re.MatchString(v)
}

type httpPathSel string

func (s httpPathSel) match(q *Query) bool { return q.Proto == DoH && q.HTTPPath == string(s) }

type httpPathRegexSel struct{ re *regexp.Regexp }

func (s httpPathRegexSel) match(q *Query) bool { return q.Proto == DoH && s.re.MatchString(q.HTTPPath) }

type dstPortSel uint16

func (s dstPortSel) match(q *Query) bool { return q.LocalPort == uint16(s) }

type poolAvailableSel struct {
	pool      string
	available func(string) bool
}

func (s poolAvailableSel) match(*Query) bool { return s.available(s.pool) }

// tagSel matches a tag; an empty value matches any value when emptyAsWildcard.
type tagSel struct {
	tag, value      string
	emptyAsWildcard bool
}

func (s tagSel) match(q *Query) bool {
	v, ok := q.Tags.Get(s.tag)
	if !ok {
		return false
	}
	return v == s.value || s.value == "" && s.emptyAsWildcard
}

type probaSel struct{ threshold uint64 }

func (s probaSel) match(*Query) bool { return rand.Uint64() < s.threshold }

// message returns the message response selectors read: the response when there is one.
func (q *Query) message() []byte {
	if q.Resp != nil {
		return q.Resp
	}
	return q.Msg
}

type rcodeSel int

func (s rcodeSel) match(q *Query) bool {
	m := q.message()
	return len(m) >= 12 && int(m[3]&0x0f) == int(s)
}

// ercodeSel compares the extended RCODE: the OPT record's upper 8 bits and the header's 4.
type ercodeSel int

func (s ercodeSel) match(q *Query) bool {
	m := q.message()
	if len(m) < 12 {
		return false
	}
	rc := int(m[3] & 0x0f)
	if opt := findOPT(m); opt >= 0 {
		rc |= int(m[opt+4]) << 4
	}
	return rc == int(s)
}

type recordsCountSel struct{ section, min, max int }

func (s recordsCountSel) match(q *Query) bool {
	m := q.message()
	if len(m) < 12 {
		return false
	}
	n := int(binary.BigEndian.Uint16(m[4+2*s.section:]))
	return n >= s.min && n <= s.max
}

type recordsTypeCountSel struct {
	section, min, max int
	rtype             uint16
}

func (s recordsTypeCountSel) match(q *Query) bool {
	m := q.message()
	n := 0
	ok := walkRecords(m, func(section int, off int, typ uint16) bool {
		if section == s.section && typ == s.rtype {
			n++
		}
		return true
	})
	return ok && n >= s.min && n <= s.max
}

// walkRecords calls f for every record of the message, with its section (0 question,
// 1 answer, 2 authority, 3 additional), the offset of its TYPE field and its type. It
// reports false if the message is malformed.
func walkRecords(m []byte, f func(section, off int, typ uint16) bool) bool {
	if len(m) < 12 {
		return false
	}
	off := 12
	var err error
	for sec := 0; sec < 4; sec++ {
		n := int(binary.BigEndian.Uint16(m[4+2*sec:]))
		for i := 0; i < n; i++ {
			if off, err = dnswire.SkipName(m, off); err != nil {
				return false
			}
			if sec == 0 {
				if off+4 > len(m) {
					return false
				}
				if !f(0, off, binary.BigEndian.Uint16(m[off:])) {
					return true
				}
				off += 4
				continue
			}
			if off+10 > len(m) {
				return false
			}
			rdlen := int(binary.BigEndian.Uint16(m[off+8:]))
			if off+10+rdlen > len(m) {
				return false
			}
			if !f(sec, off, binary.BigEndian.Uint16(m[off:])) {
				return true
			}
			off += 10 + rdlen
		}
	}
	return true
}

// findOPT returns the offset of the OPT record's TYPE field, or -1.
func findOPT(m []byte) int {
	at := -1
	walkRecords(m, func(sec, off int, typ uint16) bool {
		if sec == 3 && typ == typeOPT {
			at = off
			return false
		}
		return true
	})
	return at
}
