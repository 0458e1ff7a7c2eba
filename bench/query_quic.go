package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// quicConfig is the client's QUIC configuration for a warm connection with
// inflight streams: the idle timeout outlasts any pause in a run.
func quicConfig(timeout time.Duration) *quic.Config {
	return &quic.Config{
		HandshakeIdleTimeout: timeout,
		MaxIdleTimeout:       30 * time.Second,
	}
}

// quicTLS returns a copy of cfg for QUIC: TLS 1.3 only (RFC 9001) and the
// given ALPN. A TLS 1.2-only setting is an error.
func quicTLS(cfg *tls.Config, alpn string) (*tls.Config, error) {
	if cfg.MaxVersion != 0 && cfg.MaxVersion < tls.VersionTLS13 {
		return nil, errors.New("bench: QUIC runs TLS 1.3 only")
	}
	c := cfg.Clone()
	c.MinVersion = tls.VersionTLS13
	c.NextProtos = []string{alpn}
	return c, nil
}

// doqConn drives one DoQ connection (RFC 9250) with inflight loops, each
// opening one stream per query after the other. Each loop is a queryWorker
// of its own; the quic.Conn is safe for concurrent use.
type doqConn struct {
	conn    *quic.Conn
	qs      []wireQuery
	timeout time.Duration
	loops   []*queryWorker
}

func dialDoQ(ctx context.Context, o QueryOptions, cfg *tls.Config, qs []wireQuery) (*doqConn, error) {
	dctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	conn, err := quic.DialAddr(dctx, o.Target, cfg, quicConfig(o.Timeout))
	if err != nil {
		return nil, err
	}
	if p := conn.ConnectionState().TLS.NegotiatedProtocol; p != "doq" {
		conn.CloseWithError(0, "")
		return nil, fmt.Errorf("server negotiated ALPN %q, want doq", p)
	}
	c := &doqConn{conn: conn, qs: qs, timeout: o.Timeout}
	for range o.Inflight {
		c.loops = append(c.loops, &queryWorker{})
	}
	var buf []byte
	if _, kind, _, err := doqAsk(ctx, conn, &qs[0], buf, o.Timeout); err != nil || kind != "" {
		conn.CloseWithError(0, "")
		if err == nil {
			err = errors.New("first answer: " + kind)
		}
		return nil, err
	}
	return c, nil
}

func (c *doqConn) workers() []*queryWorker { return c.loops }

func (c *doqConn) stop() { c.conn.CloseWithError(0, "") }

func (c *doqConn) run(ctx context.Context, end time.Time) {
	var wg sync.WaitGroup
	for _, w := range c.loops {
		wg.Go(func() { c.loop(ctx, w, end) })
	}
	wg.Wait()
}

func (c *doqConn) loop(ctx context.Context, w *queryWorker, end time.Time) {
	next := rand.IntN(len(c.qs))
	var buf []byte
	for ctx.Err() == nil {
		t0 := time.Now()
		w.sent++
		var rcode, kind string
		var err error
		rcode, kind, buf, err = doqAsk(ctx, c.conn, &c.qs[next], buf, c.timeout)
		now := time.Now()
		if now.After(end) || ctx.Err() != nil {
			return
		}
		next = (next + 1) % len(c.qs)
		if err != nil {
			w.fail(errorKind(err))
			if c.conn.Context().Err() != nil {
				return
			}
			continue
		}
		if rcode != "" {
			w.answered(rcode)
		}
		if kind != "" {
			w.fail(kind)
			continue
		}
		w.hist.record(now.Sub(t0))
		w.ok.Add(1)
	}
}

// doqAsk sends q on a new stream of conn as RFC 9250 asks: a 2-byte length
// prefix, message ID 0, the sending side closed after the query. It reads
// the stream to its end and checks the one answer. err reports a transport
// failure; kind a bad answer. buf is reused across calls.
func doqAsk(ctx context.Context, conn *quic.Conn, q *wireQuery, buf []byte, timeout time.Duration) (rcode, kind string, _ []byte, err error) {
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	str, err := conn.OpenStreamSync(sctx)
	if err != nil {
		return "", "", buf, err
	}
	str.SetDeadline(time.Now().Add(timeout))
	buf = append(buf[:0], byte(len(q.msg)>>8), byte(len(q.msg)))
	buf = append(buf, q.msg...) // packed with ID 0
	if _, err := str.Write(buf); err != nil {
		str.CancelRead(0)
		return "", "", buf, err
	}
	str.Close()
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := str.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", "", buf, err
		}
		if len(buf) > 2+65535 {
			str.CancelRead(0)
			return "", "oversize answer", buf, nil
		}
	}
	if len(buf) < 2 {
		return "", "short answer", buf, nil
	}
	n := int(binary.BigEndian.Uint16(buf))
	if len(buf) != 2+n {
		return "", "bad length prefix", buf, nil
	}
	rcode, kind = checkAnswer(buf[2:], 0, q)
	return rcode, kind, buf, nil
}

