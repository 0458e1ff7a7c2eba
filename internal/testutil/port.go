package testutil

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
)

// Ports. The packages' tests run at once, each package in a process of its own, and
// dnsfront, unbound and haproxy open their listeners with SO_REUSEPORT. Two of them that
// bind the same port as the same user share it without an error, and the kernel then
// spreads connections and datagrams between them: a client of one test reaches the server
// of another. A port asked of the kernel (a bind to port 0) and released is free again at
// once, so two tests can be handed the same one before either server binds it.
//
// ReservePort therefore reserves every port it returns, across all the test processes of
// the machine, for the life of its own process: it holds an exclusive lock (flock) on a
// file named after the port, and the kernel drops the lock when the process ends.

// portLocks holds the lock files of the ports this process reserved.
var portLocks struct {
	sync.Mutex
	files []*os.File
}

// portLockDir is where the lock files live, shared by the test processes of the machine.
func portLockDir() string { return filepath.Join(os.TempDir(), "dnsfront-test-ports") }

// FreePort returns a port free for TCP and UDP on host, reserved for this test process
// (see ReservePort). The test fails if there is none.
func FreePort(tb testing.TB, host string) uint16 {
	tb.Helper()
	p, err := ReservePort(host)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// ReservePort returns a port free for TCP and UDP on host that no other test process of
// the machine has reserved, and reserves it until this process ends. The port is not
// held open: a program that is not a test can still take it, which a server then reports
// as a bind error.
func ReservePort(host string) (uint16, error) {
	for range 50 {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			ln.Close()
			if errors.Is(err, syscall.EADDRINUSE) {
				continue
			}
			return 0, err
		}
		// Locked while both sockets still hold the port.
		ok, err := lockPort(port)
		ln.Close()
		pc.Close()
		if err != nil {
			return 0, err
		}
		if ok {
			return uint16(port), nil
		}
	}
	return 0, fmt.Errorf("no port free for both TCP and UDP on %s that no other test process holds", host)
}

// lockPort takes the lock file of port, reporting false if another process (or an
// earlier call of this one) holds it.
func lockPort(port int) (bool, error) {
	dir := portLockDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("port reservation: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return false, fmt.Errorf("port reservation: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return false, nil
		}
		return false, fmt.Errorf("port reservation: lock %s: %w", f.Name(), err)
	}
	portLocks.Lock()
	portLocks.files = append(portLocks.files, f)
	portLocks.Unlock()
	return true, nil
}
