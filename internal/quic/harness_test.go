package quic

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/engine"
	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/dnsfront/dnsfront/internal/testutil"
	"github.com/dnsfront/dnsfront/tlsframe"
	"github.com/miekg/dns"
	quicgo "github.com/quic-go/quic-go"
)

const loops = 2

// harness is a real engine with two loops forwarding to a fake backend, and a QUIC bind
// in front of it with a stapled certificate from a throw-away PKI.
type harness struct {
	t       *testing.T
	pki     *devpki.TestPKI
	staple  []byte
	store   *tlsframe.Store
	tickets *tlsframe.TicketKeys
	eng     *engine.Engine
	ln      *Listener
	backend atomic.Int64 // queries the backend saw
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newHarness(t *testing.T, o Options, acl ...string) *harness {
	t.Helper()
	h := &harness{t: t}
	be := testutil.StartDNS(t, dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		h.backend.Add(1)
		m := new(dns.Msg)
		m.SetReply(r)
		rr, _ := dns.NewRR(r.Question[0].Name + " 300 IN A 192.0.2.1")
		m.Answer = append(m.Answer, rr)
		_ = w.WriteMsg(m)
	}), testutil.DNSOptions{})
	if len(acl) == 0 {
		acl = []string{"127.0.0.0/8"}
	}
	a, err := engine.NewACL(acl)
	if err != nil {
		t.Fatal(err)
	}
	b := &engine.Backend{Key: "b", Name: "b", Addr: netip.MustParseAddrPort(be.Addr), Timeout: 2 * time.Second}
	st := engine.NewState(a, []*engine.Backend{b}, map[string]*engine.Pool{"": {
		Backends:  []*engine.Backend{b},
		NewPicker: func() engine.Picker { return onlyBackend{} },
	}})
	h.eng, err = engine.New(engine.Options{
		Loops:  loops,
		Binds:  []engine.BindOptions{{Addr: testutil.FreeAddr(t, "127.0.0.1"), Protocol: "Do53"}},
		Logger: quietLogger(),
	}, st)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.eng.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.eng.Stop() })

	h.pki = devpki.NewTestPKI(t, t.TempDir())
	h.staple = h.pki.Good()
	h.tickets, err = tlsframe.NewTicketKeys(3, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	h.store = tlsframe.NewStore(loops)
	h.publish(h.staple)

	o.Addr = netip.MustParseAddrPort("127.0.0.1:0")
	o.Store = h.store
	o.Logger = quietLogger()
	if o.Protocol == "" {
		o.Protocol = "DoQ"
	}
	h.ln, err = Listen(h.eng, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.ln.Close() })
	return h
}

// publish builds a snapshot of the PKI's leaf with staple and publishes it, as a reload
// or the staple life cycle does.
func (h *harness) publish(staple []byte) {
	h.t.Helper()
	snap, err := tlsframe.BuildSnapshot([]tlsframe.CertSpec{{ChainFile: h.pki.Leaf.ChainFile, KeyFile: h.pki.Leaf.KeyFile, OCSPStaple: staple}},
		tlsframe.Options{SessionTickets: true}, h.tickets)
	if err != nil {
		h.t.Fatal(err)
	}
	h.store.Publish(snap)
}

func (h *harness) clientTLS(alpn string) *tls.Config {
	return &tls.Config{RootCAs: h.pki.RootPool(), ServerName: "dns.test", NextProtos: []string{alpn}}
}

// dial opens a DoQ connection.
func (h *harness) dial() *quicgo.Conn {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := quicgo.DialAddr(ctx, net.UDPAddrFromAddrPort(h.ln.Addr()).String(), h.clientTLS("doq"), &quicgo.Config{})
	if err != nil {
		h.t.Fatalf("dial DoQ: %v", err)
	}
	h.t.Cleanup(func() { _ = c.CloseWithError(0, "") })
	return c
}

func query(name string, id uint16) []byte {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	m.Id = id
	b, _ := m.Pack()
	return b
}

func frame(msgs ...[]byte) []byte {
	var out []byte
	for _, m := range msgs {
		out = binary.BigEndian.AppendUint16(out, uint16(len(m)))
		out = append(out, m...)
	}
	return out
}

// exchange sends one query on a new stream as RFC 9250 says and reads the one answer.
func exchange(t *testing.T, c *quicgo.Conn, q []byte) *dns.Msg {
	t.Helper()
	m, err := tryExchange(c, q)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// tryExchange is exchange for goroutines other than the test's.
func tryExchange(c *quicgo.Conn, q []byte) (*dns.Msg, error) {
	str, err := c.OpenStreamSync(context.Background())
	if err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	if _, err := str.Write(frame(q)); err != nil {
		return nil, err
	}
	_ = str.Close()
	_ = str.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(str)
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if len(b) < 2 || int(binary.BigEndian.Uint16(b)) != len(b)-2 {
		return nil, fmt.Errorf("answer of %d bytes is not one framed message", len(b))
	}
	m := new(dns.Msg)
	if err := m.Unpack(b[2:]); err != nil {
		return nil, err
	}
	return m, nil
}

// closedWith waits for the connection to end and returns the application error code
// the server closed it with.
func closedWith(t *testing.T, c *quicgo.Conn) quicgo.ApplicationErrorCode {
	t.Helper()
	select {
	case <-c.Context().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not close the connection")
	}
	cause := context.Cause(c.Context())
	ae, ok := cause.(*quicgo.ApplicationError)
	if !ok || !ae.Remote {
		t.Fatalf("connection ended with %v, want an application error from the server", cause)
	}
	return ae.ErrorCode
}

func sameBytes(a, b []byte) bool { return bytes.Equal(a, b) }

// onlyBackend picks the harness's one backend (index 0 in the State).
type onlyBackend struct{}

func (onlyBackend) Pick(func(int) int, uint64) int { return 0 }
