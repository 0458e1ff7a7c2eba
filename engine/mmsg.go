package engine

import (
	"encoding/binary"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Batched datagram I/O. A loop reads the datagrams queued on a UDP socket with recvmmsg
// and sends the datagrams a pass produced with one sendmmsg per socket, into storage the
// loop allocates once: headers, iovecs, addresses and payload buffers are reused for every
// batch, so a datagram costs no allocation. x/sys/unix has the Mmsghdr type but no
// wrappers for the two calls.

const (
	// recvBatch is how many datagrams one recvmmsg reads.
	recvBatch = 32
	// recvRounds bounds the recvmmsg calls one readiness event makes on a socket, so that
	// one busy socket does not starve the loop's other connections.
	recvRounds = 2
	// sendBatch is how many datagrams the loop queues before it sends them without waiting
	// for the end of the pass.
	sendBatch = 64
	// recvSlot is the room for one datagram: the largest a UDP payload can be, so that no
	// backend answer is cut (a client may ask for 65535 bytes over EDNS). 32 slots are
	// 2 MiB per loop, allocated once; pages the kernel never writes stay unbacked when the
	// runtime took them fresh from the OS.
	recvSlot = 65535
)

// recvmmsg reads up to len(msgs) datagrams from fd without blocking; it returns how many
// it read.
func recvmmsg(fd int, msgs []unix.Mmsghdr) (int, error) {
	n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])),
		uintptr(len(msgs)), unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// sendmmsg sends the datagrams of msgs on fd without blocking; it returns how many left.
// The kernel reports an error only when the first one fails.
func sendmmsg(fd int, msgs []unix.Mmsghdr) (int, error) {
	n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])),
		uintptr(len(msgs)), unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// mmsgReader is one loop's receive batch: recvBatch slots, each with its payload buffer
// and the sender's address. Only the owning loop uses it.
type mmsgReader struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // large enough for AF_INET and AF_INET6
	buf   []byte
	used  int // slots the last call filled: their headers are reset before the next
}

func newMmsgReader() *mmsgReader {
	r := &mmsgReader{
		hdrs:  make([]unix.Mmsghdr, recvBatch),
		iovs:  make([]unix.Iovec, recvBatch),
		names: make([]unix.RawSockaddrInet6, recvBatch),
		buf:   make([]byte, recvBatch*recvSlot),
	}
	for i := range r.hdrs {
		r.iovs[i].Base = &r.buf[i*recvSlot]
		r.iovs[i].SetLen(recvSlot)
		h := &r.hdrs[i].Hdr
		h.Iov = &r.iovs[i]
		h.SetIovlen(1)
		h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Namelen = unix.SizeofSockaddrInet6
	}
	r.used = recvBatch
	return r
}

// recv reads a batch from fd: the number of datagrams, 0 with an error when none was
// queued (EAGAIN).
func (r *mmsgReader) recv(fd int) (int, error) {
	for i := range r.used {
		r.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		r.hdrs[i].Hdr.Flags = 0
	}
	n, err := recvmmsg(fd, r.hdrs)
	r.used = n
	return n, err
}

// msg returns the payload of slot i, and whether it was cut (larger than a slot).
func (r *mmsgReader) msg(i int) ([]byte, bool) {
	h := &r.hdrs[i]
	return r.buf[i*recvSlot : i*recvSlot+int(h.Len)], h.Hdr.Flags&unix.MSG_TRUNC != 0
}

// from returns the sender of slot i; invalid for a family other than IPv4 and IPv6.
func (r *mmsgReader) from(i int) netip.AddrPort {
	sa := &r.names[i]
	switch sa.Family {
	case unix.AF_INET:
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(s4.Addr), ntohs(s4.Port))
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), ntohs(sa.Port))
	}
	return netip.AddrPort{}
}

// ntohs reads a port stored in network byte order in a uint16 field.
func ntohs(port uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&port))
	return uint16(b[0])<<8 | uint16(b[1])
}

