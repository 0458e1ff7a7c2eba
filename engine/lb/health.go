package lb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Checker runs each backend's health checks on its own goroutine, off the
// event loops, and publishes the results through the backends' atomic state.
//
// Timing: a check is sent every Interval, the first one at Start. The first
// result is applied directly (dnsdist does the same at startup), so a dead
// backend is out after one timeout rather than MaxFailures intervals. After
// that, MaxFailures consecutive failures take a backend down and Rise
// consecutive successes bring it back, so a single lost datagram does not
// flap it. Detection of a failure therefore takes between
// (MaxFailures-1)*Interval+Timeout and MaxFailures*Interval+Timeout.
type Checker struct {
	set *Set
	log *slog.Logger
	// OnChange, if set before Start, is called on the backend's checker
	// goroutine after each state change is published.
	OnChange func(b *Backend, s Status)
	// Now is the clock used for Status.Since; time.Now when nil.
	Now func() time.Time

	mu     sync.Mutex
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewChecker returns a checker for every backend of set. A nil logger
// discards.
func NewChecker(set *Set, log *slog.Logger) *Checker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Checker{set: set, log: log}
}

// Start launches the checks. Modes up and down are applied at once without a
// goroutine. It returns immediately; Stop, or ctx's end, stops the checks.
func (c *Checker) Start(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil {
		return
	}
	ctx, c.cancel = context.WithCancel(ctx)
	for _, b := range c.set.Backends {
		switch b.Config.HealthCheck.Mode {
		case ModeUp, ModeDown:
			c.publish(b, b.Config.HealthCheck.Mode == ModeUp, "health_checks.mode "+b.Config.HealthCheck.Mode)
		default:
			c.wg.Add(1)
			go c.run(ctx, b)
		}
	}
}

// Stop stops every check and waits for the goroutines to return.
func (c *Checker) Stop() {
	c.mu.Lock()
	cancel := c.cancel
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	c.wg.Wait()
}

func (c *Checker) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Checker) run(ctx context.Context, b *Backend) {
	defer c.wg.Done()
	hc := b.Config.HealthCheck
	t := time.NewTicker(hc.Interval)
	defer t.Stop()
	first := true
	fails, successes := 0, 0
	for {
		err := Probe(ctx, b)
		if ctx.Err() != nil {
			return
		}
		up := b.Up()
		switch {
		case err == nil:
			fails, successes = 0, successes+1
			if !up && (first || successes >= hc.Rise) {
				c.publish(b, true, fmt.Sprintf("%d consecutive successful checks", successes))
			}
		default:
			successes, fails = 0, fails+1
			if up && (first || fails >= hc.MaxFailures) {
				c.publish(b, false, fmt.Sprintf("%d consecutive failed checks, last: %v", fails, err))
			} else if up {
				c.log.Debug("backend health check failed", "backend", b.Name, "address", b.Addr.String(), "failures", fails, "max_failures", hc.MaxFailures, "reason", err.Error())
			}
		}
		first = false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Checker) publish(b *Backend, up bool, reason string) {
	b.SetUp(up, reason, c.now())
	state := "down"
	level := slog.LevelWarn
	if up {
		state, level = "up", slog.LevelInfo
	}
	c.log.Log(context.Background(), level, "backend state changed", "backend", b.Name, "address", b.Addr.String(), "state", state, "reason", reason)
	if c.OnChange != nil {
		c.OnChange(b, b.Status())
	}
}

// ErrCheckFailed wraps every reason a health-check answer is not acceptable.
var ErrCheckFailed = errors.New("health check failed")

// Probe sends one health-check query to b as configured and returns why the
// answer is unacceptable, or nil. It blocks for up to the check's timeout:
// never call it on an event loop.
func Probe(ctx context.Context, b *Backend) error {
	hc := b.Config.HealthCheck
	q := new(dns.Msg)
	q.SetQuestion(hc.QName, hc.QType)
	q.Question[0].Qclass = hc.QClass
	q.RecursionDesired = true
	network := "udp"
	if hc.UseTCP {
		network = "tcp"
	}
	cl := &dns.Client{Net: network, Timeout: hc.Timeout}
	ctx, cancel := context.WithTimeout(ctx, hc.Timeout)
	defer cancel()
	r, _, err := cl.ExchangeContext(ctx, q, b.Addr.String())
	if err != nil {
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
			return fmt.Errorf("%w: timeout after %v over %s", ErrCheckFailed, hc.Timeout, network)
		case errors.Is(err, dns.ErrId):
			return fmt.Errorf("%w: answer ID does not match the query's", ErrCheckFailed)
		}
		return fmt.Errorf("%w: %s: %v", ErrCheckFailed, network, err)
	}
	if len(r.Question) != 1 || !dns.IsFqdn(r.Question[0].Name) ||
		!equalFold(r.Question[0].Name, hc.QName) || r.Question[0].Qtype != hc.QType || r.Question[0].Qclass != hc.QClass {
		return fmt.Errorf("%w: answer is for another question", ErrCheckFailed)
	}
	switch {
	case r.Rcode == dns.RcodeServerFailure:
		return fmt.Errorf("%w: rcode SERVFAIL", ErrCheckFailed)
	case hc.MustResolve && (r.Rcode == dns.RcodeNameError || r.Rcode == dns.RcodeRefused):
		return fmt.Errorf("%w: rcode %s with must_resolve", ErrCheckFailed, dns.RcodeToString[r.Rcode])
	}
	return nil
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
