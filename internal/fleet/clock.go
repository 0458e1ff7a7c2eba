package fleet

import "time"

// Clock tells the time that drives ticket-key epochs. Network time-outs,
// leases and back-off use real time whatever the clock: they are about etcd,
// which runs on real time.
type Clock interface {
	Now() time.Time
	// At fires once the clock reads t or later. (A deadline rather than a
	// duration: a clock that moves between Now and the call cannot make it
	// fire late.)
	At(t time.Time) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                  { return time.Now() }
func (realClock) At(t time.Time) <-chan time.Time { return time.After(time.Until(t)) }
