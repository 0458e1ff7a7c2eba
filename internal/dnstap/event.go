package dnstap

import (
	"net/netip"
	"time"

	dnstappb "github.com/dnstap/golang-dnstap"
	"google.golang.org/protobuf/proto"
)

// Kind is the dnstap message type of an Event: a query from a client or the response
// sent to it (dnstap's CLIENT_QUERY and CLIENT_RESPONSE).
type Kind uint8

const (
	ClientQuery Kind = iota
	ClientResponse
)

// Protocol is the transport the client used, as dnstap's SocketProtocol names it.
type Protocol uint8

const (
	UDP Protocol = iota
	TCP
	DoT
	DoH // HTTP/2, HTTP/1.1 and HTTP/3 alike: dnstap has one value for DNS over HTTPS
	DoQ
)

// socketProtocol maps a Protocol to dnstap's SocketProtocol. DOQ is 7 in dnstap.proto
// since 2023 (after DNSCryptUDP 5 and DNSCryptTCP 6); golang-dnstap v0.4.0's generated
// code predates it, so a reader built on it shows the number (its dnstap command prints
// "socket_protocol: 7").
var socketProtocol = [...]dnstappb.SocketProtocol{
	UDP: dnstappb.SocketProtocol_UDP,
	TCP: dnstappb.SocketProtocol_TCP,
	DoT: dnstappb.SocketProtocol_DOT,
	DoH: dnstappb.SocketProtocol_DOH,
	DoQ: dnstappb.SocketProtocol(7),
}

// Event is one message to log. The event loops fill it; Logger.Log copies Msg, so the
// caller's buffers may be reused as soon as Log returns.
type Event struct {
	Kind     Kind
	Protocol Protocol
	// Client is the client's address (dnstap's query_address and query_port); Server the
	// address the query arrived at (response_address and response_port).
	Client, Server netip.AddrPort
	// QueryTime is when the query was accepted; ResponseTime when the response was
	// sent (responses only). Zero times are left out of the message.
	QueryTime, ResponseTime time.Time
	// Msg is the DNS message: the query for ClientQuery, the response for ClientResponse.
	Msg []byte
	// Identity is the server identity of the DnstapLog action that logged the event.
	Identity string
}

// encoder turns events into dnstap payloads. It reuses its message and buffer from one
// event to the next: it belongs to one writer goroutine.
type encoder struct {
	version []byte
	dt      dnstappb.Dnstap
	msg     dnstappb.Message
	buf     []byte
	// The message's optional fields point here instead of to a fresh allocation each.
	dtType       dnstappb.Dnstap_Type
	typ          dnstappb.Message_Type
	fam          dnstappb.SocketFamily
	proto        dnstappb.SocketProtocol
	qport, rport uint32
	qsec, rsec   uint64
	qnsec, rnsec uint32
	lastIdentity []byte
	qaddr, raddr [16]byte
}

func newEncoder(version string) *encoder {
	return &encoder{version: []byte(version)}
}

// encode returns the dnstap payload of ev, valid until the next call.
func (e *encoder) encode(ev *Event) ([]byte, error) {
	m := &e.msg
	m.Reset()
	e.typ = dnstappb.Message_CLIENT_QUERY
	if ev.Kind == ClientResponse {
		e.typ = dnstappb.Message_CLIENT_RESPONSE
	}
	m.Type = &e.typ
	e.fam = dnstappb.SocketFamily_INET
	if a := ev.Client.Addr(); a.IsValid() && !a.Unmap().Is4() {
		e.fam = dnstappb.SocketFamily_INET6
	}
	m.SocketFamily = &e.fam
	if int(ev.Protocol) < len(socketProtocol) {
		e.proto = socketProtocol[ev.Protocol]
		m.SocketProtocol = &e.proto
	}
	if ev.Client.IsValid() {
		m.QueryAddress = addrBytes(&e.qaddr, ev.Client.Addr(), e.fam)
		e.qport = uint32(ev.Client.Port())
		m.QueryPort = &e.qport
	}
	if ev.Server.IsValid() && !ev.Server.Addr().IsUnspecified() {
		m.ResponseAddress = addrBytes(&e.raddr, ev.Server.Addr(), e.fam)
	}
	if ev.Server.IsValid() {
		e.rport = uint32(ev.Server.Port())
		m.ResponsePort = &e.rport
	}
	if !ev.QueryTime.IsZero() {
		e.qsec, e.qnsec = uint64(ev.QueryTime.Unix()), uint32(ev.QueryTime.Nanosecond())
		m.QueryTimeSec, m.QueryTimeNsec = &e.qsec, &e.qnsec
	}
	if ev.Kind == ClientQuery {
		m.QueryMessage = ev.Msg
	} else {
		m.ResponseMessage = ev.Msg
		if !ev.ResponseTime.IsZero() {
			e.rsec, e.rnsec = uint64(ev.ResponseTime.Unix()), uint32(ev.ResponseTime.Nanosecond())
			m.ResponseTimeSec, m.ResponseTimeNsec = &e.rsec, &e.rnsec
		}
	}
	d := &e.dt
	d.Reset()
	e.dtType = dnstappb.Dnstap_MESSAGE
	d.Type = &e.dtType
	d.Message = m
	if ev.Identity != "" {
		if string(e.lastIdentity) != ev.Identity {
			e.lastIdentity = []byte(ev.Identity)
		}
		d.Identity = e.lastIdentity
	}
	if len(e.version) > 0 {
		d.Version = e.version
	}
	var err error
	e.buf, err = proto.MarshalOptions{}.MarshalAppend(e.buf[:0], d)
	return e.buf, err
}

// addrBytes is a, in dst, in the family of the message: an IPv4 client's server address is sent
// as 4 bytes even when the listener is dual-stack.
func addrBytes(dst *[16]byte, a netip.Addr, fam dnstappb.SocketFamily) []byte {
	a = a.Unmap()
	if fam == dnstappb.SocketFamily_INET && a.Is4() {
		b := a.As4()
		return append(dst[:0], b[:]...)
	}
	*dst = a.As16()
	return dst[:]
}
