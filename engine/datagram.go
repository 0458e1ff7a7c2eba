package engine

import (
	"errors"
	"net/netip"

	"golang.org/x/sys/unix"
)

// The loop's datagram I/O. gnet reads the first datagram of each readiness event itself
// (its readUDP, one recvfrom); the loop then reads what is queued behind it with recvmmsg
// on the same socket, and every datagram the pass produces (answers to UDP clients,
// queries to UDP backends) waits in the loop's send queue until the end of the outermost
// pass (pass.go), which sends it with one sendmmsg per socket.

// drainUDP reads the datagrams queued on a Do53 listener after the one gnet read.
func (l *loop) drainUDP(fd int, bind *BindOptions) {
	for range recvRounds {
		n, err := l.rd.recv(fd)
		if err != nil {
			return // EAGAIN: the socket is empty
		}
		for i := range n {
			m, cut := l.rd.msg(i)
			from := l.rd.from(i)
			if cut || !from.IsValid() {
				l.stats.nonCompliant.Add(1)
				continue
			}
			l.onDatagram(fd, bind, m, from.Addr(), int(from.Port()))
		}
		if n < recvBatch {
			return
		}
	}
}

// drainBackend reads the answers queued on a backend's UDP socket after the one gnet read.
func (l *loop) drainBackend(s *backendSock, fd int) {
	for range recvRounds {
		n, err := l.rd.recv(fd)
		if err != nil {
			return
		}
		for i := range n {
			m, cut := l.rd.msg(i)
			if cut {
				l.stats.mismatches.Add(1)
				continue
			}
			l.onBackendAnswer(s, m)
		}
		if n < recvBatch {
			return
		}
	}
}

// queueDatagram queues m for the socket fd: an answer to the UDP client to, or a query on
// the connected socket of backend sock (to invalid). Outside a pass it leaves at once.
func (l *loop) queueDatagram(fd int, m []byte, to netip.AddrPort, sock *backendSock, backend int) {
	if fd < 0 {
		return // the client's listener closed (forgetListeners): its fd may name another socket
	}
	if l.wr.full() {
		l.flushDatagrams()
	}
	l.wr.add(fd, m, to, sock, backend)
	if !l.busy {
		l.flushDatagrams()
	}
}

// flushDatagrams sends the queued datagrams. A query for a backend socket that closed
// since it was queued is dropped: the socket's close answered it already, and its fd may
// name another socket by now.
func (l *loop) flushDatagrams() {
	for i := range l.wr.q {
		if s := l.wr.q[i].sock; s != nil && (s.closed || s.retired) {
			l.wr.q[i].fd = -1
		}
	}
	l.wr.flush(l.sentFn)
}

// sentDatagram counts a datagram that left (err nil) or that the kernel refused.
func (l *loop) sentDatagram(o *outMsg, err error) {
	if o.sock == nil {
		if err != nil {
			l.stats.sendErrors.Add(1)
			return
		}
		l.stats.responses[protoUDP].Add(1)
		return
	}
	if err != nil {
		l.stats.sendErrors.Add(1)
		if l.obs != nil {
			l.obs.SendFailed(o.backend)
		}
		// A refused send is the ICMP port-unreachable of an earlier query, taken from
		// the socket before gnet's read could see it: close the socket as that read
		// would, so that its close answers every query pending on it at once. Close
		// only queues the close on the loop, so nothing re-enters this flush. Any
		// other error leaves the query pending for its timeout.
		if errors.Is(err, unix.ECONNREFUSED) && o.sock.gc != nil && !o.sock.closed {
			_ = o.sock.gc.Close()
		}
	}
}

// forgetListeners makes the UDP listeners fds unanswerable on the loop before they close:
// the queries in flight that came on them, the answers a Delay rule holds and the answers
// queued get fd -1, and are dropped when they are due. Once a listener closes, the kernel
// may give its number to a client's TCP connection, and an answer sent to that number
// would land in the client's stream.
func (l *loop) forgetListeners(fds map[int]bool) {
	for qi := range l.timeouts {
		for _, f := range l.timeouts[qi].entries {
			// Every query sent to a backend has its deadline here until it ends.
			if p := f.p; p.gen == f.gen && p.proto == protoUDP && fds[p.udpFD] {
				p.udpFD = -1
			}
		}
	}
	for i := range l.pol.delay.entries {
		if d := &l.pol.delay.entries[i]; fds[d.fd] {
			d.fd = -1
		}
	}
	for i := range l.wr.q {
		if o := &l.wr.q[i]; o.sock == nil && fds[o.fd] {
			o.fd = -1
		}
	}
}
