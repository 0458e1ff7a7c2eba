package engine

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// boundUDP opens a UDP socket (read and written with MSG_DONTWAIT) on host (a loopback address) as the
// loop would hold it, and returns its fd and address.
func boundUDP(t *testing.T, host string) (int, netip.AddrPort) {
	t.Helper()
	a := netip.MustParseAddr(host)
	family, sa := unix.AF_INET6, unix.Sockaddr(&unix.SockaddrInet6{Addr: a.As16()})
	if a.Is4() {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Addr: a.As4()}
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, sa); err != nil {
		t.Skipf("%s: %v (no such loopback here)", host, err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	switch s := got.(type) {
	case *unix.SockaddrInet4:
		return fd, netip.AddrPortFrom(a, uint16(s.Port))
	case *unix.SockaddrInet6:
		return fd, netip.AddrPortFrom(a, uint16(s.Port))
	}
	t.Fatalf("getsockname: %T", got)
	return 0, netip.AddrPort{}
}

// recvmmsg reads what many senders queued, each with its own address, and sendmmsg
// answers each one at that address, in one call per socket; neither allocates.
func TestMmsgLoopback(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "::1"} {
		t.Run(host, func(t *testing.T) {
			fd, addr := boundUDP(t, host)
			r, w := newMmsgReader(), newMmsgWriter()
			if _, err := r.recv(fd); err != unix.EAGAIN {
				t.Fatalf("empty socket: %v, want EAGAIN", err)
			}
			const senders = recvBatch + 8 // more than one batch
			clients := make([]*net.UDPConn, senders)
			for i := range clients {
				c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				clients[i] = c
				if _, err := fmt.Fprintf(c, "query %d", i); err != nil {
					t.Fatal(err)
				}
			}
			byAddr := map[netip.AddrPort]int{}
			for i, c := range clients {
				byAddr[c.LocalAddr().(*net.UDPAddr).AddrPort()] = i
			}
			got := 0
			for got < senders {
				n, err := r.recv(fd)
				if err != nil {
					t.Fatalf("after %d datagrams: %v", got, err)
				}
				if n > recvBatch {
					t.Fatalf("batch of %d", n)
				}
				for i := range n {
					m, cut := r.msg(i)
					from := r.from(i)
					c, ok := byAddr[from]
					if !ok || cut || string(m) != fmt.Sprintf("query %d", c) {
						t.Fatalf("datagram %q (cut %v) from %v (client %d, known %v)", m, cut, from, c, ok)
					}
					if w.full() {
						t.Fatal("writer full before sendBatch datagrams")
					}
					w.add(fd, fmt.Appendf(nil, "answer %d", c), from, nil, -1)
				}
				got += n
			}
			var sent int
			w.flush(func(o *outMsg, err error) {
				if err != nil {
					t.Errorf("send: %v", err)
				}
				sent++
			})
			if sent != senders || len(w.q) != 0 || len(w.data) != 0 {
				t.Fatalf("%d sent of %d; queue left %d", sent, senders, len(w.q))
			}
			buf := make([]byte, 64)
			for i, c := range clients {
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, err := c.Read(buf)
				if err != nil || string(buf[:n]) != fmt.Sprintf("answer %d", i) {
					t.Fatalf("client %d: %q, %v", i, buf[:n], err)
				}
			}

			// Steady state: a batch read and its answers sent cost no allocation.
			one := clients[0]
			payload := []byte("steady")
			allocs := testing.AllocsPerRun(50, func() {
				_, _ = one.Write(payload)
				n, err := r.recv(fd)
				if err != nil || n != 1 {
					panic(fmt.Sprintf("recv: %d, %v", n, err))
				}
				m, _ := r.msg(0)
				w.add(fd, m, r.from(0), nil, -1)
				w.flush(func(*outMsg, error) {})
				k, _ := one.Read(buf)
				if !bytes.Equal(buf[:k], payload) {
					panic("echo mismatch")
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocations per datagram in and out, want 0", allocs)
			}
		})
	}
}

// A datagram the kernel refuses is reported and dropped; the others in the batch leave.
func TestMmsgSendSkipsRefused(t *testing.T) {
	fd, _ := boundUDP(t, "127.0.0.1")
	good, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	w := newMmsgWriter()
	to := good.LocalAddr().(*net.UDPAddr).AddrPort()
	w.add(fd, []byte("first"), to, nil, -1)
	// An IPv6 address on an IPv4 socket: EAFNOSUPPORT for this one only.
	w.add(fd, []byte("refused"), netip.MustParseAddrPort("[2001:db8::1]:53"), nil, -1)
	w.add(fd, []byte("last"), to, nil, -1)
	var errs, oks int
	w.flush(func(o *outMsg, err error) {
		if err != nil {
			errs++
		} else {
			oks++
		}
	})
	if errs != 1 || oks != 2 {
		t.Fatalf("%d refused, %d sent; want 1 and 2", errs, oks)
	}
	buf := make([]byte, 64)
	for _, want := range []string{"first", "last"} {
		_ = good.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := good.Read(buf)
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("got %q, %v; want %q", buf[:n], err, want)
		}
	}
}

// Datagrams for two sockets queued in one pass leave with one sendmmsg per socket, each
// in the order queued.
func TestMmsgGroupsBySocket(t *testing.T) {
	fdA, _ := boundUDP(t, "127.0.0.1")
	fdB, _ := boundUDP(t, "127.0.0.1")
	dst, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	to := dst.LocalAddr().(*net.UDPAddr).AddrPort()
	w := newMmsgWriter()
	for i, fd := range []int{fdA, fdB, fdA, fdB, fdA} {
		w.add(fd, fmt.Appendf(nil, "%d", i), to, nil, -1)
	}
	var order []int
	w.flush(func(o *outMsg, err error) {
		if err != nil {
			t.Error(err)
		}
		order = append(order, o.fd)
	})
	want := []int{fdA, fdA, fdA, fdB, fdB}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("sent on %v, want %v", order, want)
	}
}

// On a dual-stack socket an IPv4 client shows as an IPv4 address (unmapped), and the
// answer to that address leaves from the IPv6 socket.
func TestMmsgDualStackIPv4Client(t *testing.T) {
	fd, addr := boundUDP(t, "::")
	c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(addr.Port())})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	r, w := newMmsgReader(), newMmsgWriter()
	var n int
	for n == 0 {
		// The datagram crosses loopback at once; a few empty reads at most.
		if n, err = r.recv(fd); err != nil && err != unix.EAGAIN {
			t.Fatal(err)
		}
	}
	from := r.from(0)
	if want := c.LocalAddr().(*net.UDPAddr).AddrPort(); from != want || !from.Addr().Is4() {
		t.Fatalf("from %v, want %v", from, want)
	}
	w.add(fd, []byte("world"), from, nil, -1)
	w.flush(func(_ *outMsg, err error) {
		if err != nil {
			t.Errorf("send to %v: %v", from, err)
		}
	})
	buf := make([]byte, 16)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	k, err := c.Read(buf)
	if err != nil || string(buf[:k]) != "world" {
		t.Fatalf("got %q, %v", buf[:k], err)
	}
}
