package engine

import (
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// recvFrom is recvfrom(2) with MSG_DONTWAIT into the loop's own sockaddr storage:
// unix.Recvfrom allocates its sockaddr on every call, EAGAIN included, and this runs for
// every datagram the loop drains (see udpBatch).
func (l *loop) recvFrom(fd int, p []byte) (int, netip.AddrPort, error) {
	l.rsaLen = unix.SizeofSockaddrAny
	n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
		unix.MSG_DONTWAIT, uintptr(unsafe.Pointer(&l.rsa)), uintptr(unsafe.Pointer(&l.rsaLen)))
	if errno != 0 {
		return 0, netip.AddrPort{}, errno
	}
	switch l.rsa.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&l.rsa))
		return int(n), netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), ntohs(sa.Port)), nil
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&l.rsa))
		return int(n), netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), ntohs(sa.Port)), nil
	}
	return int(n), netip.AddrPort{}, nil
}

// ntohs reads a port stored in network byte order in a uint16 field.
func ntohs(port uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&port))
	return uint16(b[0])<<8 | uint16(b[1])
}
