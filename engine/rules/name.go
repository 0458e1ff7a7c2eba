package rules

import (
	"fmt"
	"strings"

	"github.com/miekg/dns"
)

// maxTextName bounds the presentation form of a name: 255 wire bytes, each escaped as \DDD at worst.
const maxTextName = 1024

func lower(b byte) byte {
	if b >= 'A' && b <= 'Z' {
		return b + 32
	}
	return b
}

// nameToWire converts a presentation-form name ("Example.COM") to lower-cased wire form.
func nameToWire(s string) ([]byte, error) {
	if _, ok := dns.IsDomainName(s); !ok {
		return nil, fmt.Errorf("%q is not a domain name", s)
	}
	buf := make([]byte, 256)
	n, err := dns.PackDomainName(dns.Fqdn(strings.ToLower(s)), buf, 0, nil, false)
	if err != nil {
		return nil, fmt.Errorf("%q: %v", s, err)
	}
	return buf[:n:n], nil
}

// labelCount returns the number of labels of a wire name (the root has none).
func labelCount(wire []byte) int {
	n := 0
	for off := 0; off < len(wire) && wire[off] != 0; off += 1 + int(wire[off]) {
		n++
	}
	return n
}

// equalFold compares a wire name with a lower-case one.
func equalFold(wire, lowerWire []byte) bool {
	if len(wire) != len(lowerWire) {
		return false
	}
	for i, b := range wire {
		if lower(b) != lowerWire[i] {
			return false
		}
	}
	return true
}

// appendNameText appends the presentation form of a wire name, without the trailing dot
// (the root is "."), escaping as dnsdist does: \. and \\ inside labels, \DDD for bytes
// outside printable ASCII.
func appendNameText(dst, wire []byte) []byte {
	if len(wire) == 0 || wire[0] == 0 {
		return append(dst, '.')
	}
	first := true
	for off := 0; off < len(wire) && wire[off] != 0; {
		l := int(wire[off])
		off++
		if off+l > len(wire) {
			break
		}
		if !first {
			dst = append(dst, '.')
		}
		first = false
		for _, b := range wire[off : off+l] {
			switch {
			case b == '.' || b == '\\':
				dst = append(dst, '\\', b)
			case b < 0x21 || b > 0x7e:
				dst = append(dst, '\\', '0'+b/100, '0'+b/10%10, '0'+b%10)
			default:
				dst = append(dst, b)
			}
		}
		off += l
	}
	return dst
}

// nameText returns q's name in presentation form, computed once per evaluation in q's scratch.
func (q *Query) nameText() []byte {
	if q.textLen == 0 {
		t := appendNameText(q.text[:0], q.QName)
		if len(t) > len(q.text) {
			return t // a name longer than any valid one, filled in by hand: not cached
		}
		q.textLen = int16(len(t)) + 1
	}
	return q.text[:q.textLen-1]
}

// NameString returns a wire name in presentation form with a trailing dot (for logs and the API).
func NameString(wire []byte) string {
	s := string(appendNameText(nil, wire))
	if s == "." {
		return s
	}
	return s + "."
}
