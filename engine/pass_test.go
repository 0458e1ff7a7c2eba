package engine

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/panjf2000/gnet/v2"
)

// passStream is a DoT/DoH layer that hands the loop the queries queued for its next read
// and writes its answers as length-prefixed frames on its own connection. reading is
// shared by every passStream of a test: it names the connection whose read pass is
// running, so that a flush from inside another connection's pass is caught.
type passStream struct {
	t       *testing.T
	name    string
	reading *string
	queries [][]byte
	queued  []byte
}

func (s *passStream) read(_ gnet.Conn, query func([]byte, uint64)) error {
	*s.reading = s.name
	for _, q := range s.queries {
		query(q, 0)
	}
	s.queries = nil
	*s.reading = ""
	return nil
}

func (s *passStream) answer(_ uint64, msg []byte) {
	s.queued = binary.BigEndian.AppendUint16(s.queued, uint16(len(msg)))
	s.queued = append(s.queued, msg...)
}

func (s *passStream) fail(tag uint64, _ failKind, msg []byte) { s.answer(tag, msg) }

func (s *passStream) flush(gc gnet.Conn) error {
	if *s.reading != "" {
		s.t.Errorf("connection %s flushed inside the read pass of connection %s", s.name, *s.reading)
	}
	if len(s.queued) == 0 {
		return nil
	}
	_, err := gc.Write(s.queued)
	s.queued = s.queued[:0]
	return err
}

func (s *passStream) Expired(time.Time) bool { return false }
func (s *passStream) wantClose() bool        { return false }
func (s *passStream) close()                 {}
func (s *passStream) shutdown(gnet.Conn)     {}

// recordingConn is a client connection that keeps everything written to it.
type recordingConn struct {
	fakeConn
	all []byte
}

func (c *recordingConn) Write(b []byte) (int, error) {
	c.all = append(c.all, b...)
	return len(b), nil
}

// answers splits what a client connection received into DNS messages.
func (c *recordingConn) answers(t *testing.T) []*dns.Msg {
	t.Helper()
	var out []*dns.Msg
	for b := c.all; len(b) > 0; {
		if len(b) < 2 || len(b) < 2+int(binary.BigEndian.Uint16(b)) {
			t.Fatalf("a partial frame: % x", b)
		}
		n := int(binary.BigEndian.Uint16(b))
		m := new(dns.Msg)
		if err := m.Unpack(b[2 : 2+n]); err != nil {
			t.Fatalf("not a DNS message: %v", err)
		}
		out = append(out, m)
		b = b[2+n:]
	}
	return out
}

// A backend socket whose write fails inside a client's read pass is closed there, and
// its OnClose answers the queries that waited on it, another connection's among them.
// Those answers are flushed at the end of the outer pass, not inside it, and each
// connection receives exactly its own answers.
func TestNoFlushInsideAnotherConnectionsPass(t *testing.T) {
	tb := newTwoBackends(t)
	s := tb.socks[1]
	s.tcp = true
	tb.l.state.Backends[1].TCPOnly = true
	tb.l.udp[1], tb.l.tcp[1] = nil, s
	backend := &fakeConn{}
	s.gc = backend

	var reading string
	client := func(name string) (*clientConn, *passStream, *recordingConn) {
		ps := &passStream{t: t, name: name, reading: &reading}
		rc := &recordingConn{}
		cc := &clientConn{gc: rc, l: tb.l, bind: tb.fast, proto: protoDoT, stream: ps}
		cc.onQuery = func(msg []byte, tag uint64) { tb.l.onStreamQuery(cc, msg, tag) }
		tb.l.clients[cc] = struct{}{}
		return cc, ps, rc
	}
	query := func(id uint16) []byte {
		q := new(dns.Msg)
		q.SetQuestion("www.example.com.", dns.TypeA)
		q.Id = id
		b, err := q.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	a, as, ac := client("A")
	b, bs, bc := client("B")
	bs.queries = [][]byte{query(2)}
	tb.l.onStreamTraffic(b)
	if len(s.pending) != 1 {
		t.Fatalf("%d queries pending on the backend socket, want B's", len(s.pending))
	}

	// The backend connection breaks: the next write to it fails and closes it.
	s.gc = &closingConn{h: &handler{e: tb.l.e}, s: s}
	as.queries = [][]byte{query(1)}
	tb.l.onStreamTraffic(a)

	for _, c := range []struct {
		name string
		rc   *recordingConn
		id   uint16
	}{{"A", ac, 1}, {"B", bc, 2}} {
		got := c.rc.answers(t)
		if len(got) != 1 || got[0].Id != c.id || got[0].Rcode != dns.RcodeServerFailure {
			t.Errorf("connection %s received %v, want one SERVFAIL with ID %d", c.name, got, c.id)
		}
	}
	if a.inflight != 0 || b.inflight != 0 || len(tb.l.dirty) != 0 {
		t.Errorf("in flight A %d B %d, %d connections still dirty", a.inflight, b.inflight, len(tb.l.dirty))
	}
}
