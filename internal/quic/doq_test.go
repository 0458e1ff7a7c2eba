package quic

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"github.com/dnsfront/dnsfront/engine"
	"io"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/internal/testutil"
	"github.com/dnsfront/dnsfront/tlsframe"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	quicgo "github.com/quic-go/quic-go"
	"golang.org/x/crypto/ocsp"
)

// A DoQ query takes the engine's path (backend, then cache) and its answer comes back on
// the stream with ID 0; the handshake carries the staple of the bind's snapshot.
func TestDoQAnswersThroughTheEngine(t *testing.T) {
	h := newHarness(t, Options{})
	c := h.dial()
	cs := c.ConnectionState().TLS
	if cs.NegotiatedProtocol != "doq" {
		t.Fatalf("ALPN %q, want doq", cs.NegotiatedProtocol)
	}
	if cs.Version != 0x0304 {
		t.Fatalf("TLS version %#x, want TLS 1.3", cs.Version)
	}
	if !sameBytes(cs.OCSPResponse, h.staple) {
		t.Fatalf("staple of %d bytes in the handshake, want the published one (%d bytes)", len(cs.OCSPResponse), len(h.staple))
	}
	r, err := ocsp.ParseResponseForCert(cs.OCSPResponse, cs.PeerCertificates[0], h.pki.Issuer.Cert)
	if err != nil || r.Status != ocsp.Good {
		t.Fatalf("staple does not verify against the issuer as good: %v", err)
	}
	for i := range 3 {
		m := exchange(t, c, query("www.example.", 0))
		if m.Id != 0 || m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
			t.Fatalf("answer %d: id %d rcode %d, %d records", i, m.Id, m.Rcode, len(m.Answer))
		}
	}
	s := waitCounts(t, h.eng, func(s engine.Stats) bool { return s.Queries["doq"] == 3 && s.Responses["doq"] == 3 })
	if s.Queries["doq"] != 3 || s.Responses["doq"] != 3 {
		t.Fatalf("engine counted %d doq queries and %d responses, want 3 and 3", s.Queries["doq"], s.Responses["doq"])
	}
	if n := h.backend.Load(); n != 3 {
		t.Fatalf("backend saw %d queries, want 3 (no cache configured)", n)
	}
}

// The RFC 9250 protocol errors close the connection with DOQ_PROTOCOL_ERROR, are counted,
// and leave other clients alone.
func TestDoQProtocolErrors(t *testing.T) {
	keepalive := func() []byte {
		m := new(dns.Msg)
		m.SetQuestion("www.example.", dns.TypeA)
		m.Id = 0
		o := m.SetEdns0(1232, false).IsEdns0()
		o.Option = append(o.Option, &dns.EDNS0_TCP_KEEPALIVE{Code: dns.EDNS0TCPKEEPALIVE})
		b, _ := m.Pack()
		return b
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"message ID not 0", frame(query("www.example.", 4711))},
		{"two queries on one stream", frame(query("a.example.", 0), query("b.example.", 0))},
		{"edns-tcp-keepalive", frame(keepalive())},
		{"FIN inside the message", frame(query("www.example.", 0))[:10]},
		{"length beyond the data", append(binary.BigEndian.AppendUint16(nil, 65535), query("www.example.", 0)...)},
		{"length shorter than a header", frame([]byte{0, 0, 1})},
	}
	h := newHarness(t, Options{})
	bystander := h.dial()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := h.dial()
			str, err := c.OpenStreamSync(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			_, _ = str.Write(tc.data)
			_ = str.Close()
			if code := closedWith(t, c); code != DoQProtocolError {
				t.Fatalf("closed with %#x, want DOQ_PROTOCOL_ERROR", code)
			}
			if n := h.ln.Stats().ProtocolErrors; n != uint64(i+1) {
				t.Fatalf("%d protocol errors counted, want %d", n, i+1)
			}
			if m := exchange(t, bystander, query("ok.example.", 0)); m.Rcode != dns.RcodeSuccess {
				t.Fatalf("another client got rcode %d", m.Rcode)
			}
		})
	}
}

// A stream that never completes its query is reset with DOQ_REQUEST_CANCELLED after the
// stream timeout; the connection and its other streams live on.
func TestDoQStalledStreamIsCancelled(t *testing.T) {
	h := newHarness(t, Options{StreamTimeout: 200 * time.Millisecond})
	c := h.dial()
	str, err := c.OpenStreamSync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = str.Write(frame(query("www.example.", 0))[:5]) // and never more, never FIN
	_ = str.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(str)
	var se *quicgo.StreamError
	if !errors.As(err, &se) || se.ErrorCode != DoQRequestCancelled {
		t.Fatalf("stalled stream ended with %v, want a reset with DOQ_REQUEST_CANCELLED", err)
	}
	if m := exchange(t, c, query("www.example.", 0)); m.Rcode != dns.RcodeSuccess {
		t.Fatalf("next query on the connection: rcode %d", m.Rcode)
	}
	if n := h.ln.Stats().CancelledStreams; n != 1 {
		t.Fatalf("%d cancelled streams counted, want 1", n)
	}
}

