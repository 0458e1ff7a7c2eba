package tlsframe

import (
	"container/list"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of HandshakerOptions.
const (
	DefaultMaxHandshakes       = 1024
	DefaultHandshakeQueue      = 4096
	DefaultHandshakesPerClient = 128
	DefaultHandshakeTimeout    = 5 * time.Second
)

// Idle handshake workers. A worker whose queue is empty parks for a while
// instead of exiting: crypto/tls's server handshake needs a stack several
// times a new goroutine's, and growing it by copying on every handshake cost
// about 6% of the server's CPU under a full-handshake load (runtime.newstack,
// docs/benchmarks.md). A parked worker keeps its grown stack for the next
// handshake. The linger is long against the gaps of a steady load and short
// against an operator's view of an idle process; the cap bounds what idle
// workers hold (a few tens of kB of stack each).
const (
	idleWorkerLinger = 2 * time.Second
	maxIdleWorkers   = 64
)

// HandshakerOptions bound the handshakes of a process (or of a bind).
type HandshakerOptions struct {
	// MaxConcurrent is the hard cap on handshakes running at once, each on
	// its own goroutine. A TLS 1.3 handshake spends a round trip waiting for
	// the client's Finished, so the cap is much larger than the core count.
	MaxConcurrent int
	// MaxQueue bounds the FIFO of handshakes waiting for a slot; a
	// connection arriving when it is full is closed (shed).
	MaxQueue int
	// PerClient bounds the queued plus running handshakes of one client
	// address; beyond it the connection is closed. Negative disables it.
	PerClient int
	// Timeout is the deadline from accept to handshake completion: it
	// covers a half-sent ClientHello, the time queued and the handshake.
	Timeout time.Duration
	// Logger receives handshake failures at debug level.
	Logger *slog.Logger
}

func (o HandshakerOptions) withDefaults() HandshakerOptions {
	if o.MaxConcurrent <= 0 {
		o.MaxConcurrent = DefaultMaxHandshakes
	}
	if o.MaxQueue < 0 {
		o.MaxQueue = 0
	} else if o.MaxQueue == 0 {
		o.MaxQueue = DefaultHandshakeQueue
	}
	if o.PerClient == 0 {
		o.PerClient = DefaultHandshakesPerClient
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultHandshakeTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Errors returned by OnTraffic when a handshake is refused (the caller
// closes the connection).
var (
	ErrHandshakeQueueFull = errors.New("tlsframe: handshake queue full")
	ErrClientHandshakes   = errors.New("tlsframe: too many handshakes from this client")
)

type jobState uint8

const (
	jobNone jobState = iota
	jobQueued
	jobRunning
	jobDone
)

// Handshaker runs TLS handshakes off the event loops: one goroutine per
// running handshake (a goroutine takes the next queued one when it is done),
// at most MaxConcurrent. A goroutine with nothing queued parks as an idle
// worker for idleWorkerLinger (at most maxIdleWorkers of them), so that the
// next handshake runs on a grown stack; none is left once the load stops.
//
// Concurrency: safe for concurrent use; submit and cancel are called on
// loops, workers run on their own goroutines; state is behind mu.
type Handshaker struct {
	opts HandshakerOptions

	mu        sync.Mutex
	running   int
	queue     list.List // of *Conn
	perClient map[netip.Addr]int
	wg        sync.WaitGroup
	limit     limiters     // per-client TLS limits (limit.go)
	idle      []chan *Conn // parked workers, the most recently parked last
	noPark    bool         // set by Wait: finished workers exit

	started, succeeded, failed, shed, clientRejected, timedOut atomic.Uint64
}

// HandshakeStats are counters for metrics.
type HandshakeStats struct {
	Running, Queued                                            int
	Started, Succeeded, Failed, Shed, ClientRejected, TimedOut uint64
}

// NewHandshaker makes a handshaker; zero options take the defaults.
func NewHandshaker(opts HandshakerOptions) *Handshaker {
	return &Handshaker{opts: opts.withDefaults(), perClient: make(map[netip.Addr]int)}
}

// Options returns the effective options (defaults filled in).
func (h *Handshaker) Options() HandshakerOptions { return h.opts }

// Stats returns the current counters.
func (h *Handshaker) Stats() HandshakeStats {
	h.mu.Lock()
	running, queued := h.running, h.queue.Len()
	h.mu.Unlock()
	return HandshakeStats{
		Running: running, Queued: queued,
		Started: h.started.Load(), Succeeded: h.succeeded.Load(), Failed: h.failed.Load(),
		Shed: h.shed.Load(), ClientRejected: h.clientRejected.Load(), TimedOut: h.timedOut.Load(),
	}
}

// Wait blocks until no handshake goroutine is left (tests, shutdown): idle
// workers are dismissed, and running ones exit when done instead of parking.
func (h *Handshaker) Wait() {
	h.mu.Lock()
	h.noPark = true
	for _, ch := range h.idle {
		ch <- nil
	}
	h.idle = h.idle[:0]
	h.mu.Unlock()
	h.wg.Wait()
	h.mu.Lock()
	h.noPark = false
	h.mu.Unlock()
}

// submit starts or queues c's handshake (on c's loop).
func (h *Handshaker) submit(c *Conn) error {
	ip := c.peer.Addr().Unmap()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.opts.PerClient > 0 && h.perClient[ip] >= h.opts.PerClient {
		h.clientRejected.Add(1)
		return fmt.Errorf("%w: %s has %d in progress", ErrClientHandshakes, ip, h.perClient[ip])
	}
	if !h.limitBegin(c) {
		h.clientRejected.Add(1)
		return fmt.Errorf("%w: %s is over its TLS session limits", ErrClientHandshakes, ip)
	}
	if h.running < h.opts.MaxConcurrent {
		h.running++
		h.perClient[ip]++
		c.job = jobRunning
		if n := len(h.idle); n > 0 {
			// The most recently parked worker: its stack is the likeliest
			// to be still grown and in cache.
			ch := h.idle[n-1]
			h.idle = h.idle[:n-1]
			ch <- c // buffered, and only the popper sends: never blocks
			return nil
		}
		h.wg.Add(1)
		go h.worker(c)
		return nil
	}
	if h.queue.Len() >= h.opts.MaxQueue {
		h.shed.Add(1)
		c.limitEnd(false)
		return fmt.Errorf("%w (%d waiting, peer %s)", ErrHandshakeQueueFull, h.queue.Len(), c.peer)
	}
	h.perClient[ip]++
	c.job = jobQueued
	c.elem = h.queue.PushBack(c)
	return nil
}

// cancel drops c from the queue if it is still waiting (on c's loop, from
// OnClose). A running handshake ends by itself: its adapter is shut.
func (h *Handshaker) cancel(c *Conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.job != jobQueued {
		return
	}
	h.queue.Remove(c.elem.(*list.Element))
	c.elem = nil
	c.job = jobDone
	h.releaseClient(c)
	c.limitEnd(false)
}

func (h *Handshaker) releaseClient(c *Conn) {
	ip := c.peer.Addr().Unmap()
	if h.perClient[ip] <= 1 {
		delete(h.perClient, ip)
	} else {
		h.perClient[ip]--
	}
}

func (h *Handshaker) worker(c *Conn) {
	defer h.wg.Done()
	var (
		wake  chan *Conn
		timer *time.Timer
	)
	for {
		if c == nil {
			if wake == nil {
				wake = make(chan *Conn, 1)
				timer = time.NewTimer(idleWorkerLinger)
			} else {
				timer.Reset(idleWorkerLinger)
			}
			if c = h.park(wake, timer); c == nil {
				return
			}
		}
		if c.ad.isShut() {
			// Expired or closed while queued: its OnClose is on the way.
			c.limitEnd(false)
			c = h.next(c)
			continue
		}
		h.started.Add(1)
		err := c.runHandshake()
		c.limitEnd(err == nil)
		if err != nil {
			h.failed.Add(1)
			h.opts.Logger.Debug("tls handshake failed", "peer", c.peer.String(), "err", err)
		} else {
			h.succeeded.Add(1)
			CountHandshake(c.tls.ConnectionState())
		}
		c = h.next(c)
	}
}

// park waits as an idle worker for a connection handed over by submit; nil
// when the linger ran out or Wait dismissed it (the goroutine then exits).
// next has already counted the worker out of running.
func (h *Handshaker) park(wake chan *Conn, timer *time.Timer) *Conn {
	h.mu.Lock()
	if h.noPark || len(h.idle) >= maxIdleWorkers {
		h.mu.Unlock()
		return nil
	}
	h.idle = append(h.idle, wake)
	h.mu.Unlock()
	select {
	case c := <-wake:
		timer.Stop()
		return c
	case <-timer.C:
	}
	h.mu.Lock()
	if i := slices.Index(h.idle, wake); i >= 0 {
		h.idle = slices.Delete(h.idle, i, i+1)
		h.mu.Unlock()
		return nil
	}
	h.mu.Unlock()
	// submit or Wait popped this worker as the linger ran out: its send is
	// on the way.
	return <-wake
}

// next retires c and returns the oldest queued connection, or nil when the
// queue is empty (the worker then parks or exits).
func (h *Handshaker) next(c *Conn) *Conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	c.job = jobDone
	h.releaseClient(c)
	if e := h.queue.Front(); e != nil {
		n := h.queue.Remove(e).(*Conn)
		n.elem = nil
		n.job = jobRunning
		return n
	}
	h.running--
	return nil
}
