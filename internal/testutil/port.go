package testutil

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
// held open. It is drawn from below the kernel's ephemeral range (ip_local_port_range),
// so that no socket bound to port 0 and no client's connection can take it in the
// meantime; a program that is not a test still can, which a server then reports as a
// bind error.
func ReservePort(host string) (uint16, error) {
	lo, hi := reservedRange()
	for range 200 {
		port := lo + rand.IntN(hi-lo+1)
		if ok, err := lockPort(port); err != nil {
			return 0, err
		} else if !ok {
			continue // another test process holds it
		}
		// Under the lock, so that no test process binds it in between. A port some other
		// program holds stays locked, unused, and another is tried.
		if free, err := bothFree(host, port); err != nil || free {
			return uint16(port), err
		}
	}
	return 0, fmt.Errorf("no port from %d to %d free for both TCP and UDP on %s that no other test process holds", lo, hi, host)
}

// Ports the tests reserve: from 20000 (above the fixed ports of examples/dev.yaml and the
// benchmark scripts) to just below the ephemeral range, or, where that range starts too
// low to leave room, the upper half of the ephemeral range itself.
const reservedLow, reservedMin = 20000, 2000

func reservedRange() (lo, hi int) {
	ephemeralLow, ephemeralHigh := ephemeralRange()
	if ephemeralLow-1-reservedLow >= reservedMin {
		return reservedLow, ephemeralLow - 1
	}
	if 65535-ephemeralHigh >= reservedMin {
		return ephemeralHigh + 1, 65535
	}
	return (ephemeralLow + ephemeralHigh) / 2, ephemeralHigh
}

// ephemeralRange is the kernel's range of ports for port-0 binds and client connections
// (net.ipv4.ip_local_port_range, which IPv6 uses too), or Linux's default where it
// cannot be read.
func ephemeralRange() (lo, hi int) {
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			l, err1 := strconv.Atoi(f[0])
			h, err2 := strconv.Atoi(f[1])
			if err1 == nil && err2 == nil && 1024 < l && l < h && h < 65536 {
				return l, h
			}
		}
	}
	return 32768, 60999
}

// bothFree reports whether port can be bound on host for TCP and for UDP by any server.
// The binds are made without SO_REUSEPORT, so that a listener that has it (dnsfront's)
// counts as a holder, and without SO_REUSEADDR, so that connections of an earlier
// process still in TIME_WAIT on the port count too: a server that does not set it (gnet
// by default) could not bind there.
func bothFree(host string, port int) (bool, error) {
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 0)
		}); cerr != nil {
			return cerr
		}
		return err
	}}
	inUse := func(err error) bool {
		return errors.Is(err, syscall.EADDRINUSE) || errors.Is(err, syscall.EACCES)
	}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		if inUse(err) {
			return false, nil
		}
		return false, err
	}
	defer ln.Close()
	pc, err := lc.ListenPacket(context.Background(), "udp", addr)
	if err != nil {
		if inUse(err) {
			return false, nil
		}
		return false, err
	}
	pc.Close()
	return true, nil
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

// FreeAddr is FreePort as an address: host and a port reserved on it.
func FreeAddr(tb testing.TB, host string) netip.AddrPort {
	tb.Helper()
	return netip.AddrPortFrom(netip.MustParseAddr(host), FreePort(tb, host))
}

// RequireIPv6Loopback returns a port reserved on ::1 (see ReservePort) for a test
// that needs IPv6. Where ::1 is missing the test fails under CI, which must run
// every test, and is skipped elsewhere.
func RequireIPv6Loopback(tb testing.TB) uint16 {
	tb.Helper()
	p, err := ReservePort("::1")
	if err == nil {
		return p
	}
	if InCI() {
		tb.Fatalf("no IPv6 loopback (::1) on this machine: %v; CI must run every test", err)
	}
	tb.Skipf("no IPv6 loopback (::1) on this machine: %v", err)
	return 0
}
