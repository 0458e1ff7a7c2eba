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
// Timing: a check is sent every Interval, measured from the start of the
// previous one. The first result a backend ever gets is applied directly
// (dnsdist does the same at startup), so a dead backend is out after one
// timeout rather than MaxFailures intervals. After that, MaxFailures
// consecutive failures take a backend down and Rise consecutive successes
// bring it back, so a single lost datagram does not flap it. Detection of a
// failure therefore takes between (MaxFailures-1)*Interval+Timeout and
// MaxFailures*Interval+Timeout.
//
// Reloads: the progress of a backend's checks (consecutive failures and
// successes, the time of the last check, whether it was ever checked) lives
// with its state, which Set.Inherit hands to the new Set. A Checker started
// on the new Set therefore goes on counting where the old one stopped, does
// not probe before an Interval has passed since the last check, and never
// applies a first result directly to a backend that was already checked: a
// reload alone never takes a backend down.
type Checker struct {
	set *Set
	log *slog.Logger
	// OnChange, if set before Start, is called on the backend's checker
	// goroutine after each state change is published.
	OnChange func(b *Backend, s Status)
	// OnCheck, if set before Start, is called on the backend's checker
	// goroutine after each check's result is applied.
	OnCheck func(b *Backend, err error)
	// Clock schedules the checks and dates Status.Since; the system clock
	// when nil. Tests inject one that moves when they say.
	Clock Clock

	mu     sync.Mutex
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Clock is the Checker's time: Now, and a timer that fires after d.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed, and a
	// function that releases the timer early.
	After(d time.Duration) (<-chan time.Time, func())
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) After(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTimer(d)
	return t.C, func() { t.Stop() }
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
	if c.Clock == nil {
		c.Clock = systemClock{}
	}
	ctx, c.cancel = context.WithCancel(ctx)
	for _, b := range c.set.Backends {
		switch b.Config.HealthCheck.Mode {
		case ModeUp, ModeDown:
			if up := b.Config.HealthCheck.Mode == ModeUp; b.Up() != up || b.Status().Reason != forcedReason(b) {
				c.publish(b, up, forcedReason(b))
			}
		default:
			c.wg.Add(1)
			go c.run(ctx, b)
		}
	}
}

func forcedReason(b *Backend) string { return "health_checks.mode " + b.Config.HealthCheck.Mode }

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

func (c *Checker) run(ctx context.Context, b *Backend) {
	defer c.wg.Done()
	interval := b.Config.HealthCheck.Interval
	for {
		// The next check is due an Interval after the last one began, be it
		// this Checker's or, across a reload, the previous one's.
		if last := b.progress().last; !last.IsZero() {
			if wait := last.Add(interval).Sub(c.Clock.Now()); wait > 0 {
				ch, release := c.Clock.After(wait)
				select {
				case <-ctx.Done():
					release()
					return
				case <-ch:
				}
			}
		}
		started := c.Clock.Now()
		err := Probe(ctx, b)
		if ctx.Err() != nil {
			return // stopped mid-probe: not the backend's fault, nothing recorded
		}
		c.record(b, err, started)
		if c.OnCheck != nil {
			c.OnCheck(b, err)
		}
	}
}

// record applies one check's result to the backend's progress and state.
func (c *Checker) record(b *Backend, err error, started time.Time) {
	hc := b.Config.HealthCheck
	p := b.progress()
	first := !p.checked
	p.checked, p.last = true, started
	up := b.Up()
	switch {
	case err == nil:
		p.fails, p.successes = 0, p.successes+1
		if !up && (first || p.successes >= hc.Rise) {
			c.publish(b, true, fmt.Sprintf("%d consecutive successful checks", p.successes))
		}
	default:
		p.successes, p.fails = 0, p.fails+1
		if up && (first || p.fails >= hc.MaxFailures) {
			c.publish(b, false, fmt.Sprintf("%d consecutive failed checks, last: %v", p.fails, err))
		} else if up {
			c.log.Debug("backend health check failed", "backend", b.Name, "address", b.Addr.String(), "failures", p.fails, "max_failures", hc.MaxFailures, "reason", err.Error())
		}
	}
	b.setProgress(p)
}

func (c *Checker) publish(b *Backend, up bool, reason string) {
	b.SetUp(up, reason, c.Clock.Now())
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
	var r *dns.Msg
	co, err := dialProbe(ctx, cl, b)
	if err == nil {
		// The exchange watches only ctx's deadline: close the socket when
		// ctx ends so that Checker.Stop does not wait out a probe in flight.
		stop := context.AfterFunc(ctx, func() { co.Close() })
		r, _, err = cl.ExchangeWithConnContext(ctx, q, co)
		stop()
		co.Close()
	}
	if err != nil {
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded),
			errors.Is(err, net.ErrClosed) && errors.Is(ctx.Err(), context.DeadlineExceeded): // closed at the deadline
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
