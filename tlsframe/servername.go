package tlsframe

// ServerName returns the server name (SNI) the client asked for, "" before the handshake
// is done or when it sent none. It runs on the connection's loop and reads the handshake
// state once: rules look at it for every query of the connection.
func (c *Conn) ServerName() string {
	if !c.sniSet {
		if c.state.Load() != stateEstablished || c.tls == nil {
			return ""
		}
		c.sni, c.sniSet = c.tls.ConnectionState().ServerName, true
	}
	return c.sni
}
