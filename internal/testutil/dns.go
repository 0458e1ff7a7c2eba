package testutil

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// DNSOptions configure StartDNS.
type DNSOptions struct {
	// Host is the address to listen on (default 127.0.0.1).
	Host string
	// Network is "udp" or "tcp" for one of them; empty serves both on one port.
	Network string
	// TLS, when set, serves DNS over TLS (RFC 7858) on TCP only.
	TLS *tls.Config
	// MaxTCPQueries is passed to dns.Server: 0 is its default (128 queries per
	// connection), -1 is unlimited.
	MaxTCPQueries int
	// IdleTimeout closes a TCP connection idle this long after a query; 0 is
	// dns.Server's default (8 s, RFC 7766). Load tests that hold connections
	// open set it longer.
	IdleTimeout time.Duration
}

// DNSServer is a fake DNS server on loopback: a miekg/dns server that runs
// the test's handler.
type DNSServer struct {
	// Addr is host:port, the same for UDP and TCP when both are served.
	Addr string

	servers []*dns.Server
	once    sync.Once
}

// StartDNS serves h as o says and returns once every socket is serving; the
// server stops in t.Cleanup, or earlier with Stop. UDP reads take datagrams
// up to 64 KiB, so answers of any EDNS size reach the handler's peer. A TCP
// connection has 30 s, not dns.Server's 2 s, for its first query (a TLS
// handshake included) and for each write: a loaded machine is slow, not
// broken.
func StartDNS(t testing.TB, h dns.Handler, o DNSOptions) *DNSServer {
	t.Helper()
	host := o.Host
	if host == "" {
		host = "127.0.0.1"
	}
	network := o.Network
	if o.TLS != nil {
		network = "tcp"
	}
	var (
		pc  net.PacketConn
		ln  net.Listener
		err error
	)
	switch network {
	case "udp":
		pc, err = net.ListenPacket("udp", net.JoinHostPort(host, "0"))
	case "tcp":
		ln, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
	case "":
		pc, ln, err = listenBoth(host)
	default:
		err = errors.New("unknown network " + strconv.Quote(network))
	}
	if err != nil {
		t.Fatalf("fake DNS server: %v", err)
	}
	s := &DNSServer{}
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	if pc != nil {
		s.Addr = pc.LocalAddr().String()
		s.servers = append(s.servers, &dns.Server{PacketConn: pc, Handler: h, UDPSize: 65535, NotifyStartedFunc: notify})
	}
	if ln != nil {
		s.Addr = ln.Addr().String()
		if o.TLS != nil {
			ln = tls.NewListener(ln, o.TLS)
		}
		srv := &dns.Server{Listener: ln, Handler: h, MaxTCPQueries: o.MaxTCPQueries, NotifyStartedFunc: notify,
			ReadTimeout: ioTimeout, WriteTimeout: ioTimeout}
		if o.IdleTimeout > 0 {
			idle := o.IdleTimeout
			srv.IdleTimeout = func() time.Duration { return idle }
		}
		s.servers = append(s.servers, srv)
	}
	errc := make(chan error, len(s.servers))
	for _, srv := range s.servers {
		go func() { errc <- srv.ActivateAndServe() }()
	}
	t.Cleanup(s.Stop)
	for range s.servers {
		select {
		case <-started:
		case err := <-errc:
			t.Fatalf("fake DNS server: %v", err)
		}
	}
	return s
}

// ioTimeout bounds a TCP connection's first read and every write.
const ioTimeout = 30 * time.Second

// Stop shuts the server down and closes its sockets; it may be called more
// than once.
func (s *DNSServer) Stop() {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, srv := range s.servers {
			_ = srv.ShutdownContext(ctx)
		}
	})
}

// listenBoth opens a UDP socket and a TCP listener on the same free port of
// host.
func listenBoth(host string) (net.PacketConn, net.Listener, error) {
	for range 20 {
		pc, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, nil, err
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, err
		}
	}
	return nil, nil, errors.New("no port free for both UDP and TCP on " + host)
}