// outMsg is one queued datagram: its bytes are data[off:end] of the writer.
type outMsg struct {
	fd      int          // -1: dropped before sending
	sock    *backendSock // a query to a backend (connected socket); nil for an answer
	backend int
	off     int
	end     int
	nameLen uint32 // 0: the socket is connected
}

// mmsgWriter is one loop's send queue: the datagrams a pass produced, sent at the end of
// the pass with one sendmmsg per socket. Payloads are copied into data, whose backing
// array may grow during a pass: pointers into it are taken only when sending.
type mmsgWriter struct {
	q     []outMsg
	names []unix.RawSockaddrInet6 // same index as q
	data  []byte
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	sent  []bool
	ids   []int // the queue entry of each header being sent
}

func newMmsgWriter() *mmsgWriter {
	return &mmsgWriter{
		q:     make([]outMsg, 0, sendBatch),
		names: make([]unix.RawSockaddrInet6, sendBatch),
		data:  make([]byte, 0, 64<<10),
		hdrs:  make([]unix.Mmsghdr, sendBatch),
		iovs:  make([]unix.Iovec, sendBatch),
		sent:  make([]bool, sendBatch),
		ids:   make([]int, sendBatch),
	}
}

// full reports whether the queue must be sent before another datagram is added.
func (w *mmsgWriter) full() bool { return len(w.q) == sendBatch }

// add queues m for fd, to the client at to (IPv4 or IPv6), or on a connected socket when
// to is not valid.
func (w *mmsgWriter) add(fd int, m []byte, to netip.AddrPort, sock *backendSock, backend int) {
	i := len(w.q)
	off := len(w.data)
	w.data = append(w.data, m...)
	o := outMsg{fd: fd, sock: sock, backend: backend, off: off, end: len(w.data)}
	if to.IsValid() {
		sa := &w.names[i]
		if to.Addr().Is4() {
			s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
			*s4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: to.Addr().As4()}
			binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&s4.Port))[:], to.Port())
			o.nameLen = unix.SizeofSockaddrInet4
		} else {
			*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: to.Addr().As16()}
			binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], to.Port())
			o.nameLen = unix.SizeofSockaddrInet6
		}
	}
	w.q = append(w.q, o)
}

// flush sends everything queued, one sendmmsg per socket (more when the kernel takes only
// part of a batch), in the order queued. done is called for each datagram with the error
// that stopped it, nil when it left.
func (w *mmsgWriter) flush(done func(o *outMsg, err error)) {
	n := len(w.q)
	if n == 0 {
		return
	}
	clear(w.sent[:n])
	for first := 0; first < n; first++ {
		if w.sent[first] {
			continue
		}
		fd := w.q[first].fd
		if fd < 0 {
			continue // dropped by the caller
		}
		k := 0
		for i := first; i < n; i++ {
			o := &w.q[i]
			if w.sent[i] || o.fd != fd {
				continue
			}
			w.sent[i] = true
			w.ids[k] = i
			w.iovs[k].Base = &w.data[o.off]
			w.iovs[k].SetLen(o.end - o.off)
			h := &w.hdrs[k].Hdr
			h.Iov = &w.iovs[k]
			h.SetIovlen(1)
			h.Name, h.Namelen = nil, 0
			if o.nameLen > 0 {
				h.Name = (*byte)(unsafe.Pointer(&w.names[i]))
				h.Namelen = o.nameLen
			}
			k++
		}
		// A datagram the kernel refuses (its buffer full: EAGAIN, or an unreachable
		// address) is dropped, as a single sendto would drop it; the rest still go.
		for start := 0; start < k; {
			m, err := sendmmsg(fd, w.hdrs[start:k])
			if err == nil && m <= 0 {
				err = unix.EIO // never reported by Linux; keeps the loop finite
			}
			if err != nil {
				done(&w.q[w.ids[start]], err)
				start++
				continue
			}
			for j := start; j < start+m; j++ {
				done(&w.q[w.ids[j]], nil)
			}
			start += m
		}
	}
	clear(w.q) // drop the backendSock references
	w.q = w.q[:0]
	w.data = w.data[:0]
}
