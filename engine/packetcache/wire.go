package packetcache

import (
	"encoding/binary"
	"errors"
	"math"

	"github.com/dnsfront/dnsfront/internal/dnswire"
)

// Wire-format helpers in miekg/dns's (msg, off) -> (value, newOff, error)
// shape. They never allocate: the cache runs them on every lookup.

const (
	headerLen  = dnswire.HeaderLen
	maxNameLen = dnswire.MaxNameLen
	// key = lower-cased qname wire form, qtype, qclass, one flag byte, then the
	// client's own EDNS Client Subnet and the one a frontend adds, if any (ecs.go).
	maxKeyLen = maxNameLen + 5 + 2*ecsKeyLen

	typeSOA = 6
	typeOPT = dnswire.TypeOPT

	rcodeNoError  = 0
	rcodeServFail = 2
	rcodeNXDomain = 3
	rcodeRefused  = 5
)

// Header flag bits (second 16-bit word).
const (
	flagQR     = 1 << 15
	flagTC     = 1 << 9
	flagRD     = 1 << 8
	flagCD     = 1 << 4
	opcodeMask = 0xF << 11
	rcodeMask  = 0xF
	ednsDO     = 1 << 15 // in the OPT record's TTL field
)

// Bits of the key's flag byte: everything in the query that changes the answer.
const (
	keyRD   = 1 << 0
	keyCD   = 1 << 1
	keyEDNS = 1 << 2
	keyDO   = 1 << 3
)

var (
	errShort       = dnswire.ErrShort
	errLabel       = dnswire.ErrBadName
	errNameTooLong = errors.New("packetcache: name longer than 255 octets")
	errCompressed  = errors.New("packetcache: compressed question name")
)

// lowerName copies the uncompressed name at off into dst lower-cased and
// returns the number of bytes written and the offset past the name. A
// question name is never compressed in practice (nothing precedes it to
// point to), so a pointer makes the message uncacheable.
func lowerName(dst []byte, msg []byte, off int) (n int, newOff int, err error) {
	for {
		if off >= len(msg) {
			return 0, 0, errShort
		}
		c := int(msg[off])
		if c&0xC0 != 0 {
			if c&0xC0 == 0xC0 {
				return 0, 0, errCompressed
			}
			return 0, 0, errLabel
		}
		if off+1+c > len(msg) {
			return 0, 0, errShort
		}
		if n+1+c > maxNameLen {
			return 0, 0, errNameTooLong
		}
		dst[n] = byte(c)
		n++
		off++
		if c == 0 {
			return n, off, nil
		}
		for _, b := range msg[off : off+c] {
			if 'A' <= b && b <= 'Z' {
				b += 'a' - 'A'
			}
			dst[n] = b
			n++
		}
		off += c
	}
}

// queryKey builds the cache key of a query into kb. It reports false for
// queries the cache does not handle: responses, opcodes other than QUERY,
// not exactly one question, records in the answer or authority sections,
// or an additional section holding anything but one OPT record (TSIG-signed
// queries must reach the backend).
func queryKey(q []byte, kb *[maxKeyLen]byte) (keyLen, nameEnd int, ok bool) {
	if len(q) < headerLen {
		return 0, 0, false
	}
	flags := binary.BigEndian.Uint16(q[2:])
	if flags&(flagQR|opcodeMask) != 0 ||
		binary.BigEndian.Uint16(q[4:]) != 1 ||
		binary.BigEndian.Uint16(q[6:]) != 0 ||
		binary.BigEndian.Uint16(q[8:]) != 0 {
		return 0, 0, false
	}
	arcount := binary.BigEndian.Uint16(q[10:])
	if arcount > 1 {
		return 0, 0, false
	}
	n, off, err := lowerName(kb[:], q, headerLen)
	if err != nil || off+4 > len(q) {
		return 0, 0, false
	}
	nameEnd = off
	copy(kb[n:], q[off:off+4])
	n += 4
	off += 4
	var kf byte
	if flags&flagRD != 0 {
		kf |= keyRD
	}
	if flags&flagCD != 0 {
		kf |= keyCD
	}
	var h dnswire.RRHeader
	if arcount == 1 {
		h, _, err = dnswire.ReadRR(q, off)
		if err != nil || h.Type != typeOPT {
			return 0, 0, false
		}
		kf |= keyEDNS
		if h.TTL&ednsDO != 0 {
			kf |= keyDO
		}
	}
	kb[n] = kf
	n++
	if arcount == 1 && h.RDLen > 0 {
		// The client's own subnet changes the answer of a backend that honours it.
		e, found, err := dnswire.ReadECS(q, h)
		if err != nil {
			return 0, 0, false // the backend would refuse it (FORMERR): nothing to share
		}
		if found {
			n = appendECSKey(kb, n, ecsKeyClient, e)
		}
	}
	return n, nameEnd, true
}

