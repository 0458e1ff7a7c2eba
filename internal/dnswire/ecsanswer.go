package dnswire

import "encoding/binary"

// Reading the ECS options of an answer, all of them: a backend may send more than one,
// and whatever is checked or removed must be checked or removed in every one, else the
// one left over names another client's subnet.

// NextOption is FindOption from offset from on (the start of an option of the OPT record
// h, or h.End()): the next option code at or after from, or off -1 when there is none.
func NextOption(msg []byte, h RRHeader, code uint16, from int) (off, n int, err error) {
	end := h.End()
	if end > len(msg) || from < h.RDOff {
		return -1, 0, ErrShort
	}
	for o := from; o < end; {
		if o+4 > end {
			return -1, 0, ErrShort
		}
		l := 4 + int(binary.BigEndian.Uint16(msg[o+2:]))
		if o+l > end {
			return -1, 0, ErrShort
		}
		if binary.BigEndian.Uint16(msg[o:]) == code {
			return o, l, nil
		}
		o += l
	}
	return -1, 0, nil
}

// RemoveOptions removes every option code at or after offset from (h.RDOff for all of
// them) from the OPT record h, which must be the last record of msg, in place. It returns
// the shortened message and the record's header as it now is. On malformed options it
// returns err with what it removed before them.
func RemoveOptions(msg []byte, h RRHeader, code uint16, from int) ([]byte, RRHeader, error) {
	for {
		off, n, err := NextOption(msg, h, code, from)
		if err != nil || off < 0 {
			return msg, h, err
		}
		msg = RemoveOption(msg, h, off, n)
		h.RDLen -= n
		from = off
	}
}

// ECSAnswer is what the ECS options of an answer say about the subnet its query carried
// (CheckECSAnswer).
type ECSAnswer struct {
	Count int // ECS options in the answer
	// Mismatch: some option names another subnet than the query's (family, source prefix
	// length or address differ) or is malformed. RFC 7871 §7.3: such an answer is not the
	// answer for the subnet sent.
	Mismatch bool
	// ZeroScope: there is an option and each one has SCOPE PREFIX-LENGTH 0.
	ZeroScope bool
}

// CheckECSAnswer compares every ECS option of the OPT record h of msg with sent, the
// subnet the query carried. Options running past the record make a Mismatch.
func CheckECSAnswer(msg []byte, h RRHeader, sent ECS) ECSAnswer {
	a := ECSAnswer{ZeroScope: true}
	for from := h.RDOff; ; {
		off, n, err := NextOption(msg, h, OptionECS, from)
		if err != nil {
			a.Mismatch = true
			break
		}
		if off < 0 {
			break
		}
		a.Count++
		e, err := ParseECS(msg[off+4 : off+n])
		if err != nil || !e.SameSubnet(sent) {
			a.Mismatch = true
		}
		a.ZeroScope = a.ZeroScope && err == nil && e.Scope == 0
		from = off + n
	}
	a.ZeroScope = a.ZeroScope && a.Count > 0 && !a.Mismatch
	return a
}

// SameSubnet reports whether e and o name one subnet: family, source prefix length and
// address (the scope is left out).
func (e ECS) SameSubnet(o ECS) bool {
	return e.Family == o.Family && e.Source == o.Source && e.Addr == o.Addr
}
