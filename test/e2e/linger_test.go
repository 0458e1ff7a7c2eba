package e2e

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/dnsfront/dnsfront/internal/devpki"
)

// streamConfig serves one Do53, one DoT and one DoH (TLS) bind on one loop, with the
// stream settings a test chooses.
const streamConfig = `
general:
  event_loops: 1
  log_level: info
  udp_timeout: 2
  tcp_idle_timeout: "{{.Idle}}"
  max_tcp_in_flight: {{.InFlight}}
acl: {{.ACL}}
binds:
  - listen_address: "127.0.0.1:{{port "dns"}}"
    protocol: Do53
  - listen_address: "127.0.0.1:{{port "dot"}}"
    protocol: DoT
    tls:
      certificates:
        - certificate: "{{.Chain}}"
          key: "{{.Key}}"
  - listen_address: "127.0.0.1:{{port "doh"}}"
    protocol: DoH
    tls:
      certificates:
        - certificate: "{{.Chain}}"
          key: "{{.Key}}"
    doh: {idle_timeout: {{.DoHIdle}}, trust_forwarded_for_header: true}
  - listen_address: "127.0.0.1:{{port "dohc"}}"
    protocol: DoH
    doh: {trust_forwarded_for_header: true}
backends:
  - address: "{{.Backend}}"
    name: b1
    health_checks:
      mode: up
webserver:
  listen_addresses: ["127.0.0.1:{{port "admin"}}"]
`

type streamData struct {
	Idle       string
	InFlight   int
	DoHIdle    int
	ACL        string
	Chain, Key string
	Backend    string
}

type streamServer struct {
	d   *Dnsfront
	pki *devpki.TestPKI
}

// startStreams starts dnsfront on streamConfig; zero fields take test defaults.
func startStreams(t *testing.T, data streamData) *streamServer {
	t.Helper()
	p := devpki.NewTestPKI(t, t.TempDir())
	data.Chain, data.Key = p.Leaf.ChainFile, p.Leaf.KeyFile
	if data.Idle == "" {
		data.Idle = "10s"
	}
	if data.InFlight == 0 {
		data.InFlight = 100
	}
	if data.DoHIdle == 0 {
		data.DoHIdle = 30
	}
	if data.ACL == "" {
		data.ACL = `["127.0.0.0/8"]`
	}
	if data.Backend == "" {
		data.Backend = StartBackend(t, BackendOptions{Records: []string{testName + ". 60 IN A " + testAnswer}}).Addr
	}
	return &streamServer{d: Start(t, streamConfig, data), pki: p}
}

func (s *streamServer) dialDoT(t *testing.T) *tls.Conn {
	t.Helper()
	return DialDoT(t, s.d.Addr("dot"), "dns.test", CertPool(t, s.pki.Root.Cert), nil)
}

// frame is m with its 2-byte length prefix (Do53 TCP, DoT).
func frame(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...)
}

// notDNS is a frame too short to be a DNS message: the server answers what is in flight,
// then closes.
var notDNS = []byte{0, 2, 0xde, 0xad}

// readFrame reads one length-prefixed DNS message.
func readFrame(r io.Reader) (*dns.Msg, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	m := new(dns.Msg)
	return m, m.Unpack(b)
}

// requireAnswer checks that m answers testName with testAnswer under ID id.
func requireAnswer(t *testing.T, m *dns.Msg, id uint16) {
	t.Helper()
	if m.Id != id || m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
		t.Fatalf("answer %v, want ID %d NOERROR with one record", m, id)
	}
	if a, ok := m.Answer[0].(*dns.A); !ok || a.A.String() != testAnswer {
		t.Fatalf("answer %v, want A %s", m.Answer[0], testAnswer)
	}
}

// requireLingering checks, once the server has sent its last bytes and its FIN, that the
// socket lingers rather than resets: what the client still sends is acknowledged and
// discarded, and the client's reads end with EOF, never ECONNRESET. A socket that is
// already closed answers the late bytes with RST instead. raw is the TCP connection
// under any TLS.
func requireLingering(t *testing.T, raw net.Conn) {
	t.Helper()
	late := frame(t, NewQuery(testName, dns.TypeA))
	if _, err := raw.Write(late); err != nil {
		t.Fatalf("write after the server's FIN: %v", err)
	}
	// Wait until the server has either acknowledged the late bytes or reset.
	var info *unix.TCPInfo
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		info = tcpInfo(t, raw)
		if info.State == tcpClose || info.Unacked == 0 || time.Now().After(deadline) {
			break
		}
		<-tick.C
	}
	if info.State == tcpClose {
		t.Fatal("the server reset the connection when the client wrote after its FIN")
	}
	if _, err := raw.Write(late); err != nil {
		t.Fatalf("second write after the server's FIN: %v (the server reset the connection)", err)
	}
	_ = raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := raw.Read(make([]byte, 512))
	if errors.Is(err, syscall.ECONNRESET) {
		t.Fatal("connection reset")
	}
	if n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("read after the server's FIN: %d bytes, %v; want EOF", n, err)
	}
}

