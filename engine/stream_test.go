package engine

import (
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// echoStream is a DoT/DoH layer that yields one query per read and counts the answers.
type echoStream struct {
	query   []byte
	answers int
}

func (s *echoStream) read(_ gnet.Conn, query func([]byte, uint64)) error {
	query(s.query, 1)
	return nil
}
func (s *echoStream) answer(uint64, []byte)         { s.answers++ }
func (s *echoStream) fail(uint64, failKind, []byte) {}
func (s *echoStream) flush(gnet.Conn) error         { return nil }
func (s *echoStream) Expired(time.Time) bool        { return false }
func (s *echoStream) wantClose() bool               { return false }
func (s *echoStream) close()                        {}
func (s *echoStream) shutdown(gnet.Conn)            {}

// BenchmarkHotPathStream is one query read from a stream connection (the DoT/DoH layer
// stubbed out) and its answer back through the loop: what the engine adds per stream
// query around TLS and HTTP.
func BenchmarkHotPathStream(b *testing.B) {
	fd, client := udpPair(b)
	h := newHotPath(b, fd, client)
	es := &echoStream{query: h.query}
	cc := &clientConn{gc: h.listener, l: h.l, bind: h.bind, proto: protoDoT, stream: es}
	cc.onQuery = func(msg []byte, tag uint64) { h.l.onStreamQuery(cc, msg, tag) }
	h.l.clients[cc] = struct{}{}
	roundTrip := func() {
		h.l.onStreamTraffic(cc)
		h.readSent()
		h.ans = append(h.ans[:0], h.answer...)
		copy(h.ans[:2], h.sent[:2]) // the ID the loop chose
		h.backend.in = h.ans
		h.l.onBackendTraffic(h.sock, h.backend)
	}
	h.bench(b, roundTrip, func() int { return es.answers })
}
