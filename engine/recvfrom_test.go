package engine

import (
	"net"
	"net/netip"
	"testing"
)

// recvFrom must report the sender's address and port as the kernel gave them, for IPv4
// and IPv6, without allocating.
func TestRecvFrom(t *testing.T) {
	l := &loop{}
	buf := make([]byte, 512)
	for _, host := range []string{"127.0.0.1", "::1"} {
		srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(host)})
		if err != nil {
			t.Logf("%s: %v (no such loopback here)", host, err)
			continue
		}
		defer srv.Close()
		cli, err := net.DialUDP("udp", nil, srv.LocalAddr().(*net.UDPAddr))
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		f, err := srv.File() // a blocking duplicate: MSG_DONTWAIT keeps each call from waiting
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fd := int(f.Fd())
		if _, _, err := l.recvFrom(fd, buf); err == nil {
			t.Fatalf("%s: read from an empty socket succeeded", host)
		}
		if _, err := cli.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		var (
			n    int
			from netip.AddrPort
		)
		for range 10000 {
			if n, from, err = l.recvFrom(fd, buf); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		want := cli.LocalAddr().(*net.UDPAddr).AddrPort()
		if string(buf[:n]) != "hello" || from != netip.AddrPortFrom(want.Addr().Unmap(), want.Port()) {
			t.Errorf("%s: read %q from %v, want \"hello\" from %v", host, buf[:n], from, want)
		}
		if allocs := testing.AllocsPerRun(100, func() { _, _, _ = l.recvFrom(fd, buf) }); allocs != 0 {
			t.Errorf("%s: %v allocations per call", host, allocs)
		}
	}
}
