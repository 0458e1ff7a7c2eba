package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ConnsOptions configure a connection ramp: Count connections opened as
// fast as Concurrency dialers allow, each answering one query so that the
// server has set it up fully, then held idle for Settle while the server's
// resident memory is sampled.
//
// Memory is judged the way an operator sizes a machine: by the server
// process's resident set (VmRSS), at the peak of the ramp and again once it
// has settled, never by the Go heap alone.
type ConnsOptions struct {
	Target      string // host:port
	Proto       string // "tcp", "dot" or "doh"
	Count       int
	Concurrency int
	Settle      time.Duration // how long connections stay idle after the ramp
	Timeout     time.Duration // per connection: dial, handshake and first answer; 0: 10 s
	Query       string        // the name asked on each connection; "": the first default question
	TLS         TLSOptions
	Path        string // doh: the URL path; "": /dns-query
	RunInfo
}

// ConnsResults are a ramp's memory readings, in bytes.
type ConnsResults struct {
	RSSBefore      uint64  `json:"rss_before"`
	RSSPeak        uint64  `json:"rss_peak"`   // the highest VmRSS sampled from the ramp's start to the end of Settle
	RSSSteady      uint64  `json:"rss_steady"` // VmRSS at the end of Settle
	PeakPerConn    float64 `json:"peak_per_conn"`
	SteadyPerConn  float64 `json:"steady_per_conn"`
	Open           int     `json:"open"` // connections still open at the end of Settle
	RampS          float64 `json:"ramp_s"`
	SettleS        float64 `json:"settle_s"`
	SampleInterval float64 `json:"sample_interval_s"`
}

// idleConn is one open connection of the ramp.
type idleConn struct {
	raw net.Conn
	cc  *http.ClientConn
}

// RunConns opens o.Count connections to o.Target and reports the server's
// resident memory per connection at the peak and at steady state. It needs
// the server's PID. It returns an error when the run cannot start or when
// fewer than all connections could be opened: a partial ramp would
// understate the per-connection cost.
func RunConns(ctx context.Context, o ConnsOptions) (*Report, error) {
	if o.ServerPID <= 0 {
		return nil, errors.New("bench: conns needs --server-pid: memory is read from the server's /proc/PID/status")
	}
	if o.Count <= 0 {
		return nil, errors.New("bench: count must be positive")
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 64
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Path == "" {
		o.Path = "/dns-query"
	}
	o.Proto = strings.ToLower(o.Proto)
	q := DefaultQuestions()[0]
	if o.Query != "" {
		q = Question{Name: o.Query, Type: q.Type}
	}
	qs, err := packQuestions([]Question{q})
	if err != nil {
		return nil, err
	}
	raiseNoFile(uint64(o.Count) + 1024)

	host, _, err := net.SplitHostPort(o.Target)
	if err != nil {
		return nil, fmt.Errorf("bench: target %q: %w", o.Target, err)
	}
	var cfg *tls.Config
	switch o.Proto {
	case "tcp":
	case "dot", "doh":
		if o.TLS.ALPN == nil {
			o.TLS.ALPN = []string{map[string]string{"dot": "dot", "doh": "h2"}[o.Proto]}
		}
		if cfg, _, err = clientTLS(o.TLS, host); err != nil {
			return nil, err
		}
		cfg.SessionTicketsDisabled = true
	default:
		return nil, fmt.Errorf("bench: conns: protocol %q: want tcp, dot or doh", o.Proto)
	}

	before, err := ProcRSS(o.ServerPID)
	if err != nil {
		return nil, err
	}
	started := time.Now()
	sampler := startRSSSampler(o.ServerPID, 100*time.Millisecond)

	conns := make([]idleConn, o.Count)
	var (
		next   = make(chan int)
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed error
		nfail  int
	)
	for range o.Concurrency {
		wg.Go(func() {
			for i := range next {
				c, err := openIdle(ctx, o, cfg, &qs[0], uint16(i))
				if err != nil {
					mu.Lock()
					nfail++
					if failed == nil {
						failed = fmt.Errorf("connection %d: %w", i, err)
					}
					mu.Unlock()
					continue
				}
				conns[i] = c
			}
		})
	}
	for i := range o.Count {
		select {
		case next <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(next)
	wg.Wait()
	ramp := time.Since(started)
	defer func() {
		for _, c := range conns {
			c.close()
		}
	}()
	if failed != nil {
		sampler.stop()
		return nil, fmt.Errorf("bench: %d of %d connections failed; first: %w", nfail, o.Count, failed)
	}
	if err := ctx.Err(); err != nil {
		sampler.stop()
		return nil, err
	}

	settle := time.NewTimer(o.Settle)
	select {
	case <-settle.C:
	case <-ctx.Done():
		settle.Stop()
	}
	peak, last, serr := sampler.stop()
	if serr != nil {
		return nil, serr
	}
	open := 0
	for _, c := range conns {
		if c.alive() {
			open++
		}
	}
	res := ConnsResults{
		RSSBefore:      before,
		RSSPeak:        peak,
		RSSSteady:      last,
		PeakPerConn:    perConn(peak, before, o.Count),
		SteadyPerConn:  perConn(last, before, o.Count),
		Open:           open,
		RampS:          ramp.Seconds(),
		SettleS:        time.Since(started).Seconds() - ramp.Seconds(),
		SampleInterval: 0.1,
	}
	r := newReport("conns", o.Target, o.Version, o.Label, started,
		Params{Protocol: o.Proto, Connections: o.Count, Concurrency: o.Concurrency, ServerPID: o.ServerPID, SNI: cfgSNI(cfg), Path: o.Path},
		Results{ElapsedS: time.Since(started).Seconds(), OK: uint64(open), Errors: uint64(o.Count - open), Memory: &res})
	return r, nil
}

func cfgSNI(cfg *tls.Config) string {
	if cfg == nil {
		return ""
	}
	return cfg.ServerName
}

func perConn(rss, before uint64, n int) float64 {
	if rss < before {
		return 0
	}
	return float64(rss-before) / float64(n)
}

// openIdle opens one connection, asks one query on it and checks the answer,
// then leaves it open.
func openIdle(ctx context.Context, o ConnsOptions, cfg *tls.Config, q *wireQuery, id uint16) (idleConn, error) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	d := net.Dialer{}
	raw, err := d.DialContext(ctx, "tcp", o.Target)
	if err != nil {
		return idleConn{}, err
	}
	deadline, _ := ctx.Deadline()
	raw.SetDeadline(deadline)
	c := idleConn{raw: raw}
	var rw io.ReadWriter = raw
	if cfg != nil {
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return idleConn{}, err
		}
		rw = tc
	}
	if o.Proto == "doh" {
		if err := c.askDoH(ctx, rw.(*tls.Conn), o, cfg, q); err != nil {
			raw.Close()
			return idleConn{}, err
		}
	} else if err := askStream(rw, q, id); err != nil {
		raw.Close()
		return idleConn{}, err
	}
	raw.SetDeadline(time.Time{})
	return c, nil
}

// askStream sends one length-prefixed query and checks its answer.
func askStream(rw io.ReadWriter, q *wireQuery, id uint16) error {
	msg := make([]byte, 2+len(q.msg))
	binary.BigEndian.PutUint16(msg, uint16(len(q.msg)))
	copy(msg[2:], q.msg)
	binary.BigEndian.PutUint16(msg[2:], id)
	if _, err := rw.Write(msg); err != nil {
		return err
	}
	var l [2]byte
	if _, err := io.ReadFull(rw, l[:]); err != nil {
		return err
	}
	resp := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(rw, resp); err != nil {
		return err
	}
	if rcode, kind := checkAnswer(resp, id, q); kind != "" {
		return fmt.Errorf("answer %s (%s)", kind, rcode)
	}
	return nil
}

func (c *idleConn) askDoH(ctx context.Context, tc *tls.Conn, o ConnsOptions, cfg *tls.Config, q *wireQuery) error {
	cc, err := h2ClientConn(ctx, tc, o.Target)
	if err != nil {
		return err
	}
	c.cc = cc
	_, port, _ := net.SplitHostPort(o.Target)
	u := url.URL{Scheme: "https", Host: net.JoinHostPort(cfg.ServerName, port), Path: o.Path}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(q.msg))
	if err != nil {
		return err
	}
	req.Header.Set("content-type", "application/dns-message")
	req.Header.Set("accept", "application/dns-message")
	resp, err := cc.RoundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 65536))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP status %d", resp.StatusCode)
	}
	if rcode, kind := checkAnswer(body, binary.BigEndian.Uint16(q.msg), q); kind != "" {
		return fmt.Errorf("answer %s (%s)", kind, rcode)
	}
	return nil
}

