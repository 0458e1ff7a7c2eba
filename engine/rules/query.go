package rules

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/dnsfront/dnsfront/internal/dnswire"
)

// Protocol is the transport a query arrived on.
type Protocol uint8

const (
	DoUDP Protocol = iota
	DoTCP
	DoT
	DoH
	DoQ
	DoH3
)

var protocolNames = [...]string{DoUDP: "DoUDP", DoTCP: "DoTCP", DoT: "DoT", DoH: "DoH", DoQ: "DoQ", DoH3: "DoH3"}

func (p Protocol) String() string {
	if int(p) < len(protocolNames) {
		return protocolNames[p]
	}
	return "unknown"
}

// IsStream reports whether the protocol has no size limit to push the client to TCP with TC.
func (p Protocol) IsStream() bool { return p != DoUDP }

// HeaderGetter gives the DoH request's headers to HTTPHeader selectors.
type HeaderGetter interface {
	Header(name string) (string, bool)
}

// Query is what rules look at. The engine fills it from the bytes it has already parsed
// (ParseQuery does it from a raw message) and passes it by pointer; rules never keep it.
// A Query is used by one event loop at a time and is reused from query to query.
type Query struct {
	// Msg is the whole query as received; QName is its question name in wire form
	// (uncompressed, inside Msg), which rules compare case-insensitively.
	Msg    []byte
	QName  []byte
	QType  uint16
	QClass uint16
	// Flags are header bytes 2-3 (QR, opcode, AA, TC, RD, RA, Z, AD, CD, RCODE).
	Flags uint16
	// EDNS: whether the query had an OPT record, its DO bit, version, UDP size and options
	// (the OPT RDATA, inside Msg).
	EDNS        bool
	DO          bool
	EDNSVersion uint8
	UDPSize     uint16
	EDNSOptions []byte

	Client    netip.Addr // unmapped
	LocalAddr netip.Addr
	LocalPort uint16
	Proto     Protocol
	// SNI and HTTPPath are set for DoT/DoH; Headers for DoH.
	SNI      string
	HTTPPath string
	Headers  HeaderGetter
	// Loop is the index of the event loop handling the query (it shards counters).
	Loop int
	// Now is the loop's clock in nanoseconds (any monotonic origin, the same for every
	// loop and every query, e.g. one Clock's Nanos read once per loop pass); rate limiters
	// read it instead of the system clock. 0: the rule set reads its own clock.
	Now int64

	// Tags set by SetTag actions and read by Tag selectors (and the engine).
	Tags Tags

	// Resp is the response, for response rules; nil for query rules.
	Resp []byte

	// Scratch state of one evaluation.
	selBits [maxIndexedWords]uint64
	verdict Verdict
	text    [maxTextName]byte
	textLen int16 // length+1 of the name in text; 0: not computed yet
}

// Reset clears q for reuse, keeping nothing of the previous query.
func (q *Query) Reset() { *q = Query{} }

// Opcode returns the header's opcode.
func (q *Query) Opcode() int { return int(q.Flags>>11) & 0xf }

// RD reports whether recursion was desired.
func (q *Query) RD() bool { return q.Flags&0x0100 != 0 }

var (
	errShort    = errors.New("rules: message shorter than its header")
	errQDCount  = errors.New("rules: question count is not 1")
	errBadName  = errors.New("rules: malformed question name")
	errTruncRR  = errors.New("rules: message truncated inside a record")
	errNotQuery = errors.New("rules: QR bit set in a query")
)

// ParseQuery fills q's message fields from msg (a query with one question): QName, QType,
// QClass, Flags and the EDNS fields; it clears Tags and Resp, which belong to one query, and
// keeps the connection fields (Client, Proto, Loop, ...). It does not allocate.
// The returned offset is the end of the question.
func ParseQuery(q *Query, msg []byte) (int, error) {
	if len(msg) < 12 {
		return 0, errShort
	}
	if msg[2]&0x80 != 0 {
		return 0, errNotQuery
	}
	if binary.BigEndian.Uint16(msg[4:]) != 1 {
		return 0, errQDCount
	}
	end, err := nameEnd(msg, 12)
	if err != nil || end+4 > len(msg) {
		return 0, errBadName
	}
	q.Msg = msg
	q.Tags, q.Resp = Tags{}, nil
	q.QName = msg[12:end]
	q.QType = binary.BigEndian.Uint16(msg[end:])
	q.QClass = binary.BigEndian.Uint16(msg[end+2:])
	q.Flags = binary.BigEndian.Uint16(msg[2:])
	q.EDNS, q.DO, q.EDNSVersion, q.UDPSize, q.EDNSOptions = false, false, 0, 0, nil
	qend := end + 4
	// The OPT record is in the additional section; skip answer and authority records.
	off := qend
	an := int(binary.BigEndian.Uint16(msg[6:])) + int(binary.BigEndian.Uint16(msg[8:]))
	ar := int(binary.BigEndian.Uint16(msg[10:]))
	if ar == 0 {
		return qend, nil
	}
	for i := 0; i < an+ar; i++ {
		h, next, err := dnswire.ReadRR(msg, off)
		if err != nil {
			return qend, errTruncRR
		}
		if i >= an && h.Type == dnswire.TypeOPT {
			q.EDNS = true
			q.UDPSize = h.Class
			q.EDNSVersion = byte(h.TTL >> 16)
			q.DO = h.TTL&0x8000 != 0
			q.EDNSOptions = msg[h.RDOff:h.End()]
			return qend, nil
		}
		off = next
	}
	return qend, nil
}

const typeOPT = dnswire.TypeOPT

// nameEnd returns the offset after the uncompressed name at off.
func nameEnd(msg []byte, off int) (int, error) {
	for n := 0; ; n++ {
		if off >= len(msg) || n > 127 {
			return 0, errBadName
		}
		l := int(msg[off])
		if l == 0 {
			if off+1-12 > 255 {
				return 0, errBadName
			}
			return off + 1, nil
		}
		if l&0xc0 != 0 {
			return 0, errBadName
		}
		off += 1 + l
	}
}

// maxTags is how many tags a query carries; further SetTag actions are ignored.
const maxTags = 8

// Tags is a small set of name=value pairs carried by a query. It holds string headers that
// point into the compiled rule set, so setting a tag does not allocate.
type Tags struct {
	n    uint8
	keys [maxTags]string
	vals [maxTags]string
}

// Get returns the value of tag k.
func (t *Tags) Get(k string) (string, bool) {
	for i := 0; i < int(t.n); i++ {
		if t.keys[i] == k {
			return t.vals[i], true
		}
	}
	return "", false
}

// Set sets tag k to v; it reports false when the set is full.
func (t *Tags) Set(k, v string) bool {
	for i := 0; i < int(t.n); i++ {
		if t.keys[i] == k {
			t.vals[i] = v
			return true
		}
	}
	if int(t.n) == maxTags {
		return false
	}
	t.keys[t.n], t.vals[t.n] = k, v
	t.n++
	return true
}

// Unset removes tag k.
func (t *Tags) Unset(k string) {
	for i := 0; i < int(t.n); i++ {
		if t.keys[i] == k {
			last := int(t.n) - 1
			t.keys[i], t.vals[i] = t.keys[last], t.vals[last]
			t.keys[last], t.vals[last] = "", ""
			t.n--
			return
		}
	}
}

// Len returns the number of tags.
func (t *Tags) Len() int { return int(t.n) }

// All calls f for each tag.
func (t *Tags) All(f func(k, v string)) {
	for i := 0; i < int(t.n); i++ {
		f(t.keys[i], t.vals[i])
	}
}
