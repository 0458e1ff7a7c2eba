package server

import (
	"fmt"
	"maps"

	"github.com/dnsfront/dnsfront/config"
)

// Listener changes on reload. The loops' binds (Do53, DoT, DoH) follow the configuration:
// a bind whose address is new starts listening, one whose address is gone stops, and one
// whose settings fixed at start changed (bindChanges: protocol, pool, tcp, doh, the TLS
// ring and handshake limits, …) is replaced. A TLS bind that is new or replaced gets a TLS
// side of its own (ticket ring, snapshot store, handshaker), built in prepare; the TLS side
// of a bind removed or replaced is retired once its connections are gone, since they
// still use it while they drain. The engine opens the new sockets in prepare (an address
// in use fails the reload and changes nothing) and swaps at commit (engine/listen.go).

// listenerPlan is the TLS side of the binds of a configuration being prepared.
type listenerPlan struct {
	tls     map[string]*tlsBind // every TLS bind of the new configuration, by tlsKey
	created []*tlsBind          // built for it: closed if the reload aborts
	retired []*tlsBind          // of binds gone or replaced: closed once drained
}

// prepareListeners builds the TLS side of the binds cfg adds or replaces and keeps that
// of the binds it leaves as they are.
func (s *Server) prepareListeners(cfg *config.Config) (*listenerPlan, error) {
	cur := s.tlsBinds()
	old := map[string]config.Bind{}
	for _, b := range s.cfg.Binds {
		old[tlsKey(b)] = b
	}
	lp := &listenerPlan{tls: map[string]*tlsBind{}}
	for i, b := range cfg.Binds {
		if b.TLS == nil {
			continue
		}
		key := tlsKey(b)
		if ob, ok := old[key]; ok && ob.TLS != nil && cur[key] != nil && len(bindChanges(i, ob, b)) == 0 {
			lp.tls[key] = cur[key]
			continue
		}
		tb, err := newTLSBind(b, s.loops, s.log)
		if err != nil {
			lp.abort()
			return nil, cfg.At(fmt.Sprintf("binds[%d].tls", i), err)
		}
		lp.tls[key] = tb
		lp.created = append(lp.created, tb)
	}
	for key, tb := range cur {
		if lp.tls[key] != tb {
			lp.retired = append(lp.retired, tb)
		}
	}
	return lp, nil
}

// abort closes the TLS sides built for a reload that failed.
func (lp *listenerPlan) abort() {
	for _, tb := range lp.created {
		tb.close()
	}
	lp.created = nil
}

// tlsBinds returns the TLS binds in force. The map is never changed once published:
// a reload publishes a new one.
func (s *Server) tlsBinds() map[string]*tlsBind {
	s.tlsMu.RLock()
	defer s.tlsMu.RUnlock()
	return s.tls
}

// setTLSBinds publishes the TLS binds of a committed configuration and keeps the retired
// ones until retire (or Shutdown) closes them. In a fleet, the binds new to it take the
// fleet's ticket ring (fleet.go).
func (s *Server) setTLSBinds(m map[string]*tlsBind, retired []*tlsBind) {
	s.tlsMu.Lock()
	was := map[*tlsBind]bool{}
	for _, tb := range s.tls {
		was[tb] = true
	}
	var added []*tlsBind
	for _, tb := range m {
		if !was[tb] {
			added = append(added, tb)
		}
	}
	s.tls = maps.Clone(m)
	for _, tb := range retired {
		s.retiring[tb] = struct{}{}
	}
	s.tlsMu.Unlock()
	s.fm.adoptTickets(added) // outside tlsMu: the fleet's installs take ticketsMu, then tlsMu
}

// retire closes TLS sides whose connections are gone.
func (s *Server) retire(tbs []*tlsBind) {
	s.tlsMu.Lock()
	defer s.tlsMu.Unlock()
	for _, tb := range tbs {
		if _, ok := s.retiring[tb]; ok {
			delete(s.retiring, tb)
			tb.close()
		}
	}
}

// close stops a TLS side: its ticket rotation, its snapshot store, its key log.
func (tb *tlsBind) close() {
	tb.tickets.Stop()
	tb.store.Close()
	if tb.keyLog != nil {
		_ = tb.keyLog.Close()
	}
}
