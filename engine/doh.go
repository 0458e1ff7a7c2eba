package engine

import (
	"net/netip"
	"sync"
	"time"

	"github.com/dnsfront/dnsfront/doh"
	"github.com/dnsfront/dnsfront/tlsframe"
	"github.com/panjf2000/gnet/v2"
	"github.com/valyala/bytebufferpool"
)

// dohStream is DNS over HTTPS (RFC 8484): a doh.Session behind TLS (ALPN picks h2 or
// http/1.1), or in cleartext for a bind behind a proxy (h2c with prior knowledge or
// HTTP/1.1, told apart by the first bytes).
type dohStream struct {
	l    *loop
	t    *tlsframe.Conn // nil in cleartext
	opts *doh.Options
	s    *doh.Session
	bad  bool
	pp   *proxyIn // a PROXY header expected inside TLS (proxy.go); nil: none
	// born bounds a TLS connection that completes its handshake and never sends a request
	// (its session does not exist yet, so it has no idle deadline of its own).
	born time.Time
}

func newDoHStream(b *BindOptions) func(gnet.Conn, *loop, netip.AddrPort) stream {
	return func(gc gnet.Conn, l *loop, peer netip.AddrPort) stream {
		d := &dohStream{l: l, opts: b.DoH, born: time.Now()}
		if b.TLSStore != nil {
			d.t = tlsframe.NewConn(gc, b.TLSStore, l.idx, b.Handshaker, peer)
		} else {
			d.s = doh.NewSession(d.opts, doh.Detect, time.Now)
		}
		return d
	}
}

func (d *dohStream) read(gc gnet.Conn, query func([]byte, uint64)) error {
	emit := func(q doh.Query) {
		// Set only from a bind that trusts X-Forwarded-For (doh.Options).
		d.l.forwardedFor = q.ForwardedFor
		d.l.dohReq = q.Headers
		query(q.Msg, q.ID)
		d.l.forwardedFor, d.l.dohReq = netip.Addr{}, nil
	}
	if d.t == nil {
		buf, _ := gc.Next(-1)
		if err := d.s.Feed(buf, emit); err != nil {
			d.bad = true
		}
		return nil
	}
	return d.t.OnTraffic(gc, func(p []byte) {
		if d.s == nil {
			proto := doh.HTTP1
			if d.t.ConnectionState().NegotiatedProtocol == "h2" {
				proto = doh.HTTP2
			}
			d.s = doh.NewSession(d.opts, proto, time.Now)
		}
		if p, d.bad = d.pp.inside(p, d.bad); d.bad || len(p) == 0 {
			return
		}
		if err := d.s.Feed(p, emit); err != nil {
			d.bad = true // the session queued its GOAWAY: flush it, then close
		}
	})
}

func (d *dohStream) answer(tag uint64, msg []byte) { d.s.Respond(tag, msg) }

func (d *dohStream) fail(tag uint64, kind failKind, _ []byte) {
	switch kind {
	case failTimeout:
		d.s.Fail(tag, 504)
	case failNoBackend:
		d.s.Fail(tag, 502)
	case failACL:
		d.s.Fail(tag, 403)
	default:
		d.s.Fail(tag, 400)
	}
}

func (d *dohStream) flush(gc gnet.Conn) error {
	if d.s == nil {
		return nil
	}
	// A pooled buffer, not one per connection: both writes below copy it,
	// and an idle connection should not keep its last output.
	out := bytebufferpool.Get()
	defer bytebufferpool.Put(out)
	out.B = d.s.AppendOutput(out.B[:0])
	d.l.foldDoH(d.s)
	if len(out.B) == 0 {
		return nil
	}
	if d.t == nil {
		_, err := gc.Write(out.B)
		return err
	}
	d.t.Write(out.B)
	return d.t.Flush(gc)
}

func (d *dohStream) Expired(now time.Time) bool {
	if d.s == nil {
		if now.Sub(d.born) > d.opts.IdleTimeout {
			d.bad = true
			return true
		}
		return false
	}
	return now.After(d.s.Deadline()) && d.s.Expire()
}

func (d *dohStream) wantClose() bool { return d.bad || (d.s != nil && d.s.Closed()) }

func (d *dohStream) close() {
	if d.s != nil {
		d.l.foldDoH(d.s)
	}
	if d.t != nil {
		d.t.OnClose()
	}
}

func (d *dohStream) shutdown(gc gnet.Conn) {
	if d.s != nil {
		d.s.Shutdown()
		_ = d.flush(gc)
	}
	if d.t != nil {
		_ = d.t.SendCloseNotify(gc)
	}
}

// dohStats are a loop's DoH counters, folded in from its sessions. The mutex is only
// contended by a metrics scrape.
type dohStats struct {
	mu sync.Mutex
	s  doh.Stats
}

func (l *loop) foldDoH(s *doh.Session) {
	l.doh.mu.Lock()
	s.DrainStats(&l.doh.s)
	l.doh.mu.Unlock()
}

// DoHStats sums the loops' DoH counters.
func (e *Engine) DoHStats() doh.Stats {
	var sum doh.Stats
	for _, l := range e.loopList() {
		l.doh.mu.Lock()
		sum.Add(&l.doh.s)
		l.doh.mu.Unlock()
	}
	return sum
}
