package engine

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// closingConn is a TCP backend connection whose write fails: gnet closes such a
// connection at once, calling OnClose before Write returns.
type closingConn struct {
	fakeConn
	h *handler
	s *backendSock
}

func (c *closingConn) Context() any { return c.s }

func (c *closingConn) Write([]byte) (int, error) {
	c.h.OnClose(c, nil)
	return 0, errors.New("write: broken pipe")
}

type recordingObserver struct{ sent, failed, abandoned []int }

func (r *recordingObserver) QuerySent(b int)                     { r.sent = append(r.sent, b) }
func (r *recordingObserver) ResponseReceived(int, time.Duration) {}
func (r *recordingObserver) TimedOut(int)                        {}
func (r *recordingObserver) Abandoned(b int)                     { r.abandoned = append(r.abandoned, b) }
func (r *recordingObserver) SendFailed(b int)                    { r.failed = append(r.failed, b) }

// A failed write to a TCP backend is reported against that backend, even though closing
// the connection has already answered the query and recycled its entry.
func TestSendFailedNamesTheBackend(t *testing.T) {
	tb := newTwoBackends(t)
	rec := &recordingObserver{}
	tb.l.obs = rec
	s := tb.socks[1]
	s.tcp = true
	tb.l.state.Backends[1].TCPOnly = true
	tb.l.udp[1], tb.l.tcp[1] = nil, s
	s.gc = &closingConn{h: &handler{e: tb.l.e}, s: s}

	tb.query(t, tb.fast, 7)
	if len(rec.failed) != 1 || rec.failed[0] != 1 {
		t.Fatalf("send failures reported for backends %v, want [1]", rec.failed)
	}
	if len(rec.abandoned) != 1 || rec.abandoned[0] != 1 {
		t.Fatalf("abandoned queries reported for backends %v, want [1]", rec.abandoned)
	}
	if o := tb.l.outstandingTotal.Load(); o != 0 {
		t.Fatalf("%d queries still counted outstanding", o)
	}
}

// refusingLoop is an event loop that cannot register sockets, as gnet's in shutdown or
// with its dialing pool full.
type refusingLoop struct{ fakeEventLoop }

func (refusingLoop) Register(context.Context, net.Addr) (<-chan gnet.RegisteredResult, error) {
	return nil, errors.New("engine is going to be shutdown")
}

// A backend socket that cannot even be registered answers its query SERVFAIL at once,
// and leaves no query behind on a socket that the next query replaces.
func TestUnregisteredSocketFailsFast(t *testing.T) {
	tb := newTwoBackends(t)
	tb.l.el = refusingLoop{}
	tb.l.udp[1] = nil
	tb.query(t, tb.fast, 9)
	if o := tb.l.outstandingTotal.Load(); o != 0 {
		t.Fatalf("%d queries outstanding on a socket that does not exist", o)
	}
	tb.expectServfail(t, 9)
}
