package engine

import (
	"context"
	"net/netip"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// delayQueue holds the UDP answers that a Delay rule holds back. A loop never sleeps: the
// answers wait here, and one timer per loop hands the loop a sweep (Execute) at the
// earliest deadline. Only UDP answers are delayed, as in dnsdist: a stream's answers go
// out in one write per pass, and holding one back would hold the others behind it.
type delayQueue struct {
	entries []delayed
	free    [][]byte
	timer   *time.Timer
	armed   int64 // Engine.mono of the timer's deadline; 0: not armed
	fire    gnet.RunnableFunc
}

type delayed struct {
	due  int64 // Engine.mono
	fd   int
	peer netip.AddrPort
	msg  []byte
}

// maxDelayed bounds the answers a loop holds: past it, answers go out at once rather than
// let a flood that matches a Delay rule grow the queue without bound.
const maxDelayed = 10000

// delayDatagram queues a copy of m for p's client; it reports false when the queue is full.
func (l *loop) delayDatagram(p *pending, m []byte) bool {
	dq := &l.pol.delay
	if len(dq.entries) >= maxDelayed {
		return false
	}
	var buf []byte
	if n := len(dq.free); n > 0 {
		buf, dq.free = dq.free[n-1][:0], dq.free[:n-1]
	}
	due := l.e.mono(time.Now().Add(p.pol.delay))
	dq.entries = append(dq.entries, delayed{due: due, fd: p.udpFD, peer: p.peer, msg: append(buf, m...)})
	l.armDelay(due)
	return true
}

// armDelay makes the loop's timer fire no later than due.
func (l *loop) armDelay(due int64) {
	dq := &l.pol.delay
	if dq.armed != 0 && dq.armed <= due {
		return
	}
	dq.armed = due
	d := time.Duration(due - l.e.mono(time.Now()))
	if dq.timer == nil {
		dq.fire = func(context.Context) error {
			l.sendDelayed()
			return nil
		}
		dq.timer = time.AfterFunc(d, func() { _ = l.el.Execute(context.Background(), dq.fire) })
		return
	}
	dq.timer.Reset(d)
}

// sendDelayed runs on the loop: it sends the answers whose time has come and re-arms the
// timer for the next one.
func (l *loop) sendDelayed() {
	outer := l.begin()
	defer l.end(outer)
	dq := &l.pol.delay
	dq.armed = 0
	now := l.e.mono(time.Now())
	var next int64
	keep := dq.entries[:0]
	for _, d := range dq.entries {
		if d.due > now {
			keep = append(keep, d)
			if next == 0 || d.due < next {
				next = d.due
			}
			continue
		}
		l.queueDatagram(d.fd, d.msg, d.peer, nil, -1)
		dq.free = append(dq.free, d.msg)
	}
	clear(dq.entries[len(keep):])
	dq.entries = keep
	if next != 0 {
		l.armDelay(next)
	}
}
