package server

import (
	"net/netip"

	"github.com/dnsfront/dnsfront/config"
	"github.com/dnsfront/dnsfront/engine/rules"
)

// tlsLimit adapts the rules' per-client TLS limiter (tuning.tcp) to the handshakers.
type tlsLimit struct {
	limits rules.TLSLimits
	l      *rules.TLSLimiter
	clock  rules.Clock
}

func (t *tlsLimit) Begin(a netip.Addr) bool { return t.l.Begin(a, t.clock.Nanos()) }
func (t *tlsLimit) Done(a netip.Addr, resumed bool) {
	t.l.Done(a, resumed, t.clock.Nanos())
}
func (t *tlsLimit) Abort(a netip.Addr) { t.l.Abort(a, t.clock.Nanos()) }

// applyTLSLimits puts tuning.tcp's per-client TLS limits in force on every TLS bind, one
// limiter for all (a client's sessions count across binds). A reload that leaves the
// limits unchanged keeps the limiter, and with it the clients' rates and bans.
func (s *Server) applyTLSLimits(cfg *config.Config) {
	lim, on := tlsLimits(cfg.Tuning.TCP)
	var cur *tlsLimit
	for _, tb := range s.tls {
		if tb.limit != nil && tb.limit.limits == lim {
			cur = tb.limit
		}
	}
	if on && cur == nil {
		cur = &tlsLimit{limits: lim, l: rules.NewTLSLimiter(lim), clock: s.pol.clock}
	}
	if !on {
		cur = nil
	}
	for _, tb := range s.tls {
		tb.limit = cur
		if cur == nil {
			tb.hs.SetClientLimiter(nil)
		} else {
			tb.hs.SetClientLimiter(cur)
		}
	}
	s.applyQUICLimits()
}

// applyQUICLimits puts the TLS binds' limiter in force on the QUIC listeners too: a
// client's handshakes and sessions count across DoT, DoH, DoQ and DoH3. It runs after
// applyTLSLimits and once the QUIC listeners have started.
func (s *Server) applyQUICLimits() {
	var cur *tlsLimit
	for _, tb := range s.tls {
		if tb.limit != nil {
			cur = tb.limit
		}
	}
	for _, l := range s.quic {
		if cur == nil {
			l.SetClientLimiter(nil)
		} else {
			l.SetClientLimiter(cur)
		}
	}
}
