package ocsp

import (
	"math/rand/v2"
	"time"
)

// Defaults of the refresh knobs (Options).
const (
	// DefaultMinRefreshDelay is the shortest time between two requests for
	// one certificate, and the first retry delay. A responder handing out
	// very short windows, or a staple loaded past its midpoint, must not
	// turn into a request loop; one minute still retries a transient
	// failure quickly.
	DefaultMinRefreshDelay = time.Minute
	// DefaultMaxRefreshDelay bounds the wait between successful refreshes.
	// Public CAs sign week-long responses; refreshing at the midpoint alone
	// would learn of a revocation up to three and a half days late. A day
	// costs one small request per certificate and keeps that lag short.
	DefaultMaxRefreshDelay = 24 * time.Hour
	// DefaultBackoffCap caps the exponential back-off after failures: an
	// hour keeps a long responder outage cheap for both sides while still
	// trying many times within a typical week-long window.
	DefaultBackoffCap = time.Hour
	// DefaultRequestTimeout: responders answer in well under a second; ten
	// seconds rides out a slow one without letting a hung connection stall
	// the certificate's refresh cycle.
	DefaultRequestTimeout = 10 * time.Second
	// DefaultMaxResponseSize: a response is a few hundred bytes, a few
	// kilobytes with an embedded responder chain. 64 KiB is generous and
	// still stops a misbehaving server from feeding us megabytes.
	DefaultMaxResponseSize = 64 << 10
	// DefaultGenerateValidity is the window of responses minted by the
	// generate source when GenerateSpec.Validity is zero.
	DefaultGenerateValidity = 24 * time.Hour
)

// maxEndMargin: the last stretch of a staple's life is kept for retries.
// A refresh scheduled later than end-margin would leave a failed attempt no
// time to try again before the staple must be dropped.
const maxEndMargin = time.Hour

// refreshAt returns when to replace staple s with a newer response, or the
// zero time when there is no point (the certificate has expired). minDelay
// is MinRefreshDelay after an attempt, 0 at Set: a staple loaded at start or
// reload that is already past its refresh point is refreshed at once.
func (m *Manager) refreshAt(now time.Time, s *Staple, notAfter time.Time, minDelay time.Duration) time.Time {
	// The staple is useless after the certificate expires and the client
	// ignores it after nextUpdate: plan by whichever comes first.
	end := s.Expiry()
	if notAfter.Before(end) {
		end = notAfter
	}
	if !now.Before(notAfter) {
		return time.Time{}
	}
	window := end.Sub(s.ThisUpdate)
	if window < 0 {
		window = 0
	}
	// Halfway through the window: the responder has had time to publish a
	// newer response (CAs sign ahead, often at the midpoint), and the other
	// half is left for retries if the responder is down. The jitter (up to a
	// tenth of the window) spreads the requests of a fleet of servers that
	// all received the same response at the same time.
	t := s.ThisUpdate.Add(window/2 + jitter(window/10))
	// Never wait longer than MaxRefreshDelay (see DefaultMaxRefreshDelay),
	// again with jitter so servers started together drift apart.
	if max := now.Add(m.opts.MaxRefreshDelay); t.After(max) {
		t = max.Add(-jitter(m.opts.MaxRefreshDelay / 10))
	}
	// Never later than the end minus a margin (a quarter of the window, at
	// most an hour): the margin is the time retries have before the staple
	// must stop being served.
	margin := window / 4
	if margin > maxEndMargin {
		margin = maxEndMargin
	}
	if latest := end.Add(-margin); t.After(latest) {
		t = latest
	}
	// But never sooner than MinRefreshDelay after an attempt: see
	// DefaultMinRefreshDelay.
	if min := now.Add(minDelay); t.Before(min) {
		t = min
	}
	return t
}

// retryAt returns when to try again after the failures-th consecutive
// failure; cur is the staple still served, if any.
func (m *Manager) retryAt(now time.Time, failures int, cur *Staple) time.Time {
	// Exponential back-off from MinRefreshDelay, doubling per failure and
	// capped at BackoffCap: a responder that is down is not hammered, and one
	// that comes back is noticed within the cap.
	d := m.opts.MinRefreshDelay
	for i := 1; i < failures && d < m.opts.BackoffCap; i++ {
		d *= 2
	}
	if d > m.opts.BackoffCap {
		d = m.opts.BackoffCap
	}
	// Keep half the delay and randomise the other half: servers that failed
	// together (a responder outage) must not retry together.
	d = d/2 + jitter(d/2)
	t := now.Add(d)
	// A staple still being served gets one more attempt just before it must
	// be dropped, even if the back-off would wait past that point.
	if cur != nil {
		if last := cur.Expiry().Add(-m.opts.MinRefreshDelay); t.After(last) && last.After(now) {
			t = last
		}
	}
	if min := now.Add(m.opts.MinRefreshDelay / 2); t.Before(min) {
		t = min
	}
	return t
}

func jitter(span time.Duration) time.Duration {
	if span <= 0 {
		return 0
	}
	return rand.N(span)
}
