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
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// dohConn drives one HTTP/2 connection with inflight stream loops, each
// POSTing application/dns-message queries one after the other (RFC 8484).
// Each loop is a queryWorker of its own, so no state is shared between
// them; the http.ClientConn is safe for concurrent use.
type dohConn struct {
	cc      *http.ClientConn
	raw     net.Conn
	url     string
	qs      []wireQuery
	timeout time.Duration
	loops   []*queryWorker
}

func dialDoH(ctx context.Context, o QueryOptions, cfg *tls.Config, qs []wireQuery) (*dohConn, error) {
	d := net.Dialer{Timeout: o.Timeout}
	raw, err := d.DialContext(ctx, "tcp", o.Target)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(raw, cfg)
	tc.SetDeadline(time.Now().Add(o.Timeout))
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	tc.SetDeadline(time.Time{})
	cc, err := h2ClientConn(ctx, tc, o.Target)
	if err != nil {
		raw.Close()
		return nil, err
	}
	u := url.URL{Scheme: "https", Host: cfg.ServerName, Path: o.Path}
	if _, port, _ := net.SplitHostPort(o.Target); port != "443" {
		u.Host = net.JoinHostPort(cfg.ServerName, port)
	}
	c := &dohConn{cc: cc, raw: raw, url: u.String(), qs: qs, timeout: o.Timeout}
	for range o.Inflight {
		c.loops = append(c.loops, &queryWorker{})
	}
	var body bytes.Buffer
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	if _, kind, err := c.ask(ctx, rng, &c.qs[0], &body); err != nil || kind != "" {
		cc.Close()
		raw.Close()
		if err == nil {
			err = errors.New("first answer: " + kind)
		}
		return nil, err
	}
	return c, nil
}

// h2ClientConn runs HTTP/2 over tc, a TLS connection whose handshake is
// done (so that the caller has timed it and checked its staple). No pings:
// a benchmark's connection is never idle long enough to need them.
func h2ClientConn(ctx context.Context, tc *tls.Conn, target string) (*http.ClientConn, error) {
	if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
		return nil, fmt.Errorf("server negotiated ALPN %q, want h2", p)
	}
	var h2 http.Protocols
	h2.SetHTTP2(true)
	tr := &http.Transport{
		Protocols:      &h2,
		DialTLSContext: func(context.Context, string, string) (net.Conn, error) { return tc, nil },
	}
	return tr.NewClientConn(ctx, "https", target)
}

func (c *dohConn) workers() []*queryWorker { return c.loops }

func (c *dohConn) stop() {
	c.cc.Close()
	c.raw.Close()
}

func (c *dohConn) run(ctx context.Context, end time.Time) {
	var wg sync.WaitGroup
	for _, w := range c.loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.loop(ctx, w, end)
		}()
	}
	wg.Wait()
}

func (c *dohConn) loop(ctx context.Context, w *queryWorker, end time.Time) {
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
			if c.cc.Err() != nil {
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

// ask POSTs one query and checks the HTTP response and the DNS answer. err
// reports a transport failure; kind a bad answer.
func (c *dohConn) ask(ctx context.Context, rng *rand.Rand, q *wireQuery, body *bytes.Buffer) (rcode, kind string, err error) {
	return askHTTP(ctx, c.cc, c.url, c.timeout, rng, q, body)
}

// askHTTP POSTs one query over rt (an HTTP/2 or HTTP/3 connection) and
// checks the HTTP response and the DNS answer. err reports a transport
// failure; kind a bad answer.
func askHTTP(ctx context.Context, rt http.RoundTripper, url string, timeout time.Duration, rng *rand.Rand, q *wireQuery, body *bytes.Buffer) (rcode, kind string, err error) {
	// RFC 8484 suggests ID 0 for cache friendliness; a random ID lets the
	// answer be matched to this query like on the other transports.
	id := uint16(rng.Uint32())
	msg := make([]byte, len(q.msg))
	copy(msg, q.msg)
	binary.BigEndian.PutUint16(msg, id)
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, url, bytes.NewReader(msg))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Content-Type", "application/dns-message")
	req.Header.Set("Accept", "application/dns-message")
	req.ContentLength = int64(len(msg))
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	body.Reset()
	if _, err := body.ReadFrom(io.LimitReader(resp.Body, 65536)); err != nil {
		return "", "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", "http " + strconv.Itoa(resp.StatusCode), nil
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/dns-message" {
		return "", "content-type " + ct, nil
	}
	rcode, kind = checkAnswer(body.Bytes(), id, q)
	return rcode, kind, nil
}
