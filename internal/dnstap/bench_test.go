package dnstap

import (
	"net/netip"
	"testing"
	"time"
)

// BenchmarkLog is the loops' cost of a message: the copy and the queue, with a writer
// draining it.
func BenchmarkLog(b *testing.B) {
	o := testOptions("unix", "/nonexistent")
	o.QueueSize = 1 << 16
	l, err := New(o)
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-l.q:
			case <-done:
				return
			}
		}
	}()
	defer close(done)
	ev := &Event{Kind: ClientQuery, Protocol: DoT, Client: netip.MustParseAddrPort("192.0.2.1:5353"),
		Server: netip.MustParseAddrPort("127.0.0.1:853"), QueryTime: time.Now(), Msg: make([]byte, 60), Identity: "edge"}
	b.ReportAllocs()
	for b.Loop() {
		l.Log(ev)
	}
	b.ReportMetric(float64(l.Stats().Dropped), "dropped")
}

// BenchmarkEncode is the writer's cost of a message.
func BenchmarkEncode(b *testing.B) {
	e := newEncoder("dnsfront dev")
	ev := &Event{Kind: ClientResponse, Protocol: DoT, Client: netip.MustParseAddrPort("192.0.2.1:5353"),
		Server: netip.MustParseAddrPort("127.0.0.1:853"), QueryTime: time.Now(), ResponseTime: time.Now(),
		Msg: make([]byte, 120), Identity: "edge"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.encode(ev); err != nil {
			b.Fatal(err)
		}
	}
}