func (c idleConn) close() {
	if c.cc != nil {
		c.cc.Close()
	}
	if c.raw != nil {
		c.raw.Close()
	}
}

// alive reports whether the server still holds the connection open: a read
// with a deadline in the past returns a timeout for an open connection and
// EOF or a reset for one the server closed.
func (c idleConn) alive() bool {
	if c.raw == nil {
		return false
	}
	if c.cc != nil {
		return c.cc.Err() == nil
	}
	c.raw.SetReadDeadline(time.Now().Add(-time.Second))
	var b [1]byte
	_, err := c.raw.Read(b[:])
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// ProcRSS returns the resident set size of process pid in bytes (VmRSS in
// /proc/PID/status).
func ProcRSS(pid int) (uint64, error) {
	path := fmt.Sprintf("/proc/%d/status", pid)
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("bench: server memory: %w", err)
	}
	defer f.Close()
	return parseVmRSS(path, f)
}

func parseVmRSS(path string, r io.Reader) (uint64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bench: %s: VmRSS %q: %w", path, v, err)
		}
		return kb * 1024, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("bench: %s: %w", path, err)
	}
	return 0, fmt.Errorf("bench: %s: no VmRSS line", path)
}

// rssSampler reads a process's VmRSS at a fixed interval and keeps the
// highest reading and the last.
type rssSampler struct {
	done       chan struct{}
	finished   chan struct{}
	peak, last uint64
	err        error
}

func startRSSSampler(pid int, every time.Duration) *rssSampler {
	s := &rssSampler{done: make(chan struct{}), finished: make(chan struct{})}
	go func() {
		defer close(s.finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			v, err := ProcRSS(pid)
			if err != nil {
				s.err = err
				return
			}
			s.last = v
			s.peak = max(s.peak, v)
			select {
			case <-s.done:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// stop ends the sampling after one last reading and returns the peak and
// the last reading.
func (s *rssSampler) stop() (peak, last uint64, err error) {
	close(s.done)
	<-s.finished
	return s.peak, s.last, s.err
}

// raiseNoFile lifts this process's open-file limit towards n, within the hard limit.
func raiseNoFile(n uint64) {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) != nil || l.Cur >= n {
		return
	}
	l.Cur = min(n, l.Max)
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
}
