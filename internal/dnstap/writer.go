package dnstap

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"time"

	dnstappb "github.com/dnstap/golang-dnstap"
	framestream "github.com/farsightsec/golang-framestream"
)

// run is one writer: connect, write until the connection fails, wait, reconnect; until
// Close.
//
// A failure streak starts with the first refused or lost connection and ends when a
// connection has served for ReopenInterval: the streak logs one Warn at its start and
// one Info at its end, whatever happens in between, and each failure in it doubles the
// wait, up to ReopenInterval.
func (l *Logger) run() {
	defer l.wg.Done()
	enc := newEncoder(l.opts.Version)
	wait := minReconnect
	failing := false
	for l.stopCtx.Err() == nil {
		conn, fw, uncut, err := l.connect()
		if err == nil {
			l.connects.Add(1)
			l.connected.Add(1)
			steady, stopSteady := l.clock.timer(l.opts.ReopenInterval)
			onSteady := func() {
				if failing {
					l.opts.Log.Info("dnstap: serving the collector again", "logger", l.opts.Name, "peer", l.opts.Address)
					failing = false
				}
				wait = minReconnect
			}
			err = l.serve(conn, fw, enc, watch(conn), steady, onSteady)
			stopSteady()
			l.connected.Add(-1)
			uncut()
			_ = conn.Close()
			if err == nil {
				return // closed
			}
			l.writeErrors.Add(1)
			if !failing {
				l.opts.Log.Warn("dnstap: lost the collector, reconnecting", "logger", l.opts.Name, "peer", l.opts.Address, "err", err)
			}
		} else {
			if l.stopCtx.Err() != nil {
				return
			}
			l.connectErrors.Add(1)
			if !failing {
				l.opts.Log.Warn("dnstap: cannot reach the collector, retrying", "logger", l.opts.Name, "peer", l.opts.Address, "err", err)
			}
		}
		failing = true
		if !l.pause(wait) {
			return
		}
		wait = min(2*wait, l.opts.ReopenInterval)
	}
}

// pause waits d, or less if the logger is closed; it reports whether to go on.
func (l *Logger) pause(d time.Duration) bool {
	c, stop := l.clock.timer(d)
	defer stop()
	select {
	case <-c:
		return true
	case <-l.stopCtx.Done():
		return false
	}
}

// connect dials the collector and makes the Frame Streams bidirectional handshake
// (READY, ACCEPT with the dnstap content type, START).
func (l *Logger) connect() (net.Conn, *framestream.Writer, func() bool, error) {
	ctx, cancel := context.WithTimeout(l.stopCtx, dialTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, l.opts.Network, l.opts.Address)
	if err != nil {
		return nil, nil, nil, err
	}
	// Close cuts a handshake or a write stuck on a collector that does not read.
	stopCut := context.AfterFunc(l.killCtx, func() { _ = conn.Close() })
	fw, err := framestream.NewWriter(conn, &framestream.WriterOptions{
		ContentTypes:  [][]byte{dnstappb.FSContentType},
		Bidirectional: true,
		Timeout:       ioTimeout,
	})
	if err != nil {
		stopCut()
		_ = conn.Close()
		return nil, nil, nil, err
	}
	return conn, fw, stopCut, nil
}

// watch reads what the collector sends after the handshake: nothing until it answers
// our STOP with FINISH, so the read ends when the collector closes the connection or
// exits. The returned channel is closed then, which tells the writer at once, before
// it writes frames into a dead connection and loses them.
func watch(conn net.Conn) <-chan struct{} {
	gone := make(chan struct{})
	_ = conn.SetReadDeadline(time.Time{}) // the handshake's read deadline
	go func() {
		defer close(gone)
		_, _ = io.Copy(io.Discard, conn)
	}()
	return gone
}

// errGone: the collector closed the connection.
var errGone = errors.New("the collector closed the connection")

// serve writes queued events to fw until a write fails or the collector goes (the error
// is returned) or the logger is closed (nil). Frames are flushed by size, count or age,
// as fstrm does. It calls onSteady once steady fires: the connection has lasted long
// enough to count as serving.
func (l *Logger) serve(conn net.Conn, fw *framestream.Writer, enc *encoder, gone <-chan struct{},
	steady <-chan time.Time, onSteady func()) error {
	var (
		frames, bytes int
		timer         = time.NewTimer(time.Hour)
		armed         bool
	)
	timer.Stop()
	defer timer.Stop()
	flush := func() error {
		if frames == 0 {
			return nil
		}
		if err := fw.Flush(); err != nil {
			return err
		}
		l.sent.Add(uint64(frames))
		frames, bytes = 0, 0
		if armed {
			timer.Stop()
			armed = false
		}
		return nil
	}
	for {
		select {
		case <-l.stopCtx.Done():
			if err := flush(); err != nil {
				return nil // closing anyway
			}
			// STOP, then the collector's FINISH and close, within closeGrace (Close
			// cuts the connection after it). The watcher reads the FINISH.
			_ = conn.SetWriteDeadline(time.Now().Add(closeGrace))
			if framestream.ControlStop.EncodeFlush(bufio.NewWriter(conn)) == nil {
				t := time.NewTimer(closeGrace)
				defer t.Stop()
				select {
				case <-gone:
				case <-t.C:
				}
			}
			return nil
		case <-gone:
			return errGone
		case <-steady:
			onSteady()
			steady = nil
		case ev := <-l.q:
			payload, err := enc.encode(&ev)
			if err != nil {
				l.dropped.Add(1) // cannot happen for the messages the engine builds
				continue
			}
			if _, err := fw.WriteFrame(payload); err != nil {
				return err
			}
			frames++
			bytes += len(payload) + 4
			if bytes >= l.opts.BufferHint || frames >= l.opts.FlushFrames {
				if err := flush(); err != nil {
					return err
				}
			} else if !armed {
				timer.Reset(l.opts.FlushTimeout)
				armed = true
			}
		case <-timer.C:
			armed = false
			if err := flush(); err != nil {
				return err
			}
		}
	}
}
