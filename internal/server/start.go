package server

import (
	"context"
	"errors"
	"fmt"
	"net"
)

// The order of a start: what can fail runs before the engine's loops read the listening
// sockets, and what fails after them ends the way a predecessor hands over
// (docs/operations.md, Binary upgrade).

// reserveAdmin binds the admin API's addresses before the engine starts, so that an
// address in use fails the start while the loops have taken nothing off the sockets. The
// listeners wait among the inherited ones, which startAdmin serves.
func (s *Server) reserveAdmin(addrs []string) error {
	if s.inheritAdmin == nil {
		s.inheritAdmin = map[string]int{}
	}
	s.reservedAdmin = map[string]bool{}
	for _, addr := range addrs {
		if _, ok := s.inheritAdmin[addr]; ok {
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("webserver: %w", err)
		}
		fd, err := dupListener(ln)
		_ = ln.Close() // the duplicate keeps the socket listening
		if err != nil {
			return fmt.Errorf("webserver: %s: %w", addr, err)
		}
		s.inheritAdmin[addr] = fd
		s.reservedAdmin[addr] = true
	}
	return nil
}

// releaseAdmin closes the reserved admin sockets startAdmin did not take.
func (s *Server) releaseAdmin() {
	for addr := range s.reservedAdmin {
		if fd, ok := s.inheritAdmin[addr]; ok {
			_ = newFile(fd, addr).Close()
			delete(s.inheritAdmin, addr)
		}
	}
	s.reservedAdmin = nil
}

// stopServing stops an engine whose start failed after its loops ran. With sockets
// inherited from a predecessor, which still reads them, it hands over as a predecessor
// does: it stops reading them, answers what it read and ends its connections gracefully
// (their clients reconnect to the predecessor), within drain_timeout. Stop would drop
// them. Without, the sockets close with the engine anyway.
func (s *Server) stopServing() {
	if len(s.inherit) == 0 {
		_ = s.eng.Stop()
		return
	}
	s.log.Warn("start failed after the listeners were served; handing them back", "drain_timeout", s.cfg.General.DrainTimeout.D())
	s.eng.StopListening()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.General.DrainTimeout.D())
	defer cancel()
	if err := errors.Join(s.stopQUIC(ctx), s.eng.Handover(ctx)); err != nil {
		s.log.Warn("handing back ended early", "err", err)
	}
}
