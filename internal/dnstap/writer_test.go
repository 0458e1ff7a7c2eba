package dnstap

import (
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/internal/testutil"
	dnstappb "github.com/dnstap/golang-dnstap"
	framestream "github.com/farsightsec/golang-framestream"
	"google.golang.org/protobuf/proto"
)

// collector is a Frame Streams reader on a unix socket, as a dnstap collector is: it
// answers the bidirectional handshake and passes the payloads it reads to frames.
type collector struct {
	ln     net.Listener
	frames chan *dnstappb.Dnstap
	done   chan struct{}
	mu     sync.Mutex
	conns  []net.Conn
}

func startCollector(t *testing.T, path string) *collector {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{ln: ln, frames: make(chan *dnstappb.Dnstap, 100), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.mu.Lock()
			c.conns = append(c.conns, conn)
			c.mu.Unlock()
			go c.read(conn)
		}
	}()
	return c
}

func (c *collector) read(conn net.Conn) {
	defer conn.Close()
	r, err := framestream.NewReader(conn, &framestream.ReaderOptions{
		ContentTypes: [][]byte{dnstappb.FSContentType}, Bidirectional: true})
	if err != nil {
		return
	}
	buf := make([]byte, 65536)
	for {
		n, err := r.ReadFrame(buf)
		if err != nil {
			return
		}
		var d dnstappb.Dnstap
		if proto.Unmarshal(buf[:n], &d) == nil {
			c.frames <- &d
		}
	}
}

// stop closes the listener and the connections, as a collector that exits does.
func (c *collector) stop() {
	_ = c.ln.Close()
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		_ = conn.Close()
	}
}

func (c *collector) next(t *testing.T) *dnstappb.Dnstap {
	t.Helper()
	select {
	case d := <-c.frames:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("no dnstap frame within 10s")
		return nil
	}
}

func TestWriterDeliversAndReconnects(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tap.sock")
	col := startCollector(t, path)
	o := testOptions("unix", path)
	o.QueueSize = 64
	l, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	l.Start()
	defer l.Close()
	l.Log(&Event{Kind: ClientQuery, Protocol: DoT, Msg: []byte("one"), Identity: "id"})
	if d := col.next(t); string(d.GetMessage().GetQueryMessage()) != "one" || string(d.GetIdentity()) != "id" {
		t.Fatalf("got %v", d)
	}
	testutil.Eventually(t, 5*time.Second, "the frame counted as sent", func() bool { return l.Stats().Sent == 1 })

	// The collector exits and, later, a new one listens on the same path: the writer
	// notices at once, reconnects with back-off, and sends what was queued meanwhile.
	col.stop()
	testutil.Eventually(t, 5*time.Second, "the lost connection noticed", func() bool { return l.Stats().WriteErrors == 1 })
	l.Log(&Event{Kind: ClientResponse, Protocol: UDP, Msg: []byte("two")})
	col2 := startCollector(t, path)
	defer col2.stop()
	for {
		d := col2.next(t)
		if string(d.GetMessage().GetResponseMessage()) == "two" {
			break
		}
	}
	testutil.Eventually(t, 5*time.Second, "the reconnection counted", func() bool {
		st := l.Stats()
		return st.Connects == 2 && st.Connected == 1
	})
}

// Close ends the Frame Streams session (STOP, FINISH) after flushing what was queued.
func TestWriterCloseFlushes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tap.sock")
	col := startCollector(t, path)
	defer col.stop()
	o := testOptions("unix", path)
	o.FlushTimeout = time.Hour // only Close flushes
	o.QueueSize = 64
	l, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	l.Start()
	testutil.Eventually(t, 5*time.Second, "connected", func() bool { return l.Stats().Connected == 1 })
	l.Log(&Event{Kind: ClientQuery, Msg: []byte("last")})
	testutil.Eventually(t, 5*time.Second, "the event taken by the writer", func() bool { return l.Stats().QueueLength == 0 })
	l.Close()
	if d := col.next(t); string(d.GetMessage().GetQueryMessage()) != "last" {
		t.Fatalf("got %v", d)
	}
	if st := l.Stats(); st.Sent != 1 || st.Connected != 0 {
		t.Fatalf("after Close: %+v", st)
	}
}

// A collector that accepts and never reads: the handshake times out, the writer retries,
// and the loops' events are dropped and counted once the queue is full; Log never waits.
func TestWriterStuckCollector(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tap.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	l, err := New(testOptions("unix", path))
	if err != nil {
		t.Fatal(err)
	}
	l.Start()
	start := time.Now()
	for range 100 {
		l.Log(&Event{Kind: ClientQuery, Msg: make([]byte, 100)})
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("100 Log calls took %v", d)
	}
	if st := l.Stats(); st.Dropped < 100-4-1 {
		t.Fatalf("stats %+v: want at least 95 dropped", st)
	}
	closed := make(chan struct{})
	go func() { l.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return while the handshake was stuck")
	}
}
