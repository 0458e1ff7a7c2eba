package dnstap

import (
	"net"
	"net/netip"
	"testing"
	"time"

	dnstappb "github.com/dnstap/golang-dnstap"
	"google.golang.org/protobuf/proto"
)

func decode(t *testing.T, e *encoder, ev *Event) *dnstappb.Dnstap {
	t.Helper()
	b, err := e.encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	var d dnstappb.Dnstap
	if err := proto.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return &d
}

func TestEncodeQueryAndResponse(t *testing.T) {
	e := newEncoder("dnsfront 1.0")
	qt := time.Unix(1700000000, 123456789)
	rt := qt.Add(3 * time.Millisecond)
	for _, c := range []struct {
		name     string
		ev       Event
		typ      dnstappb.Message_Type
		fam      dnstappb.SocketFamily
		proto    dnstappb.SocketProtocol
		qa, ra   string
		qp, rp   uint32
		identity string
	}{
		{"DoT query, IPv4", Event{Kind: ClientQuery, Protocol: DoT, Client: netip.MustParseAddrPort("192.0.2.1:5353"),
			Server: netip.MustParseAddrPort("127.0.0.1:853"), QueryTime: qt, Msg: []byte("q"), Identity: "edge1"},
			dnstappb.Message_CLIENT_QUERY, dnstappb.SocketFamily_INET, dnstappb.SocketProtocol_DOT, "192.0.2.1", "127.0.0.1", 5353, 853, "edge1"},
		{"UDP response, IPv6", Event{Kind: ClientResponse, Protocol: UDP, Client: netip.MustParseAddrPort("[2001:db8::1]:4000"),
			Server: netip.MustParseAddrPort("[::1]:53"), QueryTime: qt, ResponseTime: rt, Msg: []byte("r")},
			dnstappb.Message_CLIENT_RESPONSE, dnstappb.SocketFamily_INET6, dnstappb.SocketProtocol_UDP, "2001:db8::1", "::1", 4000, 53, ""},
		{"DoQ: dnstap.proto's DOQ (7)", Event{Kind: ClientQuery, Protocol: DoQ, Client: netip.MustParseAddrPort("192.0.2.1:1"), Msg: []byte("q")},
			dnstappb.Message_CLIENT_QUERY, dnstappb.SocketFamily_INET, dnstappb.SocketProtocol(7), "192.0.2.1", "", 1, 0, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := decode(t, e, &c.ev)
			m := d.GetMessage()
			if d.GetType() != dnstappb.Dnstap_MESSAGE || string(d.GetVersion()) != "dnsfront 1.0" || string(d.GetIdentity()) != c.identity {
				t.Fatalf("envelope: type %v version %q identity %q", d.GetType(), d.GetVersion(), d.GetIdentity())
			}
			if m.GetType() != c.typ || m.GetSocketFamily() != c.fam || m.SocketProtocol == nil || *m.SocketProtocol != c.proto {
				t.Fatalf("message: type %v family %v protocol %v", m.GetType(), m.GetSocketFamily(), m.SocketProtocol)
			}
			if got := net.IP(m.GetQueryAddress()).String(); got != c.qa || m.GetQueryPort() != c.qp {
				t.Errorf("query address %s port %d, want %s %d", got, m.GetQueryPort(), c.qa, c.qp)
			}
			if c.ra != "" {
				if got := net.IP(m.GetResponseAddress()).String(); got != c.ra || m.GetResponsePort() != c.rp {
					t.Errorf("response address %s port %d, want %s %d", got, m.GetResponsePort(), c.ra, c.rp)
				}
			} else if m.ResponseAddress != nil || m.ResponsePort != nil {
				t.Errorf("response address %v port %v for an event without one", m.ResponseAddress, m.ResponsePort)
			}
			if c.ev.QueryTime.IsZero() {
				if m.QueryTimeSec != nil {
					t.Error("a query time for an event without one")
				}
			} else if m.GetQueryTimeSec() != uint64(qt.Unix()) || m.GetQueryTimeNsec() != uint32(qt.Nanosecond()) {
				t.Errorf("query time %d.%09d", m.GetQueryTimeSec(), m.GetQueryTimeNsec())
			}
			if c.typ == dnstappb.Message_CLIENT_QUERY {
				if string(m.GetQueryMessage()) != string(c.ev.Msg) || m.ResponseMessage != nil {
					t.Errorf("query message %q, response message %q", m.GetQueryMessage(), m.GetResponseMessage())
				}
			} else {
				if string(m.GetResponseMessage()) != string(c.ev.Msg) || m.QueryMessage != nil {
					t.Errorf("response message %q, query message %q", m.GetResponseMessage(), m.GetQueryMessage())
				}
				if m.GetResponseTimeSec() != uint64(rt.Unix()) || m.GetResponseTimeNsec() != uint32(rt.Nanosecond()) {
					t.Errorf("response time %d.%09d", m.GetResponseTimeSec(), m.GetResponseTimeNsec())
				}
			}
		})
	}
}

// A v4-mapped client is IPv4: 4-byte addresses, INET.
func TestEncodeMappedAddress(t *testing.T) {
	e := newEncoder("")
	d := decode(t, e, &Event{Kind: ClientQuery, Protocol: UDP, Client: netip.MustParseAddrPort("[::ffff:192.0.2.7]:53"),
		Server: netip.MustParseAddrPort("[::ffff:127.0.0.1]:53")})
	m := d.GetMessage()
	if m.GetSocketFamily() != dnstappb.SocketFamily_INET || len(m.GetQueryAddress()) != 4 || len(m.GetResponseAddress()) != 4 {
		t.Fatalf("family %v, addresses %v %v", m.GetSocketFamily(), m.GetQueryAddress(), m.GetResponseAddress())
	}
	if d.Version != nil || d.Identity != nil {
		t.Errorf("empty version/identity sent: %q %q", d.Version, d.Identity)
	}
}