// tcpClose is TCP_CLOSE in TCP_INFO's state: the connection was reset.
const tcpClose = 7

func tcpInfo(t *testing.T, c net.Conn) *unix.TCPInfo {
	t.Helper()
	sc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var info *unix.TCPInfo
	var ierr error
	if err := sc.Control(func(fd uintptr) { info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) }); err != nil {
		t.Fatal(err)
	}
	if ierr != nil {
		t.Fatal(ierr)
	}
	return info
}

// A Do53 TCP client pipelines a query and a frame that is not DNS, followed by more
// bytes: the server still answers the query, then half-closes and lingers, so that the
// client reads the answer and EOF, and its late bytes are discarded without a reset.
func TestLingerDo53TCPProtocolError(t *testing.T) {
	t.Parallel()
	s := startStreams(t, streamData{})
	c, err := net.Dial("tcp", s.d.Addr("dns"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	q := NewQuery(testName, dns.TypeA)
	q.Id = 4242
	out := append(frame(t, q), notDNS...)
	out = append(out, bytes.Repeat([]byte{0xff}, 4096)...)
	if _, err := c.Write(out); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	m, err := readFrame(c)
	if err != nil {
		t.Fatalf("the query before the bad frame got no answer: %v", err)
	}
	requireAnswer(t, m, 4242)
	requireLingering(t, c)
}

// tcp_idle_timeout closes an idle Do53 TCP connection with a FIN, and the socket lingers:
// a query the client sends as the server closes is discarded, not reset.
func TestLingerDo53TCPIdle(t *testing.T) {
	t.Parallel()
	s := startStreams(t, streamData{Idle: "300ms"})
	c, err := net.Dial("tcp", s.d.Addr("dns"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	q := NewQuery(testName, dns.TypeA)
	q.Id = 7
	if _, err := c.Write(frame(t, q)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	m, err := readFrame(c)
	if err != nil {
		t.Fatal(err)
	}
	requireAnswer(t, m, 7)
	// The idle close: EOF once the timeout passes.
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("idle close: %v, want EOF", err)
	}
	requireLingering(t, c)
}

// A DoT client pipelines a query and a frame that is not DNS in one record: the server
// answers the query, then sends close_notify, half-closes and lingers.
func TestLingerDoTProtocolError(t *testing.T) {
	t.Parallel()
	s := startStreams(t, streamData{})
	c := s.dialDoT(t)
	defer c.Close()
	q := NewQuery(testName, dns.TypeA)
	q.Id = 99
	if _, err := c.Write(append(frame(t, q), notDNS...)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	m, err := readFrame(c)
	if err != nil {
		t.Fatalf("the query before the bad frame got no answer: %v", err)
	}
	requireAnswer(t, m, 99)
	// close_notify: crypto/tls reports it as io.EOF (a close without it is
	// io.ErrUnexpectedEOF or a reset).
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("after the answer: %v, want close_notify (io.EOF)", err)
	}
	requireLingering(t, c.NetConn())
}

// tcp_idle_timeout ends an idle DoT connection with close_notify, then a lingering FIN.
func TestLingerDoTIdle(t *testing.T) {
	t.Parallel()
	s := startStreams(t, streamData{Idle: "300ms"})
	c := s.dialDoT(t)
	defer c.Close()
	q := NewQuery(testName, dns.TypeA)
	q.Id = 5
	requireAnswer(t, ExchangeDoT(t, c, q), 5)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("idle close: %v, want close_notify (io.EOF)", err)
	}
	requireLingering(t, c.NetConn())
}

// The DoH session's idle timeout ends an HTTP/2 connection with GOAWAY, close_notify and
// a lingering FIN.
func TestLingerDoHIdle(t *testing.T) {
	t.Parallel()
	s := startStreams(t, streamData{DoHIdle: 1})
	h := dialH2Raw(t, s.d.Addr("doh"), s.pki)
	code, ok, err := h.awaitGoAway(5 * time.Second)
	if err != nil || !ok {
		t.Fatalf("no GOAWAY at the idle timeout: %v", err)
	}
	if code != 0 {
		t.Errorf("GOAWAY %v, want NO_ERROR", code)
	}
	_ = h.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := h.c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("after GOAWAY: %v, want close_notify (io.EOF)", err)
	}
	requireLingering(t, h.c.(*tls.Conn).NetConn())
}
