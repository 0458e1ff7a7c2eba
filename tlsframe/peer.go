package tlsframe

import "net/netip"

// SetPeer replaces the client address given to NewConn, for a client whose address a
// proxy told the engine before the TLS session began (a PROXY protocol header in front
// of the ClientHello): the per-client handshake limits and the logs then count the
// client, not the proxy. Call it on the loop, before the first OnTraffic.
func (c *Conn) SetPeer(peer netip.AddrPort) { c.peer = peer }
