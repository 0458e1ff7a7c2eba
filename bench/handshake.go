package bench

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// HandshakeOptions configure a handshake load: Concurrency workers, each
// opening a new TCP connection, doing one TLS handshake (and optionally one
// DoT query), and closing, for Duration. With Proto "quic", each operation
// is a new QUIC connection (ALPN doq unless TLS.ALPN says otherwise) and the
// optional query is a DoQ query.
type HandshakeOptions struct {
	Target      string // host:port
	Proto       string // "tls" (default) or "quic"
	TLS         TLSOptions
	Resume      bool // share one session cache; a handshake before the run primes it
	Concurrency int
	Duration    time.Duration
	Timeout     time.Duration // per handshake (connect included); 0: 5 s
	Query       string        // if set, send one DoT query for this name (type A) after each handshake
	RunInfo
}

// RunHandshake runs a handshake load against o.Target and returns its report.
// It returns an error only when the run cannot start (bad options, a first
// handshake that fails); failures during the run are counted in the report.
func RunHandshake(ctx context.Context, o HandshakeOptions) (*Report, error) {
	if o.Concurrency <= 0 {
		o.Concurrency = 1
	}
	if o.Duration <= 0 {
		return nil, errors.New("bench: duration must be positive")
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	host, _, err := net.SplitHostPort(o.Target)
	if err != nil {
		return nil, fmt.Errorf("bench: target %q: %w", o.Target, err)
	}
	o.Proto = strings.ToLower(o.Proto)
	switch o.Proto {
	case "", "tls":
		o.Proto = "tls"
		if o.TLS.ALPN == nil {
			o.TLS.ALPN = []string{"dot"}
		}
	case "quic":
		if o.TLS.ALPN == nil {
			o.TLS.ALPN = []string{"doq"}
		}
	default:
		return nil, fmt.Errorf("bench: handshake protocol %q: want tls or quic", o.Proto)
	}
	cfg, roots, err := clientTLS(o.TLS, host)
	if err != nil {
		return nil, err
	}
	if o.Proto == "quic" {
		if cfg, err = quicTLS(cfg, o.TLS.ALPN[0]); err != nil {
			return nil, err
		}
		cfg.NextProtos = o.TLS.ALPN
	}
	if o.Resume {
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(16)
	} else {
		cfg.SessionTicketsDisabled = true
	}
	h := &handshaker{o: o, cfg: cfg, staples: &stapleChecker{roots: roots}}
	if o.Proto == "quic" {
		if h.quic, err = newQUICHandshaker(cfg, o.Timeout); err != nil {
			return nil, err
		}
		defer h.quic.close()
	}
	if o.Query != "" {
		qs, err := packQuestions([]Question{{Name: dns.Fqdn(o.Query), Type: dns.TypeA}})
		if err != nil {
			return nil, err
		}
		h.query = &qs[0]
	}

	// One handshake before the clock starts: it fails fast on a wrong
	// target, SNI or CA with the real error, and primes the session cache.
	if err := h.prime(ctx); err != nil {
		return nil, fmt.Errorf("bench: first handshake with %s: %w", o.Target, err)
	}

	workers := make([]*hsWorker, o.Concurrency)
	stats := make([]*workerStats, o.Concurrency)
	for i := range workers {
		workers[i] = &hsWorker{}
		stats[i] = &workers[i].workerStats
	}
	cpu := startCPU(o.ServerPID)
	start := time.Now()
	end := start.Add(o.Duration)
	prog := startProgress(o.Progress, start, o.Duration, stats, "handshakes")
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.loop(ctx, w, end)
		}()
	}
	wg.Wait()
	elapsed := min(time.Since(start), o.Duration)
	if ctx.Err() != nil {
		elapsed = time.Since(start)
	}
	cpu.stop()
	prog.stop()

	res := collect(elapsed, stats)
	for _, w := range workers {
		res.Resumed += w.resumed
		res.FullHandshake += w.full
		res.StapleValid += w.stapleValid
		res.StapleInvalid += w.stapleInvalid
		res.StapleMissing += w.stapleMissing
		if res.StapleError == "" && w.stapleErr != nil {
			res.StapleError = w.stapleErr.Error()
		}
	}
	if res.FullHandshake > 0 {
		res.StapleFrac = float64(res.StapleValid) / float64(res.FullHandshake)
	}
	cpu.fill(&res, res.OK)
	version := o.TLS.Version
	if version == "" {
		version = "any"
	}
	p := Params{
		Protocol:    o.Proto,
		DurationS:   o.Duration.Seconds(),
		TLSVersion:  version,
		Resume:      o.Resume,
		Curves:      o.TLS.Curves,
		SNI:         cfg.ServerName,
		Concurrency: o.Concurrency,
		Query:       o.Query,
		ServerPID:   o.ServerPID,
	}
	return newReport("handshake", o.Target, o.Version, o.Label, start, p, res), ctx.Err()
}

