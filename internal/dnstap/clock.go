package dnstap

import "time"

// clock makes the writers' back-off timers: the pause between connection attempts and
// the wait after which a connection counts as serving. Tests replace it to step
// through the back-off without waiting for it.
type clock interface {
	// timer returns a channel that receives once d has passed, and a function that
	// stops it.
	timer(d time.Duration) (<-chan time.Time, func())
}

type realClock struct{}

func (realClock) timer(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTimer(d)
	return t.C, func() { t.Stop() }
}