// doh3Conn drives one HTTP/3 connection with inflight stream loops, each
// POSTing application/dns-message queries one after the other (RFC 8484
// over RFC 9114).
type doh3Conn struct {
	conn    *quic.Conn
	cc      *http3.ClientConn
	url     string
	qs      []wireQuery
	timeout time.Duration
	loops   []*queryWorker
}

func dialDoH3(ctx context.Context, o QueryOptions, cfg *tls.Config, qs []wireQuery) (*doh3Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	conn, err := quic.DialAddr(dctx, o.Target, cfg, quicConfig(o.Timeout))
	if err != nil {
		return nil, err
	}
	if p := conn.ConnectionState().TLS.NegotiatedProtocol; p != http3.NextProtoH3 {
		conn.CloseWithError(0, "")
		return nil, fmt.Errorf("server negotiated ALPN %q, want h3", p)
	}
	tr := &http3.Transport{}
	u := url.URL{Scheme: "https", Host: cfg.ServerName, Path: o.Path}
	if _, port, _ := net.SplitHostPort(o.Target); port != "443" {
		u.Host = net.JoinHostPort(cfg.ServerName, port)
	}
	c := &doh3Conn{conn: conn, cc: tr.NewClientConn(conn), url: u.String(), qs: qs, timeout: o.Timeout}
	for range o.Inflight {
		c.loops = append(c.loops, &queryWorker{})
	}
	var body bytes.Buffer
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	if _, kind, err := c.ask(ctx, rng, &c.qs[0], &body); err != nil || kind != "" {
		conn.CloseWithError(0, "")
		if err == nil {
			err = errors.New("first answer: " + kind)
		}
		return nil, err
	}
	return c, nil
}

func (c *doh3Conn) workers() []*queryWorker { return c.loops }

func (c *doh3Conn) stop() { c.conn.CloseWithError(0, "") }

func (c *doh3Conn) run(ctx context.Context, end time.Time) {
	var wg sync.WaitGroup
	for _, w := range c.loops {
		wg.Go(func() { c.loop(ctx, w, end) })
	}
	wg.Wait()
}

func (c *doh3Conn) loop(ctx context.Context, w *queryWorker, end time.Time) {
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	next := rng.IntN(len(c.qs))
	var body bytes.Buffer
	for ctx.Err() == nil {
		t0 := time.Now()
		w.sent++
		rcode, kind, err := c.ask(ctx, rng, &c.qs[next], &body)
		now := time.Now()
		if now.After(end) || ctx.Err() != nil {
			return
		}
		next = (next + 1) % len(c.qs)
		if err != nil {
			w.fail(errorKind(err))
			if c.conn.Context().Err() != nil {
				return
			}
			continue
		}
		if rcode != "" {
			w.answered(rcode)
		}
		if kind != "" {
			w.fail(kind)
			continue
		}
		w.hist.record(now.Sub(t0))
		w.ok.Add(1)
	}
}

// ask POSTs one query and checks the HTTP response and the DNS answer, as
// the HTTP/2 client does.
func (c *doh3Conn) ask(ctx context.Context, rng *rand.Rand, q *wireQuery, body *bytes.Buffer) (rcode, kind string, err error) {
	return askHTTP(ctx, c.cc, c.url, c.timeout, rng, q, body)
}

// quicHandshaker opens a new QUIC connection per operation over one shared
// UDP socket (a quic.Transport), so that the run measures the server's
// handshakes and not the client's socket setup.
type quicHandshaker struct {
	tr   *quic.Transport
	cfg  *tls.Config
	qcfg *quic.Config
}

func newQUICHandshaker(cfg *tls.Config, timeout time.Duration) (*quicHandshaker, error) {
	udp, err := net.ListenUDP("udp", nil)
	if err != nil {
		return nil, err
	}
	return &quicHandshaker{
		tr:   &quic.Transport{Conn: udp},
		cfg:  cfg,
		qcfg: &quic.Config{HandshakeIdleTimeout: timeout, MaxIdleTimeout: timeout},
	}, nil
}

// handshake dials target and completes a QUIC handshake; with q set it
// then sends one DoQ query and checks the answer. The connection is closed
// before it returns.
func (h *quicHandshaker) handshake(ctx context.Context, target string, t0 time.Time, timeout time.Duration, q *wireQuery) (tls.ConnectionState, error) {
	addr, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	dctx, cancel := context.WithDeadline(ctx, t0.Add(timeout))
	defer cancel()
	conn, err := h.tr.Dial(dctx, addr, h.cfg, h.qcfg)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer conn.CloseWithError(0, "")
	cs := conn.ConnectionState().TLS
	if q != nil {
		if _, kind, _, err := doqAsk(dctx, conn, q, nil, time.Until(t0.Add(timeout))); err != nil {
			return cs, err
		} else if kind != "" {
			return cs, errors.New("query " + kind)
		}
	}
	return cs, nil
}

func (h *quicHandshaker) close() { h.tr.Close() }