// MAX_STREAMS bounds the queries a connection has open at once: beyond it the client must
// wait, and a finished stream gives its credit back.
func TestDoQStreamLimit(t *testing.T) {
	h := newHarness(t, Options{MaxStreams: 2, StreamTimeout: 5 * time.Second})
	c := h.dial()
	var open []*quicgo.Stream
	for range 2 {
		str, err := c.OpenStream()
		if err != nil {
			t.Fatalf("stream within the limit: %v", err)
		}
		_, _ = str.Write(frame(query("www.example.", 0))[:3]) // held open, incomplete
		open = append(open, str)
	}
	if _, err := c.OpenStream(); err == nil {
		t.Fatal("a third concurrent stream was allowed with max 2")
	} else if _, ok := errors.AsType[*quicgo.StreamLimitReachedError](err); !ok {
		t.Fatalf("third stream: %v, want StreamLimitReachedError", err)
	}
	// Completing one query frees its stream's credit.
	_, _ = open[0].Write(frame(query("www.example.", 0))[3:])
	_ = open[0].Close()
	if _, err := io.ReadAll(open[0]); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.OpenStreamSync(ctx); err != nil {
		t.Fatalf("no stream credit after a query finished: %v", err)
	}
}

// Unidirectional streams are not part of DoQ: the server grants none.
func TestDoQNoUnidirectionalStreams(t *testing.T) {
	h := newHarness(t, Options{})
	c := h.dial()
	if _, err := c.OpenUniStream(); err == nil {
		t.Fatal("the server granted a unidirectional stream")
	}
}

// A reload publishes a new snapshot: new handshakes get its staple at once, and a
// connection established before keeps serving.
func TestDoQReloadKeepsConnections(t *testing.T) {
	h := newHarness(t, Options{})
	old := h.dial()
	exchange(t, old, query("before.example.", 0))
	fresh := h.pki.Good() // ECDSA signatures differ: new bytes
	h.publish(fresh)
	c := h.dial()
	if got := c.ConnectionState().TLS.OCSPResponse; !sameBytes(got, fresh) {
		t.Fatal("a handshake after the reload did not get the new staple")
	}
	if m := exchange(t, old, query("after.example.", 0)); m.Rcode != dns.RcodeSuccess {
		t.Fatalf("connection from before the reload: rcode %d", m.Rcode)
	}
	h.publish(nil)
	if got := h.dial().ConnectionState().TLS.OCSPResponse; got != nil {
		t.Fatal("staple still sent after the snapshot dropped it")
	}
}

// Session tickets come from the bind's ring: a second connection resumes.
func TestDoQResumes(t *testing.T) {
	h := newHarness(t, Options{})
	tc := h.clientTLS("doq")
	tc.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	dial := func() *quicgo.Conn {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := quicgo.DialAddr(ctx, h.ln.Addr().String(), tc, &quicgo.Config{})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := dial()
	exchange(t, c, query("www.example.", 0)) // the ticket arrives after the handshake
	_ = c.CloseWithError(0, "")
	c2 := dial()
	defer c2.CloseWithError(0, "")
	if !c2.ConnectionState().TLS.DidResume {
		t.Fatal("second connection did not resume with the ticket of the first")
	}
}

// While handshakes pile up, new connections must validate their address with a Retry;
// quic-go's client answers it and the connection works.
func TestDoQRetryUnderLoad(t *testing.T) {
	h := newHarness(t, Options{RetryThreshold: -1})
	c := h.dial()
	if m := exchange(t, c, query("www.example.", 0)); m.Rcode != dns.RcodeSuccess {
		t.Fatalf("rcode %d", m.Rcode)
	}
	if h.ln.Stats().Retries == 0 {
		t.Fatal("no Retry was asked for with the threshold at -1")
	}
}

// The ACL applies before the handshake: a refused client gets CONNECTION_REFUSED.
func TestDoQACL(t *testing.T) {
	h := newHarness(t, Options{}, "192.0.2.0/24")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := quicgo.DialAddr(ctx, h.ln.Addr().String(), h.clientTLS("doq"), &quicgo.Config{})
	var te *quicgo.TransportError
	if !errors.As(err, &te) || te.ErrorCode != quicgo.ConnectionRefused {
		t.Fatalf("dial from outside the ACL: %v, want CONNECTION_REFUSED", err)
	}
	testutil.Eventually(t, 5*time.Second, "ACL refusal counted", func() bool { return h.ln.Stats().ACLDrops > 0 })
}

// Connections beyond max_concurrent_connections are closed with DOQ_EXCESSIVE_LOAD.
func TestDoQConnectionLimit(t *testing.T) {
	h := newHarness(t, Options{MaxConns: 1})
	first := h.dial()
	exchange(t, first, query("www.example.", 0))
	second := h.dial()
	if code := closedWith(t, second); code != DoQExcessiveLoad {
		t.Fatalf("second connection closed with %#x, want DOQ_EXCESSIVE_LOAD", code)
	}
}

// Shutdown answers what is in flight, then closes with DOQ_NO_ERROR.
func TestDoQGracefulShutdown(t *testing.T) {
	h := newHarness(t, Options{})
	c := h.dial()
	exchange(t, c, query("www.example.", 0))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.ln.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if code := closedWith(t, c); code != DoQNoError {
		t.Fatalf("closed with %#x, want DOQ_NO_ERROR", code)
	}
}

// QUIC handshakes are counted with the TCP ones, by version and key exchange.
func TestQUICHandshakesCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(tlsframe.HandshakeCollector())
	count := func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var n float64
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				for _, lp := range m.GetLabel() {
					if lp.GetName() == "version" && lp.GetValue() == "tls1.3" {
						n += m.GetCounter().GetValue()
					}
				}
			}
		}
		return n
	}
	h := newHarness(t, Options{})
	before := count()
	exchange(t, h.dial(), query("www.example.", 0))
	testutil.Eventually(t, 5*time.Second, "the QUIC handshake counted", func() bool { return count() > before })
}
