package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// QueryOptions configure a query load: Connections warm connections (UDP
// sockets for udp), each keeping Inflight queries outstanding, for Duration.
type QueryOptions struct {
	Target      string // host:port
	Proto       string // "udp", "tcp", "dot", "doh", "doq" or "doh3"
	Connections int
	Inflight    int
	Duration    time.Duration
	Timeout     time.Duration // an unanswered query counts as lost after this; 0: 2 s
	Questions   []Question    // asked in turn; nil: DefaultQuestions
	TLS         TLSOptions    // dot, doh, doq and doh3
	Path        string        // doh and doh3: the URL path; "": /dns-query
	RunInfo
}

// queryWorker is one unit of load: a pipelined connection, or one DoH
// stream loop. rcodes belongs to the goroutine that reads answers.
type queryWorker struct {
	workerStats
	rcodes map[string]uint64
}

func (w *queryWorker) answered(rcode string) {
	if w.rcodes == nil {
		w.rcodes = make(map[string]uint64)
	}
	w.rcodes[rcode]++
}

// loadConn is a warm connection ready to be driven.
type loadConn interface {
	// run drives the connection until ctx is done; answers received after
	// end are not counted.
	run(ctx context.Context, end time.Time)
	// stop unblocks run by closing the connection.
	stop()
	workers() []*queryWorker
}

// RunQuery runs a query load against o.Target and returns its report. It
// returns an error only when the run cannot start: bad options, a
// connection or a first query that fails. Failures during the run are
// counted in the report.
func RunQuery(ctx context.Context, o QueryOptions) (*Report, error) {
	if o.Connections <= 0 {
		o.Connections = 1
	}
	if o.Inflight <= 0 {
		o.Inflight = 1
	}
	if o.Inflight > 4096 {
		return nil, fmt.Errorf("bench: inflight %d: at most 4096 per connection (DNS IDs are 16 bits)", o.Inflight)
	}
	if o.Duration <= 0 {
		return nil, errors.New("bench: duration must be positive")
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Questions == nil {
		o.Questions = DefaultQuestions()
	}
	if o.Path == "" {
		o.Path = "/dns-query"
	}
	o.Proto = strings.ToLower(o.Proto)
	qs, err := packQuestions(o.Questions)
	if err != nil {
		return nil, err
	}
	host, _, err := net.SplitHostPort(o.Target)
	if err != nil {
		return nil, fmt.Errorf("bench: target %q: %w", o.Target, err)
	}

	var dial func(i int) (loadConn, error)
	switch o.Proto {
	case "udp", "tcp":
		dial = func(int) (loadConn, error) { return dialPipe(ctx, o, nil, qs) }
	case "dot":
		if o.TLS.ALPN == nil {
			o.TLS.ALPN = []string{"dot"}
		}
		cfg, _, err := clientTLS(o.TLS, host)
		if err != nil {
			return nil, err
		}
		dial = func(int) (loadConn, error) { return dialPipe(ctx, o, cfg, qs) }
	case "doh":
		o.TLS.ALPN = []string{"h2"}
		cfg, _, err := clientTLS(o.TLS, host)
		if err != nil {
			return nil, err
		}
		dial = func(int) (loadConn, error) { return dialDoH(ctx, o, cfg, qs) }
	case "doq", "doh3":
		alpn := "doq"
		if o.Proto == "doh3" {
			alpn = "h3"
		}
		cfg, _, err := clientTLS(o.TLS, host)
		if err != nil {
			return nil, err
		}
		if cfg, err = quicTLS(cfg, alpn); err != nil {
			return nil, err
		}
		if o.Proto == "doq" {
			dial = func(int) (loadConn, error) { return dialDoQ(ctx, o, cfg, qs) }
		} else {
			dial = func(int) (loadConn, error) { return dialDoH3(ctx, o, cfg, qs) }
		}
	default:
		return nil, fmt.Errorf("bench: protocol %q: want udp, tcp, dot, doh, doq or doh3", o.Proto)
	}

	conns := make([]loadConn, 0, o.Connections)
	defer func() {
		for _, c := range conns {
			c.stop()
		}
	}()
	for i := range o.Connections {
		c, err := dial(i)
		if err != nil {
			return nil, fmt.Errorf("bench: %s connection %d to %s: %w", o.Proto, i+1, o.Target, err)
		}
		conns = append(conns, c)
	}
	var stats []*workerStats
	var workers []*queryWorker
	for _, c := range conns {
		for _, w := range c.workers() {
			workers = append(workers, w)
			stats = append(stats, &w.workerStats)
		}
	}

	cpu := startCPU(o.ServerPID)
	start := time.Now()
	end := start.Add(o.Duration)
	runCtx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	prog := startProgress(o.Progress, start, o.Duration, stats, "queries")
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.run(runCtx, end)
		}()
	}
	<-runCtx.Done()
	elapsed := min(time.Since(start), o.Duration)
	cpu.stop()
	for _, c := range conns {
		c.stop()
	}
	wg.Wait()
	prog.stop()

	res := collect(elapsed, stats)
	for _, w := range workers {
		for k, v := range w.rcodes {
			if res.Rcodes == nil {
				res.Rcodes = make(map[string]uint64)
			}
			res.Rcodes[k] += v
		}
	}
	cpu.fill(&res, res.OK)
	p := Params{
		Protocol:    o.Proto,
		DurationS:   o.Duration.Seconds(),
		Connections: o.Connections,
		Inflight:    o.Inflight,
		Names:       len(o.Questions),
		ServerPID:   o.ServerPID,
	}
	if o.Proto == "dot" || o.Proto == "doh" || o.Proto == "doq" || o.Proto == "doh3" {
		p.TLSVersion = o.TLS.Version
		p.SNI = o.TLS.SNI
		p.Curves = o.TLS.Curves
	}
	if o.Proto == "doh" || o.Proto == "doh3" {
		p.Path = o.Path
	}
	return newReport("query", o.Target, o.Version, o.Label, start, p, res), ctx.Err()
}
