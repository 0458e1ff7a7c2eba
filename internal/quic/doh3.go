package quic

import (
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dnsfront/dnsfront/doh"
	"github.com/dnsfront/dnsfront/engine"
	"github.com/miekg/dns"
)

// The doh package applies RFC 8484 inside its sans-IO HTTP/2 and HTTP/1.1 sessions and
// exports none of it, so this is the same rule set over net/http for HTTP/3, read from
// the same doh.Options: paths and exact matching, GET's dns parameter in base64url, POST
// with application/dns-message, the body limit, cache-control from the smallest TTL,
// custom headers, and the statuses DoH gives (404, 405, 413, 415, 400; 502 and 504 for
// backend failures).

type dohConfig struct {
	paths        []string
	exact        bool
	maxBody      int
	cacheControl bool
	custom       []doh.Header
}

func newDoHConfig(o *doh.Options) dohConfig {
	if o == nil {
		o = doh.DefaultOptions()
	}
	c := dohConfig{paths: o.Paths, exact: o.ExactPathMatching, maxBody: o.MaxBodySize,
		cacheControl: o.SendCacheControl, custom: o.CustomResponseHeaders}
	if len(c.paths) == 0 {
		c.paths = []string{doh.DefaultPath}
	}
	if c.maxBody <= 0 {
		c.maxBody = doh.DefaultMaxBodySize
	}
	return c
}

func dohHeaderLimit(o *doh.Options) uint32 {
	if o == nil || o.MaxHeaderListSize == 0 {
		return doh.DefaultMaxHeaderListSize
	}
	return o.MaxHeaderListSize
}

func dohIdle(o *doh.Options) time.Duration {
	if o == nil || o.IdleTimeout <= 0 {
		return doh.DefaultIdleTimeout
	}
	return o.IdleTimeout
}

func (c *dohConfig) matchPath(p string) bool {
	for _, want := range c.paths {
		if p == want || !c.exact && strings.HasPrefix(p, want) {
			return true
		}
	}
	return false
}

// dohHandler serves the requests of a DoH3 bind.
type dohHandler struct {
	l   *Listener
	cfg dohConfig
}

func (h *dohHandler) reject(w http.ResponseWriter, status int, body string) {
	h.l.stats.badReqs.Add(1)
	if status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", "GET, POST")
	}
	h.addCustom(w)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func (h *dohHandler) addCustom(w http.ResponseWriter) {
	for _, hd := range h.cfg.custom {
		w.Header().Set(hd.Key, hd.Value)
	}
}

func (h *dohHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.l.requests.Add(1)
	defer h.l.requests.Add(-1)
	info, _ := r.Context().Value(infoKey{}).(*connInfo)
	var c *conn
	if info != nil {
		c = info.conn.Load()
	}
	if c == nil {
		h.reject(w, http.StatusServiceUnavailable, "connection not ready\n")
		return
	}
	if !h.cfg.matchPath(r.URL.Path) {
		h.reject(w, http.StatusNotFound, "not found\n")
		return
	}
	var msg []byte
	switch r.Method {
	case http.MethodGet:
		param := r.URL.Query().Get("dns")
		if param == "" {
			h.reject(w, http.StatusBadRequest, "bad request: missing dns parameter\n")
			return
		}
		// Padding is not part of RFC 8484's encoding, but clients send it.
		param = strings.TrimRight(param, "=")
		if base64.RawURLEncoding.DecodedLen(len(param)) > h.cfg.maxBody {
			h.reject(w, http.StatusRequestEntityTooLarge, "dns parameter too large\n")
			return
		}
		var err error
		if msg, err = base64.RawURLEncoding.DecodeString(param); err != nil {
			h.reject(w, http.StatusBadRequest, "bad request: dns parameter is not base64url\n")
			return
		}
	case http.MethodPost:
		if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/dns-message" {
			h.reject(w, http.StatusUnsupportedMediaType, "content-type must be application/dns-message\n")
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(h.cfg.maxBody)))
		if err != nil {
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				h.reject(w, http.StatusRequestEntityTooLarge, "request too large\n")
			}
			return // the client reset the stream, or the connection went
		}
		msg = body
	default:
		h.reject(w, http.StatusMethodNotAllowed, "method not allowed\n")
		return
	}
	if len(msg) < 12 {
		h.reject(w, http.StatusBadRequest, "bad request: invalid DNS message: too short\n")
		return
	}
	type result struct {
		answer []byte
		o      engine.Outcome
	}
	res := make(chan result, 1)
	// The callback runs on the event loop: it copies the answer and returns.
	if err := c.client.Query(msg, func(answer []byte, o engine.Outcome) {
		res <- result{append([]byte(nil), answer...), o}
	}); err != nil {
		h.reject(w, http.StatusServiceUnavailable, "server stopping\n")
		return
	}
	var rs result
	select {
	case rs = <-res:
	case <-r.Context().Done():
		return // the request was cancelled; the loop answers into the channel and it is dropped
	}
	switch rs.o {
	case engine.Answered:
	case engine.NoBackend:
		h.reject(w, http.StatusBadGateway, "bad gateway: backend failure\n")
		return
	case engine.TimedOut:
		h.reject(w, http.StatusGatewayTimeout, "gateway timeout: backend did not answer\n")
		return
	case engine.Malformed:
		h.reject(w, http.StatusBadRequest, "bad request: invalid DNS message\n")
		return
	default:
		h.reject(w, http.StatusServiceUnavailable, "query dropped\n")
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/dns-message")
	hd.Set("Content-Length", strconv.Itoa(len(rs.answer)))
	if h.cfg.cacheControl {
		hd.Set("Cache-Control", "max-age="+strconv.FormatUint(uint64(minTTL(rs.answer)), 10))
	}
	h.addCustom(w)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(rs.answer)
}

// minTTL is what the doh package puts in cache-control for HTTP/2: the smallest TTL of the
// answer and authority records (RFC 8484 section 5.1), the SOA's min(TTL, MINIMUM) for a
// negative answer (RFC 2308 section 5), and 0 when there is no record to take it from.
func minTTL(msg []byte) uint32 {
	var m dns.Msg
	if m.Unpack(msg) != nil {
		return 0
	}
	ttl, found := uint32(0), false
	for _, sec := range [][]dns.RR{m.Answer, m.Ns} {
		for _, rr := range sec {
			t := rr.Header().Ttl
			if soa, ok := rr.(*dns.SOA); ok && len(m.Answer) == 0 {
				t = min(t, soa.Minttl)
			}
			if !found || t < ttl {
				ttl, found = t, true
			}
		}
	}
	return ttl
}
