//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

// This file is dnsfront's addition to gnet v2.9.7 (see README.dnsfront.md): listening
// sockets added to and removed from the event loops of a running engine.

package gnet

import (
	"context"
	"errors"
	"net"

	"golang.org/x/sys/unix"

	errorx "github.com/panjf2000/gnet/v2/pkg/errors"
	"github.com/panjf2000/gnet/v2/pkg/queue"
	"github.com/panjf2000/gnet/v2/pkg/socket"
)

// Runner is an optional EventHandler method: OnRun is called once every event loop of the
// engine exists and runs, after OnBoot. Engine.EventLoop and Engine.AddListener may be
// called from then on.
type Runner interface {
	OnRun(eng Engine)
}

// NumEventLoops returns the number of event loops of a running engine.
func (e Engine) NumEventLoops() int {
	if e.eng == nil {
		return 0
	}
	return e.eng.eventLoops.len()
}

// EventLoop returns the event loop number i (0 ≤ i < NumEventLoops), or nil.
func (e Engine) EventLoop(i int) EventLoop {
	if e.eng == nil {
		return nil
	}
	if el := e.eng.eventLoops.index(i); el != nil {
		return el
	}
	return nil
}

// ErrNoEventLoop is returned for an event loop index out of range.
var ErrNoEventLoop = errors.New("gnet: no such event loop")

// AddListener hands fd, a bound and listening TCP socket or a bound UDP socket, to event
// loop i, which polls it from then on as it polls the listeners it opened itself: it
// accepts its TCP connections (OnOpen) or reads its datagrams (OnTraffic). The engine owns
// fd afterwards: RemoveListener or the engine's stop closes it. It returns once the loop
// polls fd.
func (e Engine) AddListener(ctx context.Context, i int, fd int) error {
	if err := e.Validate(); err != nil {
		return err
	}
	el := e.eng.eventLoops.index(i)
	if el == nil {
		return ErrNoEventLoop
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return err
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return err
	}
	ln := &listener{fd: fd}
	switch typ {
	case unix.SOCK_STREAM:
		ln.network, ln.addr = "tcp", socket.SockaddrToTCPOrUnixAddr(sa)
	case unix.SOCK_DGRAM:
		ln.network, ln.addr = "udp", socket.SockaddrToUDPAddr(sa)
	default:
		return errorx.ErrUnsupportedProtocol
	}
	if ln.addr == nil {
		return errorx.ErrUnsupportedProtocol
	}
	ln.address = ln.addr.String()
	ln.openOnce.Do(func() {}) // open: the socket is bound already
	return el.runOnLoop(ctx, func() error {
		if _, ok := el.listeners[fd]; ok {
			return errors.New("gnet: listener added twice")
		}
		if err := el.poller.AddRead(ln.packPollAttachment(el.accept), false); err != nil {
			return err
		}
		el.listeners[fd] = ln
		return nil
	})
}

// RemoveListener stops polling the listener fd on event loop i and closes it. Connections
// it accepted stay. A datagram or connection queued on the socket and not read yet is
// lost with it, unless another process holds the socket too.
func (e Engine) RemoveListener(ctx context.Context, i int, fd int) error {
	if err := e.Validate(); err != nil {
		return err
	}
	el := e.eng.eventLoops.index(i)
	if el == nil {
		return ErrNoEventLoop
	}
	return el.runOnLoop(ctx, func() error {
		ln, ok := el.listeners[fd]
		if !ok {
			return errorx.ErrInvalidNetworkAddress
		}
		delete(el.listeners, fd)
		err := el.poller.Delete(fd)
		ln.close()
		return err
	})
}

// DetachListener stops polling the listener fd on event loop i without closing it: the
// caller owns fd again (it may still send from a UDP socket, and whatever is queued on it
// stays for another process holding the socket).
func (e Engine) DetachListener(ctx context.Context, i int, fd int) error {
	if err := e.Validate(); err != nil {
		return err
	}
	el := e.eng.eventLoops.index(i)
	if el == nil {
		return ErrNoEventLoop
	}
	return el.runOnLoop(ctx, func() error {
		if _, ok := el.listeners[fd]; !ok {
			return errorx.ErrInvalidNetworkAddress
		}
		delete(el.listeners, fd)
		return el.poller.Delete(fd)
	})
}

// ListenerAddrs lists the addresses of the listeners event loop i polls.
func (e Engine) ListenerAddrs(ctx context.Context, i int) (map[int]net.Addr, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	el := e.eng.eventLoops.index(i)
	if el == nil {
		return nil, ErrNoEventLoop
	}
	out := map[int]net.Addr{}
	err := el.runOnLoop(ctx, func() error {
		for fd, ln := range el.listeners {
			out[fd] = ln.addr
		}
		return nil
	})
	return out, err
}

// runOnLoop runs f on the event loop and waits for its result. A loop that has exited
// never runs f: the engine's context, cancelled at shutdown or when a loop fails, ends the
// wait, so a caller with no deadline of its own does not wait forever.
func (el *eventloop) runOnLoop(ctx context.Context, f func() error) error {
	done := make(chan error, 1)
	err := el.poller.Trigger(queue.HighPriority, func(any) error {
		done <- f()
		return nil
	}, nil)
	if err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-el.engine.concurrency.ctx.Done():
		return errorx.ErrEngineShutdown
	}
}
