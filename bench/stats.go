package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// workerStats is what one worker (a handshake loop, a query connection)
// counts. The histogram belongs to the goroutine that completes operations;
// ok and errs are atomics because the progress line reads them while the run
// goes on; the error kinds are behind a mutex since errors are rare and may
// come from a sweeper goroutine too.
type workerStats struct {
	hist histogram
	ok   atomic.Uint64
	errs atomic.Uint64
	sent uint64 // queries sent: owned by the one goroutine that sends

	mu    sync.Mutex
	kinds map[string]uint64
}

func (s *workerStats) fail(kind string) {
	s.errs.Add(1)
	s.mu.Lock()
	if s.kinds == nil {
		s.kinds = make(map[string]uint64)
	}
	s.kinds[kind]++
	s.mu.Unlock()
}

// RunInfo is what every load takes besides the load itself: how to report
// progress, and what the report records about the run.
type RunInfo struct {
	ServerPID int       // if > 0, measure this process's CPU time per operation (Linux /proc)
	Progress  io.Writer // if set, a progress line is drawn on it
	Version   string    // tool version recorded in the report
	Label     string    // name of the run in tables and charts
}

// collect merges the workers' figures once they have all stopped, over a
// measurement window of elapsed.
func collect(elapsed time.Duration, workers []*workerStats) Results {
	r := Results{ElapsedS: elapsed.Seconds()}
	var h histogram
	for _, w := range workers {
		h.merge(&w.hist)
		r.OK += w.ok.Load()
		r.Errors += w.errs.Load()
		r.Sent += w.sent
		for k, v := range w.kinds {
			if r.ErrorsByKind == nil {
				r.ErrorsByKind = make(map[string]uint64)
			}
			r.ErrorsByKind[k] += v
		}
	}
	r.Latency = h.summary()
	if elapsed > 0 {
		r.Rate = float64(r.OK) / elapsed.Seconds()
	}
	return r
}

// errorKind reduces an error to a short, bounded label: errors are counted
// by kind, and a label that carried addresses or ports would make every
// error its own kind.
func errorKind(err error) string {
	var alert tls.AlertError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verifyErr *tls.CertificateVerificationError
	var opErr *net.OpError
	switch {
	case err == nil:
		return ""
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no local port (EADDRNOTAVAIL)"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too many open files"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.As(err, &alert):
		return "tls alert: " + alert.Error()
	case errors.As(err, &unknownAuth), errors.As(err, &hostErr), errors.As(err, &invalid), errors.As(err, &verifyErr):
		return "certificate verify"
	case errors.As(err, &opErr):
		return opErr.Op + ": " + errorKind(opErr.Err)
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && i+2 < len(s) {
		s = s[i+2:]
	}
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}
