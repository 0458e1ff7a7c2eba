// Package dnstap sends dnstap messages (https://dnstap.info) about client queries and
// responses to a remote collector over Frame Streams, on a unix socket or TCP.
//
// Concurrency rule: the event loops only call Log, which copies the event into a bounded
// queue and never blocks: when the queue is full the event is dropped and counted. Each
// connection of a Logger has one writer goroutine that takes events from the queue,
// encodes them, writes them and, when the collector goes away, reconnects with back-off.
// Counters are atomics, read by the metrics scraper.
package dnstap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Logger (config's remote_logging.dnstap_loggers, with dnsdist's
// keys; the server fills the defaults).
type Options struct {
	Name string
	// Network is "unix" or "tcp"; Address a socket path or an IP:port.
	Network, Address string
	// QueueSize is the number of events held for the writers; beyond it new events are
	// dropped (dnsdist's input_queue_size).
	QueueSize int
	// BufferHint: a writer flushes once it holds this many bytes (buffer_hint);
	// FlushTimeout: or once its oldest unflushed frame is this old (flush_timeout);
	// FlushFrames: or once it holds this many frames (output_queue_size).
	BufferHint   int
	FlushTimeout time.Duration
	FlushFrames  int
	// ReopenInterval is the longest wait between two connection attempts
	// (reopen_interval); the first retry comes sooner (minReconnect). It is also how
	// long a connection must last to count as serving, which resets the wait.
	ReopenInterval time.Duration
	// Connections is the number of connections, each with its writer (connection_count).
	Connections int
	// Version is the dnstap version string ("dnsfront 1.2.3").
	Version string
	Log     *slog.Logger
}

// Timing of the writers.
const (
	// minReconnect is the first wait after a lost or refused connection: a collector
	// that restarts is back within a fraction of a second, and the queue bridges that.
	// Each failure doubles the wait, up to ReopenInterval, so a collector that is down
	// costs one attempt per ReopenInterval. A connection that closes before it has
	// lasted ReopenInterval is a failure too, not a recovery: a collector that accepts
	// the handshake and then closes (rejecting us, or crash-looping) would otherwise
	// get ten connections a second.
	minReconnect = 100 * time.Millisecond
	// dialTimeout bounds a connection attempt (dnsdist's protobuf logger default).
	dialTimeout = 2 * time.Second
	// ioTimeout bounds each write and the handshake's reads: a collector that stops
	// reading for this long is considered dead, and the writer reconnects, so the queue
	// drains into a live connection (or drops) instead of stalling behind a stuck one.
	ioTimeout = 5 * time.Second
	// closeGrace is how long Close lets writers flush and finish the Frame Streams
	// shutdown (STOP, then FINISH from the collector) before it cuts the connections.
	closeGrace = time.Second
)

// Logger is one dnstap destination. Log is safe for concurrent use and never blocks.
type Logger struct {
	opts  Options
	q     chan Event // never closed: a loop may still Log after Close
	clock clock      // set before Start, read only by the writers

	stop, kill       context.CancelFunc
	stopCtx, killCtx context.Context
	wg               sync.WaitGroup
	startOnce        sync.Once
	closeOnce        sync.Once

	queued, dropped, sent, writeErrors, connects, connectErrors atomic.Uint64
	connected                                                   atomic.Int64
}

// Stats are a Logger's counters.
type Stats struct {
	// Queued counts events accepted by Log, Dropped those refused because the queue was
	// full, Sent the frames written to a connection.
	Queued, Dropped, Sent uint64
	// WriteErrors counts connections lost while writing (the frames being written with
	// them are lost too); ConnectErrors failed connection attempts and handshakes;
	// Connects successful ones.
	WriteErrors, ConnectErrors, Connects uint64
	// Connected is the number of connections up now; QueueLength the events waiting.
	Connected   int64
	QueueLength int
}

// New checks opts and makes a Logger. It starts nothing: events logged before Start
// wait in the queue.
func New(opts Options) (*Logger, error) {
	switch opts.Network {
	case "unix":
		if opts.Address == "" {
			return nil, errors.New("dnstap: a unix transport needs a socket path")
		}
	case "tcp":
		if _, _, err := net.SplitHostPort(opts.Address); err != nil {
			return nil, fmt.Errorf("dnstap: %q is not an IP:port: %v", opts.Address, err)
		}
	default:
		return nil, fmt.Errorf("dnstap: transport %q (want unix or tcp)", opts.Network)
	}
	if opts.QueueSize < 1 || opts.Connections < 1 || opts.BufferHint < 1 || opts.FlushFrames < 1 ||
		opts.FlushTimeout <= 0 || opts.ReopenInterval <= 0 {
		return nil, fmt.Errorf("dnstap: logger %q: sizes and intervals must be positive", opts.Name)
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	l := &Logger{opts: opts, q: make(chan Event, opts.QueueSize), clock: realClock{}}
	l.stopCtx, l.stop = context.WithCancel(context.Background())
	l.killCtx, l.kill = context.WithCancel(context.Background())
	return l, nil
}

// Name is the logger's name.
func (l *Logger) Name() string { return l.opts.Name }

// Log queues ev for the writers, or counts it as dropped when the queue is full. It
// copies ev.Msg. It runs on the event loops: it must not block, and does not.
func (l *Logger) Log(ev *Event) {
	if len(l.q) == cap(l.q) {
		l.dropped.Add(1) // the copy below would be wasted
		return
	}
	e := *ev
	e.Msg = append([]byte(nil), ev.Msg...)
	select {
	case l.q <- e:
		l.queued.Add(1)
	default:
		l.dropped.Add(1)
	}
}

// Start starts the writers. It is called once the logger is in use (a reload's commit);
// later calls do nothing.
func (l *Logger) Start() {
	l.startOnce.Do(func() {
		for i := 0; i < l.opts.Connections; i++ {
			l.wg.Add(1)
			go l.run()
		}
	})
}

// Close stops the writers: each flushes what it holds and ends its Frame Streams
// session, for at most closeGrace, then its connection is cut. Events still queued are
// discarded. Close waits for the writers; calling it again does nothing.
func (l *Logger) Close() {
	l.closeOnce.Do(func() {
		l.stop()
		done := make(chan struct{})
		go func() { l.wg.Wait(); close(done) }()
		t := time.NewTimer(closeGrace)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			l.kill()
			<-done
		}
		l.kill()
	})
}

// Stats returns the logger's counters.
func (l *Logger) Stats() Stats {
	return Stats{
		Queued: l.queued.Load(), Dropped: l.dropped.Load(), Sent: l.sent.Load(),
		WriteErrors: l.writeErrors.Load(), ConnectErrors: l.connectErrors.Load(), Connects: l.connects.Load(),
		Connected: l.connected.Load(), QueueLength: len(l.q),
	}
}

// Same reports whether l was made with opts, so that a reload keeps it (and its
// connection) instead of replacing it.
func (l *Logger) Same(opts Options) bool {
	a, b := l.opts, opts
	a.Log, b.Log = nil, nil
	return a == b
}

func (l *Logger) String() string {
	return fmt.Sprintf("dnstap logger %q (%s:%s)", l.opts.Name, l.opts.Network, strings.TrimSpace(l.opts.Address))
}
