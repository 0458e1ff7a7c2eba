package engine

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// The PROXY protocol version 2 header (haproxy's proxy-protocol.txt, section 2.2), read
// and written on the loops. github.com/pires/go-proxyproto reads headers from a
// *bufio.Reader and returns a *Header with net.Addr values and a TLV slice: a reader, a
// header and two addresses allocated per UDP datagram, and a blocking read that has to be
// retried from the start when a TCP header arrives in pieces. The loops need to parse a
// byte slice they already hold, say "incomplete, wait" without consuming anything, and
// allocate nothing; so the format, which is small and fixed, is read here.

// ppSignature starts every version 2 header.
var ppSignature = [12]byte{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A}

const (
	ppFixedLen = 16 // signature, version and command, family and transport, length
	ppCmdLocal = 0x0
	ppCmdProxy = 0x1
	ppAFInet   = 0x1
	ppAFInet6  = 0x2
	ppStream   = 0x1
	ppDgram    = 0x2
	// ppTLVSSL is PP2_TYPE_SSL. dnsdist sends it with an empty value to say that the
	// client's query arrived over an encrypted transport (proxy_protocol_advertise_tls),
	// and so do we.
	ppTLVSSL = 0x20
)

var (
	// errPPShort: b holds the start of what may be a valid header; wait for more bytes.
	errPPShort = errors.New("proxy protocol: header incomplete")
	// errPPInvalid: b cannot start a valid version 2 header.
	errPPInvalid = errors.New("proxy protocol: invalid header")
	// errPPTooLarge: the header is longer than proxy_protocol.maximum_payload_size.
	errPPTooLarge = errors.New("proxy protocol: header larger than maximum_payload_size")
)

// ppHeader is what a header says about the connection it starts.
type ppHeader struct {
	// local: a LOCAL command (a proxy's own health check); the connection's real
	// addresses apply and src and dst are invalid.
	local    bool
	src, dst netip.AddrPort
}

// parseProxyHeader reads the version 2 header at the start of b, of at most max bytes in
// all, and returns it with its length. With errPPShort the bytes seen so far are a valid
// beginning: call again with more. It does not allocate.
func parseProxyHeader(b []byte, max int) (ppHeader, int, error) {
	var h ppHeader
	for i := range min(len(b), len(ppSignature)) {
		if b[i] != ppSignature[i] {
			return h, 0, errPPInvalid
		}
	}
	if len(b) < ppFixedLen {
		if len(b) > 12 && b[12]>>4 != 2 {
			return h, 0, errPPInvalid
		}
		return h, 0, errPPShort
	}
	if b[12]>>4 != 2 {
		return h, 0, errPPInvalid
	}
	total := ppFixedLen + int(binary.BigEndian.Uint16(b[14:]))
	if total > max {
		return h, 0, errPPTooLarge
	}
	var addrLen int
	switch cmd := b[12] & 0xf; cmd {
	case ppCmdLocal:
		// The family, transport and addresses of a LOCAL header are ignored.
		h.local = true
	case ppCmdProxy:
		// As dnsdist: a proxied connection must say which IP addresses it is for
		// (UNSPEC and UNIX families are refused), over a stream or datagrams.
		switch b[13] >> 4 {
		case ppAFInet:
			addrLen = 12
		case ppAFInet6:
			addrLen = 36
		default:
			return h, 0, errPPInvalid
		}
		if t := b[13] & 0xf; t != ppStream && t != ppDgram {
			return h, 0, errPPInvalid
		}
		if total-ppFixedLen < addrLen {
			return h, 0, errPPInvalid
		}
	default:
		return h, 0, errPPInvalid
	}
	if len(b) < total {
		return h, 0, errPPShort
	}
	body := b[ppFixedLen:total]
	if !h.local {
		if addrLen == 12 {
			src, dst := netip.AddrFrom4([4]byte(body[0:4])), netip.AddrFrom4([4]byte(body[4:8]))
			h.src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(body[8:]))
			h.dst = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(body[10:]))
		} else {
			src, dst := netip.AddrFrom16([16]byte(body[0:16])), netip.AddrFrom16([16]byte(body[16:32]))
			h.src = netip.AddrPortFrom(src.Unmap(), binary.BigEndian.Uint16(body[32:]))
			h.dst = netip.AddrPortFrom(dst.Unmap(), binary.BigEndian.Uint16(body[34:]))
		}
		// The TLVs after the addresses must be well formed; their values are not used.
		for tlv := body[addrLen:]; len(tlv) > 0; {
			if len(tlv) < 3 {
				return h, 0, errPPInvalid
			}
			l := 3 + int(binary.BigEndian.Uint16(tlv[1:]))
			if len(tlv) < l {
				return h, 0, errPPInvalid
			}
			tlv = tlv[l:]
		}
	}
	return h, total, nil
}

// appendProxyHeader appends a PROXY header for a query from src that reached dst, over a
// stream (tcp) or a datagram, with the SSL TLV when tls. Addresses of different families
// (a client over IPv4 at a listener on IPv6) are both written as IPv6; an invalid dst
// (a listener off the loops whose address the engine does not know) is the unspecified
// address of src's family, port 0.
func appendProxyHeader(out []byte, src, dst netip.AddrPort, tcp, tls bool) []byte {
	sa, da := src.Addr().Unmap(), dst.Addr().Unmap()
	if !da.IsValid() {
		da = netip.IPv4Unspecified()
		if !sa.Is4() {
			da = netip.IPv6Unspecified()
		}
	}
	transport := byte(ppDgram)
	if tcp {
		transport = ppStream
	}
	four := sa.Is4() && da.Is4()
	body := 36
	fam := byte(ppAFInet6)
	if four {
		body, fam = 12, ppAFInet
	}
	if tls {
		body += 3
	}
	out = append(out, ppSignature[:]...)
	out = append(out, 0x20|ppCmdProxy, fam<<4|transport)
	out = binary.BigEndian.AppendUint16(out, uint16(body))
	if four {
		s, d := sa.As4(), da.As4()
		out = append(out, s[:]...)
		out = append(out, d[:]...)
	} else {
		s, d := sa.As16(), da.As16()
		out = append(out, s[:]...)
		out = append(out, d[:]...)
	}
	out = binary.BigEndian.AppendUint16(out, src.Port())
	out = binary.BigEndian.AppendUint16(out, dst.Port())
	if tls {
		out = append(out, ppTLVSSL, 0, 0)
	}
	return out
}

// appendProxyLocal appends a LOCAL header: the connection is the proxy's own (health
// checks), as dnsdist sends to its backends.
func appendProxyLocal(out []byte) []byte {
	out = append(out, ppSignature[:]...)
	return append(out, 0x20|ppCmdLocal, 0, 0, 0)
}
