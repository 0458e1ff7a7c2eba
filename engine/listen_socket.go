package engine

import (
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Listening sockets. The engine opens them itself, with the options gnet would set
// (SO_REUSEPORT, so that each event loop has its own socket per address and several
// processes can share an address; TCP_NODELAY, inherited by accepted connections; 4 MiB
// buffers), and hands them to the loops (gnet's Engine.AddListener). Owning the sockets is
// what lets a reload add and remove listeners and a new binary take them over.

const (
	sockBuffer    = 4 << 20
	listenBacklog = 4096 // capped by net.core.somaxconn
)

// openSocket opens a listening socket on ap: "tcp" (listening) or "udp".
func openSocket(network string, ap netip.AddrPort) (fd int, err error) {
	family := unix.AF_INET6
	if ap.Addr().Is4() {
		family = unix.AF_INET
	}
	typ := unix.SOCK_STREAM
	if network == "udp" {
		typ = unix.SOCK_DGRAM
	}
	fd, err = unix.Socket(family, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("engine: %s %s: socket: %w", network, ap, err)
	}
	fail := func(op string, err error) (int, error) {
		_ = unix.Close(fd)
		return -1, fmt.Errorf("engine: %s %s: %s: %w", network, ap, op, err)
	}
	for _, o := range []struct{ level, opt, v int }{
		{unix.SOL_SOCKET, unix.SO_REUSEADDR, 1},
		{unix.SOL_SOCKET, unix.SO_REUSEPORT, 1},
		{unix.SOL_SOCKET, unix.SO_RCVBUF, sockBuffer},
		{unix.SOL_SOCKET, unix.SO_SNDBUF, sockBuffer},
	} {
		if err := unix.SetsockoptInt(fd, o.level, o.opt, o.v); err != nil {
			return fail("setsockopt", err)
		}
	}
	if typ == unix.SOCK_STREAM {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
			return fail("setsockopt", err)
		}
	}
	if err := unix.Bind(fd, sockaddr(ap)); err != nil {
		return fail("bind", err)
	}
	if typ == unix.SOCK_STREAM {
		if err := unix.Listen(fd, listenBacklog); err != nil {
			return fail("listen", err)
		}
	}
	return fd, nil
}

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	if a := ap.Addr(); a.Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

// socketInfo describes a socket handed over by a predecessor: its network ("tcp" for a
// listening TCP socket, "udp" for an unconnected UDP socket) and address.
func socketInfo(fd int) (network string, ap netip.AddrPort, err error) {
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return "", ap, err
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return "", ap, err
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		ap = netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		ap = netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port))
	default:
		return "", ap, fmt.Errorf("fd %d: not an IP socket", fd)
	}
	switch typ {
	case unix.SOCK_STREAM:
		if on, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || on == 0 {
			return "", ap, fmt.Errorf("fd %d: a TCP socket that is not listening", fd)
		}
		return "tcp", ap, nil
	case unix.SOCK_DGRAM:
		return "udp", ap, nil
	}
	return "", ap, fmt.Errorf("fd %d: socket type %d", fd, typ)
}