type handshaker struct {
	o       HandshakeOptions
	cfg     *tls.Config
	staples *stapleChecker
	query   *wireQuery
	quic    *quicHandshaker // set for Proto "quic"
}

// hsWorker is one handshake loop's counters: owned by its goroutine, except
// the atomics in workerStats that the progress line reads.
type hsWorker struct {
	workerStats
	resumed, full                             uint64
	stapleValid, stapleInvalid, stapleMissing uint64
	stapleErr                                 error
}

func (h *handshaker) prime(ctx context.Context) error {
	if h.quic != nil {
		_, err := h.quic.handshake(ctx, h.o.Target, time.Now(), h.o.Timeout, h.query)
		return err
	}
	conn, err := h.handshake(ctx, time.Now())
	if err != nil {
		return err
	}
	defer conn.Close()
	if h.query != nil {
		if _, err := h.ask(conn, rand.New(rand.NewPCG(1, 2)), nil); err != nil {
			return err
		}
	}
	if h.o.Resume && conn.ConnectionState().Version == tls.VersionTLS13 {
		// TLS 1.3 tickets arrive after the handshake; crypto/tls reads them
		// only when the application reads, so read until a short deadline.
		conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		var b [1]byte
		conn.Read(b[:])
	}
	return nil
}

func (h *handshaker) handshake(ctx context.Context, t0 time.Time) (*tls.Conn, error) {
	d := net.Dialer{Deadline: t0.Add(h.o.Timeout)}
	raw, err := d.DialContext(ctx, "tcp", h.o.Target)
	if err != nil {
		return nil, err
	}
	if tc, ok := raw.(*net.TCPConn); ok {
		// Close with a reset: a run opens tens of thousands of connections,
		// and TIME_WAIT sockets left by orderly closes would exhaust the
		// ephemeral ports of the client (or of a loopback server) mid-run.
		tc.SetLinger(0)
		tc.SetNoDelay(true)
	}
	conn := tls.Client(raw, h.cfg)
	conn.SetDeadline(t0.Add(h.o.Timeout))
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return conn, nil
}

func (h *handshaker) loop(ctx context.Context, w *hsWorker, end time.Time) {
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	var buf []byte
	for ctx.Err() == nil {
		t0 := time.Now()
		if !t0.Before(end) {
			return
		}
		var cs tls.ConnectionState
		var err error
		if h.quic != nil {
			cs, err = h.quic.handshake(ctx, h.o.Target, t0, h.o.Timeout, h.query)
		} else {
			cs, buf, err = h.tlsOnce(ctx, t0, rng, buf)
		}
		done := time.Now()
		if done.After(end) || ctx.Err() != nil {
			// Completed outside the measurement window: not counted.
			return
		}
		if err != nil {
			w.fail(errorKind(err))
			continue
		}
		w.hist.record(done.Sub(t0))
		w.ok.Add(1)
		if cs.DidResume {
			// A resumed handshake carries no certificate and no staple (Go
			// reports the first connection's); only full ones are checked.
			w.resumed++
			continue
		}
		w.full++
		switch err := h.staples.check(cs.OCSPResponse, cs.PeerCertificates, done); {
		case err == nil:
			w.stapleValid++
		case errors.Is(err, errNoStaple):
			w.stapleMissing++
		default:
			w.stapleInvalid++
			if w.stapleErr == nil {
				w.stapleErr = err
			}
		}
	}
}

// tlsOnce does one TLS handshake (and the query, if any) on a new TCP
// connection, and closes it.
func (h *handshaker) tlsOnce(ctx context.Context, t0 time.Time, rng *rand.Rand, buf []byte) (tls.ConnectionState, []byte, error) {
	conn, err := h.handshake(ctx, t0)
	if err != nil {
		return tls.ConnectionState{}, buf, err
	}
	defer conn.Close()
	if h.query != nil {
		if buf, err = h.ask(conn, rng, buf); err != nil {
			return tls.ConnectionState{}, buf, err
		}
	}
	return conn.ConnectionState(), buf, nil
}

// ask sends one DoT query on conn and checks the answer.
func (h *handshaker) ask(conn *tls.Conn, rng *rand.Rand, buf []byte) ([]byte, error) {
	id := uint16(rng.Uint32())
	q := h.query
	buf = append(buf[:0], byte(len(q.msg)>>8), byte(len(q.msg)))
	buf = append(buf, q.msg...)
	binary.BigEndian.PutUint16(buf[2:], id)
	if _, err := conn.Write(buf); err != nil {
		return buf, err
	}
	var lb [2]byte
	if _, err := io.ReadFull(conn, lb[:]); err != nil {
		return buf, err
	}
	n := int(binary.BigEndian.Uint16(lb[:]))
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(conn, buf); err != nil {
		return buf, err
	}
	if _, kind := checkAnswer(buf, id, q); kind != "" {
		return buf, errors.New("query " + kind)
	}
	return buf, nil
}
