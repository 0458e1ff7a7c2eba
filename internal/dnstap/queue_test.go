package dnstap

import (
	"log/slog"
	"testing"
	"time"
)

func testOptions(network, addr string) Options {
	return Options{
		Name: "t", Network: network, Address: addr, QueueSize: 4, BufferHint: 8192,
		FlushTimeout: 10 * time.Millisecond, FlushFrames: 64, ReopenInterval: 200 * time.Millisecond,
		Connections: 1, Version: "dnsfront test", Log: slog.New(slog.DiscardHandler),
	}
}

// A full queue drops and counts; Log never waits for a writer (none runs here).
func TestLogDropsWhenFull(t *testing.T) {
	l, err := New(testOptions("unix", "/nonexistent/dnstap.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	msg := []byte("query")
	for range 10 {
		l.Log(&Event{Msg: msg})
	}
	st := l.Stats()
	if st.Queued != 4 || st.Dropped != 6 || st.QueueLength != 4 {
		t.Fatalf("stats %+v, want 4 queued, 6 dropped, 4 waiting", st)
	}
}

// Log copies the message: the loop reuses its buffers as soon as Log returns.
func TestLogCopiesMessage(t *testing.T) {
	l, err := New(testOptions("unix", "/nonexistent/dnstap.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	buf := []byte("first")
	l.Log(&Event{Msg: buf})
	copy(buf, "XXXXX")
	ev := <-l.q
	if string(ev.Msg) != "first" {
		t.Fatalf("queued message %q changed with the caller's buffer", ev.Msg)
	}
}

func TestLogAllocs(t *testing.T) {
	l, err := New(testOptions("unix", "/nonexistent/dnstap.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ev := &Event{Msg: make([]byte, 64)}
	for range 4 {
		l.Log(ev)
	}
	// Full: a dropped event costs no allocation.
	if n := testing.AllocsPerRun(100, func() { l.Log(ev) }); n != 0 {
		t.Fatalf("Log on a full queue allocates %v times", n)
	}
}

func TestNewRejects(t *testing.T) {
	for _, o := range []Options{
		testOptions("udp", "127.0.0.1:1"),
		testOptions("tcp", "nohost"),
		testOptions("unix", ""),
		func() Options { o := testOptions("unix", "/x"); o.QueueSize = 0; return o }(),
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%s %q, queue %d) accepted", o.Network, o.Address, o.QueueSize)
		}
	}
}

func TestSame(t *testing.T) {
	o := testOptions("unix", "/x")
	l, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	o.Log = nil
	if !l.Same(o) {
		t.Error("same options (but the slog logger) reported different")
	}
	o.QueueSize++
	if l.Same(o) {
		t.Error("a different queue size reported the same")
	}
}
