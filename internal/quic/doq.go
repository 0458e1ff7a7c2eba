package quic

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"time"

	"github.com/dnsfront/dnsfront/engine"
	"github.com/dnsfront/dnsfront/internal/dnswire"
	"github.com/miekg/dns"
	quicgo "github.com/quic-go/quic-go"
)

// serveDoQ accepts the streams of one DoQ connection (RFC 9250): each carries one query
// with a 2-byte length prefix and the client's FIN, and gets one answer and our FIN. The
// number of open streams is QUIC's MAX_STREAMS (Options.MaxStreams), so the goroutines per
// connection are bounded. When ctx ends (graceful close) no new stream is taken; the
// connection closes with DOQ_NO_ERROR once the streams in flight are answered.
func (l *Listener) serveDoQ(ctx context.Context, c *conn) {
	for {
		str, err := c.qc.AcceptStream(ctx)
		if err != nil {
			break
		}
		c.streams.Add(1)
		go func() {
			defer c.streams.Done()
			l.doqStream(c, str)
		}()
	}
	c.streams.Wait()
	_ = c.qc.CloseWithError(DoQNoError, "")
}

// doqError is a failure of one stream: the code it is reset with, and whether the whole
// connection goes (RFC 9250 section 4.3.3 makes protocol errors fatal to the connection).
type doqError struct {
	code  uint64
	fatal bool
	why   string
}

func (l *Listener) doqStream(c *conn, str *quicgo.Stream) {
	msg, derr := l.readQuery(str)
	if derr != nil {
		l.failStream(c, str, derr)
		return
	}
	type result struct {
		answer []byte
		o      engine.Outcome
	}
	res := make(chan result, 1)
	// The callback runs on the event loop: it copies the answer and returns.
	err := c.client.Query(msg, func(answer []byte, o engine.Outcome) {
		res <- result{append([]byte(nil), answer...), o}
	})
	if err != nil {
		l.failStream(c, str, &doqError{code: DoQRequestCancelled, why: "server stopping"})
		return
	}
	var r result
	select {
	case r = <-res:
	case <-c.qc.Context().Done():
		// The connection is gone; the loop still answers the query (and drops it).
		return
	}
	switch r.o {
	case engine.Answered, engine.NoBackend, engine.TimedOut:
		// A SERVFAIL is an answer: DoQ has no status of its own for a backend failure.
	case engine.Malformed:
		l.failStream(c, str, &doqError{code: DoQProtocolError, fatal: true, why: "not a DNS query"})
		return
	default:
		l.failStream(c, str, &doqError{code: DoQRequestCancelled, why: "query dropped"})
		return
	}
	out := make([]byte, 2, 2+len(r.answer))
	binary.BigEndian.PutUint16(out, uint16(len(r.answer)))
	out = append(out, r.answer...)
	// Writes are bounded by the idle timeout: a client that stops reading lets the
	// connection go idle from our side too.
	_ = str.SetWriteDeadline(time.Now().Add(l.opts.IdleTimeout))
	if _, err := str.Write(out); err != nil {
		str.CancelWrite(quicgo.StreamErrorCode(DoQInternalError))
		return
	}
	_ = str.Close() // FIN after the one answer
}

// readQuery reads the one query of a stream and its FIN, within StreamTimeout. The RFC
// lets a server wait for the FIN before processing (section 4.2); waiting makes "more than
// one query on a stream" a protocol error we see, rather than data we ignore.
func (l *Listener) readQuery(str *quicgo.Stream) ([]byte, *doqError) {
	_ = str.SetReadDeadline(time.Now().Add(l.opts.StreamTimeout))
	var hdr [2]byte
	if _, err := io.ReadFull(str, hdr[:]); err != nil {
		return nil, readError(err, "stream ended inside the length prefix")
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n < 12 {
		return nil, &doqError{code: DoQProtocolError, fatal: true, why: "message shorter than a DNS header"}
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(str, msg); err != nil {
		return nil, readError(err, "stream ended before the message its length announced")
	}
	var extra [1]byte
	switch k, err := str.Read(extra[:]); {
	case k > 0:
		return nil, &doqError{code: DoQProtocolError, fatal: true, why: "more than one message on a stream"}
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, readError(err, "")
	}
	if binary.BigEndian.Uint16(msg) != 0 {
		return nil, &doqError{code: DoQProtocolError, fatal: true, why: "message ID is not 0"}
	}
	if hasTCPKeepalive(msg) {
		return nil, &doqError{code: DoQProtocolError, fatal: true, why: "edns-tcp-keepalive in a query"}
	}
	return msg, nil
}

// readError maps a failed read: a stalled stream is cancelled, a FIN inside a message is a
// protocol error, a client reset or a closed connection ends the stream quietly.
func readError(err error, short string) *doqError {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return &doqError{code: DoQRequestCancelled, why: "query not complete in time"}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &doqError{code: DoQProtocolError, fatal: true, why: short}
	}
	return &doqError{} // reset by the client, or the connection closed: nothing to say
}

func (l *Listener) failStream(c *conn, str *quicgo.Stream, e *doqError) {
	if e.why == "" {
		str.CancelRead(DoQNoError)
		str.CancelWrite(DoQNoError)
		return
	}
	if e.fatal {
		l.stats.protoErrs.Add(1)
		l.log.Debug("DoQ protocol error", "peer", c.peer, "err", e.why)
		_ = c.qc.CloseWithError(quicgo.ApplicationErrorCode(e.code), e.why)
		return
	}
	l.stats.cancelled.Add(1)
	str.CancelRead(quicgo.StreamErrorCode(e.code))
	str.CancelWrite(quicgo.StreamErrorCode(e.code))
}

// hasTCPKeepalive reports whether a query carries the edns-tcp-keepalive option (RFC 7828),
// which RFC 9250 section 5.5.2 forbids on DoQ. A message that does not parse is left to
// the engine, which refuses it.
func hasTCPKeepalive(msg []byte) bool {
	if len(msg) < dnswire.HeaderLen || dnswire.Count(msg, dnswire.Additional) == 0 {
		return false // no additional record: no OPT
	}
	at, opt, err := dnswire.FindOPT(msg)
	if err != nil || at < 0 {
		return false
	}
	found := false
	o := opt.RDOff
	for o+4 <= opt.End() {
		if binary.BigEndian.Uint16(msg[o:]) == dns.EDNS0TCPKEEPALIVE {
			found = true
		}
		o += 4 + int(binary.BigEndian.Uint16(msg[o+2:]))
	}
	return found && o == opt.End() // an option cut short: the OPT record does not parse
}
