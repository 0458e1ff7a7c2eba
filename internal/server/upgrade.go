package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/dnsfront/dnsfront/internal/upgrade"
)

// Binary upgrade (docs/operations.md). Upgrade starts the successor with every listening
// socket (the loops' and the admin API's) and returns once it serves them; Handover then
// stops reading them, ends the connections gracefully within drain_timeout and stops.

// StartOptions are what a process started by an upgrade inherited.
type StartOptions struct {
	upgrade.Sockets
	// Serving, if set, runs just before the loops start reading the sockets; an error
	// fails the start (upgrade.Successor.Serving).
	Serving func() error
}

// Upgrade hands the listening sockets to a successor started from the binary on disk, and
// returns its process ID once it serves them. Meanwhile both processes serve; on error
// this one goes on alone. The caller runs Handover after it.
func (s *Server) Upgrade(ctx context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, b := range s.cfg.Binds {
		if b.IsQUIC() {
			return 0, fmt.Errorf("%w: binds[%d] (%s %s): QUIC listeners are not handed over; restart instead", upgrade.ErrRefused, i, b.Protocol, b.ListenAddress)
		}
	}
	if s.cfg.DemoBackend != nil {
		return 0, fmt.Errorf("%w: demo_backend listens on its own port, which is not handed over; restart instead", upgrade.ErrRefused)
	}
	if !s.upgrading.CompareAndSwap(false, true) {
		return 0, fmt.Errorf("%w: an upgrade is under way", upgrade.ErrRefused)
	}
	socks, err := s.eng.Sockets()
	if err != nil {
		s.upgrading.Store(false)
		return 0, err
	}
	in := upgrade.Sockets{Admin: map[string]int{}}
	defer func() {
		for _, so := range socks {
			_ = unix.Close(so.FD)
		}
		for _, fd := range in.Admin {
			_ = unix.Close(fd)
		}
	}()
	for _, so := range socks {
		in.Engine = append(in.Engine, so.FD)
	}
	for addr, ln := range s.adminLns {
		fd, err := dupListener(ln)
		if err != nil {
			s.upgrading.Store(false)
			return 0, fmt.Errorf("upgrade: admin listener %s: %w", addr, err)
		}
		in.Admin[addr] = fd
	}
	s.log.Info("upgrade: starting the successor", "sockets", len(in.Engine)+len(in.Admin))
	pid, err := upgrade.Spawn(ctx, in)
	if err != nil {
		s.upgrading.Store(false)
		return 0, err
	}
	return pid, nil
}

// Handover stops reading the listening sockets (the successor reads them now), ends every
// connection gracefully once its queries in flight are answered, waits for them up to
// drain_timeout and stops everything.
func (s *Server) Handover(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.eng.StopListening()
	if s.adm != nil {
		s.adm.shutdown(ctx)
		s.adm = nil
	}
	dctx, cancel := context.WithTimeout(ctx, s.cfg.General.DrainTimeout.D())
	defer cancel()
	err := errors.Join(s.stopQUIC(dctx), s.eng.Handover(dctx))
	s.stopRest()
	return err
}

// listenAdmin opens the admin API's listener on addr, or takes the one a predecessor
// handed over.
func (s *Server) listenAdmin(addr string) (net.Listener, error) {
	var ln net.Listener
	var err error
	if fd, ok := s.inheritAdmin[addr]; ok {
		delete(s.inheritAdmin, addr)
		f := newFile(fd, "admin "+addr)
		ln, err = net.FileListener(f)
		f.Close()
	} else {
		ln, err = net.Listen("tcp", addr)
	}
	if err == nil {
		s.adminLns[addr] = ln
	}
	return ln, err
}

// dupListener duplicates a listener's descriptor without changing its blocking mode (as
// os.File.Fd would).
func dupListener(ln net.Listener) (int, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("%T has no descriptor", ln)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	cerr := rc.Control(func(d uintptr) { fd, err = unix.FcntlInt(d, unix.F_DUPFD_CLOEXEC, 0) })
	if cerr != nil {
		return -1, cerr
	}
	return fd, err
}

// handleUpgrade asks the process to upgrade itself, as SIGUSR2 does (the serve loop runs
// it): 202, then the successor's readiness shows in the pid file and the log.
func (s *Server) handleUpgrade(w http.ResponseWriter, _ *http.Request) {
	if s.upgrading.Load() {
		writeJSON(w, http.StatusConflict, map[string]string{"error": "an upgrade is under way"})
		return
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGUSR2); err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"result": "upgrading"})
}

func newFile(fd int, name string) *os.File { return os.NewFile(uintptr(fd), name) }
