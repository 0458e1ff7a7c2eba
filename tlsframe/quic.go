package tlsframe

import "crypto/tls"

// ServerConfig returns a tls.Config for a listener that runs off the loops (QUIC, through
// crypto/tls's QUIC API): the snapshot's certificates, SNI selection and staples, the
// bind's current session-ticket keys, and nextProtos. QUIC is TLS 1.3 only. Each call
// makes a new config: callers keep it for as long as the snapshot and the ticket keys
// (TicketKeys.Keys) are unchanged.
func (s *Snapshot) ServerConfig(nextProtos []string) *tls.Config {
	cfg := s.config.Clone()
	cfg.NextProtos = nextProtos
	cfg.MinVersion = tls.VersionTLS13
	if s.tickets != nil && !cfg.SessionTicketsDisabled {
		cfg.SetSessionTicketKeys(s.tickets.Keys())
	}
	return cfg
}
