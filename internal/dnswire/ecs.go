package dnswire

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// EDNS Client Subnet (RFC 7871): the option's content, read from and written to wire
// form without allocation. The engine adds it to queries, the packet cache keys on it,
// both read it back from answers.

// OptionECS is the EDNS option code of EDNS Client Subnet.
const OptionECS = 8

// Address families of an ECS option (IANA address family numbers).
const (
	FamilyIPv4 = 1
	FamilyIPv6 = 2
)

// ErrBadECS is returned for an ECS option that RFC 7871 §6 does not allow: shorter than
// its fixed part, an unknown family, a prefix longer than the family's address, or an
// address whose length is not the one the source prefix needs.
var ErrBadECS = errors.New("dnswire: malformed EDNS Client Subnet option")

// ECS is the content of an EDNS Client Subnet option.
type ECS struct {
	Family uint16 // FamilyIPv4 or FamilyIPv6
	Source uint8  // SOURCE PREFIX-LENGTH
	Scope  uint8  // SCOPE PREFIX-LENGTH; 0 in queries
	// Addr is the address truncated to Source bits: bytes and bits beyond are zero, so
	// two options for the same subnet compare equal.
	Addr [16]byte
}

// ECSFromAddr is the option a frontend sends for a client at a: its address truncated to
// bits (capped at the family's length). An IPv4-mapped IPv6 address is sent as IPv4.
func ECSFromAddr(a netip.Addr, bits uint8) ECS {
	a = a.Unmap()
	var e ECS
	if a.Is4() {
		e.Family, e.Source = FamilyIPv4, min(bits, 32)
		b := a.As4()
		copy(e.Addr[:], b[:])
	} else {
		e.Family, e.Source = FamilyIPv6, min(bits, 128)
		e.Addr = a.As16()
	}
	e.mask()
	return e
}

// ECSFromPrefix is the option for a fixed subnet (dnsdist's SetECS).
func ECSFromPrefix(p netip.Prefix) ECS {
	return ECSFromAddr(p.Addr(), uint8(p.Bits()))
}

// mask zeroes the address bits beyond Source.
func (e *ECS) mask() {
	n := int(e.Source)
	for i := range e.Addr {
		switch {
		case n >= 8:
			n -= 8
		case n > 0:
			e.Addr[i] &= byte(0xff << (8 - n))
			n = 0
		default:
			e.Addr[i] = 0
		}
	}
}

// AddrLen is the number of address octets on the wire: as many as Source needs.
func (e ECS) AddrLen() int { return (int(e.Source) + 7) / 8 }

// OptionLen is the length of the whole option: code, length and data.
func (e ECS) OptionLen() int { return 4 + 4 + e.AddrLen() }

// AppendOption appends the option (code, length, data) to dst.
func (e ECS) AppendOption(dst []byte) []byte {
	n := e.AddrLen()
	dst = append(dst, 0, OptionECS, 0, byte(4+n), byte(e.Family>>8), byte(e.Family), e.Source, e.Scope)
	return append(dst, e.Addr[:n]...)
}

// Prefix returns the subnet the option names (its source prefix).
func (e ECS) Prefix() netip.Prefix {
	var a netip.Addr
	if e.Family == FamilyIPv4 {
		a = netip.AddrFrom4([4]byte(e.Addr[:4]))
	} else {
		a = netip.AddrFrom16(e.Addr)
	}
	return netip.PrefixFrom(a, int(e.Source))
}

// ParseECS reads the data of an ECS option (after its code and length). Address bits
// beyond the source prefix, which RFC 7871 says must be zero, are cleared rather than
// refused, so that a sloppy client still gets a well-formed key.
func ParseECS(data []byte) (ECS, error) {
	var e ECS
	if len(data) < 4 {
		return e, ErrBadECS
	}
	e.Family = binary.BigEndian.Uint16(data)
	e.Source, e.Scope = data[2], data[3]
	var maxBits uint8
	switch e.Family {
	case FamilyIPv4:
		maxBits = 32
	case FamilyIPv6:
		maxBits = 128
	default:
		return e, ErrBadECS
	}
	if e.Source > maxBits || e.Scope > maxBits || len(data)-4 != e.AddrLen() {
		return e, ErrBadECS
	}
	copy(e.Addr[:], data[4:])
	e.mask()
	return e, nil
}

// FindOption looks for the option code in the OPT record h of msg (as ReadRR or FindOPT
// returned it) and returns the offset of the option (of its code) and its whole length,
// or off -1 when the record does not carry it. An option running past the record is
// an error.
func FindOption(msg []byte, h RRHeader, code uint16) (off, n int, err error) {
	return NextOption(msg, h, code, h.RDOff)
}

// ReadECS finds the ECS option of the OPT record h of msg and parses it. found is false
// when there is none; err is set when the options or the ECS option are malformed.
func ReadECS(msg []byte, h RRHeader) (e ECS, found bool, err error) {
	off, n, err := FindOption(msg, h, OptionECS)
	if err != nil || off < 0 {
		return e, false, err
	}
	e, err = ParseECS(msg[off+4 : off+n])
	return e, err == nil, err
}

// RemoveOption removes the option at off, n octets long (as FindOption returned them),
// from the OPT record h, which must be the last record of msg: the options after it move
// up in place and the record's RDLENGTH shrinks. It returns the shortened message.
func RemoveOption(msg []byte, h RRHeader, off, n int) []byte {
	copy(msg[off:], msg[off+n:])
	binary.BigEndian.PutUint16(msg[h.RDOff-2:], uint16(h.RDLen-n))
	return msg[:len(msg)-n]
}
