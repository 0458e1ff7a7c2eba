package dnstap

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/internal/testutil"
	dnstappb "github.com/dnstap/golang-dnstap"
	framestream "github.com/farsightsec/golang-framestream"
)

// fakeClock's timers fire only when the test fires them.
type fakeClock struct {
	mu     sync.Mutex
	timers []*fakeTimer
}

type fakeTimer struct {
	d     time.Duration
	c     chan time.Time
	done  bool // stopped or fired
	clock *fakeClock
}

func (f *fakeClock) timer(d time.Duration) (<-chan time.Time, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{d: d, c: make(chan time.Time, 1), clock: f}
	f.timers = append(f.timers, t)
	return t.c, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		t.done = true
	}
}

// live returns the timers neither stopped nor fired.
func (f *fakeClock) live() []*fakeTimer {
	f.mu.Lock()
	defer f.mu.Unlock()
	var l []*fakeTimer
	for _, t := range f.timers {
		if !t.done {
			l = append(l, t)
		}
	}
	return l
}

func (t *fakeTimer) fire() {
	f := t.clock
	f.mu.Lock()
	defer f.mu.Unlock()
	t.done = true
	t.c <- time.Time{}
}

// logRecords keeps the level and message of each record logged.
type logRecords struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecords) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r)
	return nil
}
func (h *logRecords) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecords) WithGroup(string) slog.Handler      { return h }

func (h *logRecords) count(level slog.Level) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.recs {
		if r.Level == level {
			n++
		}
	}
	return n
}

// A collector that completes the Frame Streams handshake and closes at once (as one
// that rejects us, or crash-loops, does) gets connections at the doubling back-off, not
// ten a second, and one Warn for the whole streak. A connection that then lasts
// ReopenInterval ends the streak with an Info and resets the wait.
func TestWriterBackoffAfterHandshakeClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tap.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var (
		accepts atomic.Int64
		hold    atomic.Bool // keep connections open instead of closing them
		mu      sync.Mutex
		held    []net.Conn
	)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepts.Add(1)
			go func() {
				_, err := framestream.NewReader(conn, &framestream.ReaderOptions{
					ContentTypes: [][]byte{dnstappb.FSContentType}, Bidirectional: true})
				if err != nil || !hold.Load() {
					_ = conn.Close()
					return
				}
				mu.Lock()
				held = append(held, conn)
				mu.Unlock()
				_, _ = io.Copy(io.Discard, conn)
			}()
		}
	}()
	defer ln.Close()

	o := testOptions("unix", path)
	o.ReopenInterval = 2 * time.Second
	logs := &logRecords{}
	o.Log = slog.New(logs)
	l, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{}
	l.clock = clk
	l.Start()
	defer l.Close()

	// pauseAfter waits until the writer has lost its n-th connection and is pausing,
	// and returns that pause's timer. The connection's own timer is stopped before the
	// loss is counted, so the one live timer then is the pause.
	pauseAfter := func(n uint64) *fakeTimer {
		t.Helper()
		var p *fakeTimer
		testutil.Eventually(t, 5*time.Second, "the writer pausing after a lost connection", func() bool {
			st := l.Stats()
			if st.Connects != n || st.WriteErrors != n {
				return false
			}
			live := clk.live()
			if len(live) != 1 {
				return false
			}
			p = live[0]
			return true
		})
		return p
	}

	ms := time.Millisecond
	for i, want := range []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 2000 * ms, 2000 * ms} {
		p := pauseAfter(uint64(i + 1))
		if p.d != want {
			t.Fatalf("pause after connection %d: %v, want %v", i+1, p.d, want)
		}
		if st := l.Stats(); st.Connects != uint64(i+1) || accepts.Load() != int64(i+1) || st.ConnectErrors != 0 {
			t.Fatalf("pause after connection %d: stats %+v, %d accepted", i+1, st, accepts.Load())
		}
		if i == 6 {
			hold.Store(true) // the collector keeps the next connection
		}
		p.fire()
	}
	if w, i := logs.count(slog.LevelWarn), logs.count(slog.LevelInfo); w != 1 || i != 0 {
		t.Fatalf("during the streak: %d Warn and %d Info logged, want 1 and 0", w, i)
	}

	// The eighth connection lasts ReopenInterval: the streak ends.
	var steady *fakeTimer
	testutil.Eventually(t, 5*time.Second, "the eighth connection up", func() bool {
		live := clk.live()
		if l.Stats().Connected != 1 || len(live) != 1 {
			return false
		}
		steady = live[0]
		return true
	})
	if steady.d != o.ReopenInterval {
		t.Fatalf("a connection counts as serving after %v, want %v", steady.d, o.ReopenInterval)
	}
	steady.fire()
	testutil.Eventually(t, 5*time.Second, "the Info that the collector is served again", func() bool {
		return logs.count(slog.LevelInfo) == 1
	})

	// Its loss starts a new streak: one more Warn, and the wait is back to the minimum.
	mu.Lock()
	for _, c := range held {
		_ = c.Close()
	}
	mu.Unlock()
	if p := pauseAfter(8); p.d != minReconnect {
		t.Fatalf("pause after a connection that served: %v, want %v", p.d, minReconnect)
	}
	if w := logs.count(slog.LevelWarn); w != 2 {
		t.Fatalf("%d Warn logged, want 2", w)
	}
}
