package lb

import (
	"context"
	"net"

	"github.com/miekg/dns"
)

// ppLocal is a PROXY protocol v2 header with the LOCAL command: the connection is the
// proxy's own, not a client's. A backend that requires a header from us (use_proxy_protocol)
// would drop a health check without one; dnsdist sends this one in front of its checks.
var ppLocal = []byte("\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00")

// dialProbe connects a health check to b. For a use_proxy_protocol backend the LOCAL
// header starts the TCP connection, or every UDP datagram.
func dialProbe(ctx context.Context, cl *dns.Client, b *Backend) (*dns.Conn, error) {
	if !b.Config.ProxyProtocol {
		return cl.DialContext(ctx, b.Addr.String())
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, cl.Net, b.Addr.String())
	if err != nil {
		return nil, err
	}
	if u, ok := c.(*net.UDPConn); ok {
		return &dns.Conn{Conn: ppDatagramConn{u}}, nil
	}
	if _, err := c.Write(ppLocal); err != nil {
		c.Close()
		return nil, err
	}
	return &dns.Conn{Conn: c}, nil
}

// ppDatagramConn puts the LOCAL header in front of each datagram it writes. It stays a
// net.PacketConn, so that dns.Conn writes messages without a TCP length prefix.
type ppDatagramConn struct{ *net.UDPConn }

func (c ppDatagramConn) Write(p []byte) (int, error) {
	buf := make([]byte, 0, len(ppLocal)+len(p))
	buf = append(append(buf, ppLocal...), p...)
	if _, err := c.UDPConn.Write(buf); err != nil {
		return 0, err
	}
	return len(p), nil
}