// analyze walks every record of a response, checks that it answers the
// question in key, decides its lifetime under o, and appends the offsets of
// its TTL fields to offs. Compressed owner names are skipped, not followed.
func analyze(resp []byte, key []byte, o *Options, tempFailTTL uint32, offs []uint16) (uint32, []uint16, error) {
	if len(resp) < headerLen {
		return 0, offs, errShort
	}
	flags := binary.BigEndian.Uint16(resp[2:])
	if flags&flagQR == 0 || flags&opcodeMask != 0 || flags&flagTC != 0 {
		return 0, offs, nil
	}
	if binary.BigEndian.Uint16(resp[4:]) != 1 {
		return 0, offs, nil
	}
	// The answer's question must be the query's, so that Get can copy the
	// query's qname over it byte for byte.
	var nb [maxNameLen]byte
	n, off, err := lowerName(nb[:], resp, headerLen)
	if err != nil {
		return 0, offs, err
	}
	nameLen := len(key) - 5 // key is the question part of the key only
	if n != nameLen || string(nb[:n]) != string(key[:nameLen]) ||
		off+4 > len(resp) || string(resp[off:off+4]) != string(key[nameLen:nameLen+4]) {
		return 0, offs, nil
	}
	off += 4
	ancount := int(binary.BigEndian.Uint16(resp[6:]))
	nscount := int(binary.BigEndian.Uint16(resp[8:]))
	total := ancount + nscount + int(binary.BigEndian.Uint16(resp[10:]))
	rcode := int(flags & rcodeMask)

	minTTL := uint32(math.MaxUint32)
	soaMin := uint32(math.MaxUint32)
	seenAuthSOA := false
	for i := 0; i < total; i++ {
		h, next, err := dnswire.ReadRR(resp, off)
		if err != nil {
			return 0, offs, err
		}
		off = next
		if h.Type == typeOPT {
			if h.TTL>>24 != 0 { // extended RCODE (BADVERS...): leave to the backend
				return 0, offs, nil
			}
			continue
		}
		offs = append(offs, uint16(h.TTLOff))
		minTTL = min(minTTL, h.TTL)
		if h.Type == typeSOA && i >= ancount && i < ancount+nscount {
			seenAuthSOA = true
			if h.RDLen >= 22 {
				soaMin = min(soaMin, binary.BigEndian.Uint32(resp[h.RDOff+h.RDLen-4:]))
			}
		}
	}

	var ttl uint32
	switch rcode {
	case rcodeServFail, rcodeRefused:
		return tempFailTTL, offs, nil
	case rcodeNXDomain, rcodeNoError:
		if minTTL == math.MaxUint32 {
			return 0, offs, nil // no record carries a TTL
		}
		if rcode == rcodeNXDomain || seenAuthSOA {
			// RFC 2308 §5: a negative answer lives min(SOA TTL, SOA MINIMUM).
			ttl = min(minTTL, soaMin, o.MaxNegativeTTL)
		} else {
			ttl = min(minTTL, o.MaxTTL)
		}
	default:
		return 0, offs, nil
	}
	if ttl < o.MinTTL {
		return 0, offs, nil
	}
	return ttl, offs, nil
}
