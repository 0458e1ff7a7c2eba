package e2e

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/http2"
)

// holdingBackend answers every query over UDP after a delay, and records the most
// queries it ever held unanswered at once. A query is counted answered before its answer
// is sent, so a frontend that sends the next query only once an answer came back never
// shows more than its limit.
type holdingBackend struct {
	Addr string
	pc   net.PacketConn

	mu       sync.Mutex
	held     int
	maxHeld  int
	received int
}

func startHoldingBackend(t *testing.T, delay time.Duration) *holdingBackend {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &holdingBackend{Addr: pc.LocalAddr().String(), pc: pc}
	var wg sync.WaitGroup
	t.Cleanup(func() { pc.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			q := new(dns.Msg)
			if q.Unpack(buf[:n]) != nil || len(q.Question) != 1 {
				continue
			}
			r := new(dns.Msg)
			r.SetReply(q)
			rr, _ := dns.NewRR(q.Question[0].Name + " 60 IN A " + testAnswer)
			r.Answer = append(r.Answer, rr)
			out, err := r.Pack()
			if err != nil {
				continue
			}
			b.mu.Lock()
			b.received++
			b.held++
			b.maxHeld = max(b.maxHeld, b.held)
			b.mu.Unlock()
			wg.Add(1)
			time.AfterFunc(delay, func() {
				defer wg.Done()
				b.mu.Lock()
				b.held--
				b.mu.Unlock()
				_, _ = pc.WriteTo(out, from)
			})
		}
	}()
	return b
}

func (b *holdingBackend) counts() (received, maxHeld int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.received, b.maxHeld
}

// max_tcp_in_flight bounds the queries one DoT connection has at the backends: the
// server stops reading the connection at the limit and resumes as answers drain, so
// every pipelined query is answered and the backend never holds more than the limit.
func TestInFlightLimitDoT(t *testing.T) {
	t.Parallel()
	const limit, queries = 2, 8
	be := startHoldingBackend(t, 50*time.Millisecond)
	s := startStreams(t, streamData{InFlight: limit, Backend: be.Addr})
	c := s.dialDoT(t)
	defer c.Close()
	var out []byte
	for i := range queries {
		q := NewQuery(testName, dns.TypeA)
		q.Id = uint16(i + 1)
		out = append(out, frame(t, q)...)
	}
	if _, err := c.Write(out); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	seen := map[uint16]bool{}
	for range queries {
		m, err := readFrame(c)
		if err != nil {
			t.Fatalf("after %d answers: %v", len(seen), err)
		}
		requireAnswer(t, m, m.Id)
		seen[m.Id] = true
	}
	received, maxHeld := be.counts()
	if len(seen) != queries || received != queries {
		t.Errorf("%d distinct answers, backend received %d queries; want %d and %d", len(seen), received, queries, queries)
	}
	if maxHeld > limit {
		t.Errorf("the backend held %d queries of one DoT connection at once, max_tcp_in_flight is %d", maxHeld, limit)
	}
}

// max_tcp_in_flight bounds the streams of one DoH connection: the server announces it as
// SETTINGS_MAX_CONCURRENT_STREAMS (the doh block's max_concurrent_streams, 100 by
// default, is larger here).
func TestInFlightLimitDoH(t *testing.T) {
	t.Parallel()
	const limit = 3
	s := startStreams(t, streamData{InFlight: limit})
	h := dialH2Raw(t, s.d.Addr("doh"), s.pki)
	_ = h.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			t.Fatalf("no SETTINGS from the server: %v", err)
		}
		sf, ok := f.(*http2.SettingsFrame)
		if !ok || sf.IsAck() {
			continue
		}
		v, ok := sf.Value(http2.SettingMaxConcurrentStreams)
		if !ok || v != limit {
			t.Fatalf("SETTINGS_MAX_CONCURRENT_STREAMS %d (sent %v), want max_tcp_in_flight %d", v, ok, limit)
		}
		return
	}
}
