package doh

import (
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Header is one custom response header, added to every response.
type Header struct {
	Key   string
	Value string
}

// Proto selects the HTTP version a Session speaks.
type Proto int

const (
	// HTTP2 is HTTP/2 (ALPN "h2"); the client starts with the connection preface.
	HTTP2 Proto = iota
	// HTTP1 is HTTP/1.1 (ALPN "http/1.1", or no ALPN).
	HTTP1
	// Detect serves cleartext binds: HTTP/2 with prior knowledge (h2c) when the
	// first bytes are the HTTP/2 connection preface, HTTP/1.1 otherwise.
	Detect
)

func (p Proto) String() string {
	switch p {
	case HTTP2:
		return "h2"
	case HTTP1:
		return "http/1.1"
	case Detect:
		return "detect"
	}
	return "unknown"
}

// Options configure a Session. A zero number or duration means its default;
// the booleans are taken as given, so start from DefaultOptions. One Options
// value is shared, read-only, by every session of a bind: do not change it
// once a session uses it (copy it instead).
type Options struct {
	// Paths are the URL paths that serve DNS queries. Default ["/dns-query"].
	Paths []string
	// ExactPathMatching: when false a request path matches if it starts with
	// one of Paths. Default true.
	ExactPathMatching bool

	// MaxConcurrentStreams is SETTINGS_MAX_CONCURRENT_STREAMS for HTTP/2 and
	// the pipelining depth for HTTP/1.1. Default 100.
	MaxConcurrentStreams uint32
	// MaxHeaderListSize bounds the decoded request header list (HTTP/2,
	// counted as in RFC 9113 6.5.2) and the request head (HTTP/1.1). Default 8192.
	MaxHeaderListSize uint32
	// MaxBodySize bounds a POST body and a decoded GET query. Default 65535.
	MaxBodySize int
	// MaxConnMemory bounds the bytes one connection may hold buffered: input
	// not yet parsed, request bodies, responses held back by HTTP/2 flow
	// control or HTTP/1.1 ordering. Default 1 MiB.
	MaxConnMemory int
	// IdleTimeout closes a connection without input, and one whose output is
	// stalled by a closed flow-control window, after this long. Default 30 s.
	IdleTimeout time.Duration

	CustomResponseHeaders []Header
	// SendCacheControl adds cache-control: max-age=<smallest TTL> to answers.
	// Default true.
	SendCacheControl bool
	// TrustForwardedFor takes the right-most X-Forwarded-For address as the
	// client address (Query.ForwardedFor). Only for binds behind a proxy.
	TrustForwardedFor bool

	// Abuse thresholds (HTTP/2). Each is counted per connection over
	// AbuseWindow; past the threshold the connection gets GOAWAY
	// ENHANCE_YOUR_CALM and is closed.
	AbuseWindow time.Duration // default 10 s
	// MaxRapidResets: client RST_STREAMs of streams not yet answered. Default 200.
	MaxRapidResets int
	// MaxSettingsFrames: SETTINGS frames received. Default 100.
	MaxSettingsFrames int
	// MaxPingFrames: PING frames received. Default 100.
	MaxPingFrames int
	// MaxContinuationFrames bounds CONTINUATION frames in one header block. Default 16.
	MaxContinuationFrames int

	// resolved holds a *config: these options with defaults applied, made
	// by the first session and shared by every later one (sessions hold a
	// pointer, not a copy of their own). An Options must not change once a
	// session uses it; a copy of it (the engine copies to adjust a limit)
	// resolves its own, as config.from tells.
	resolved atomic.Value
}

// Defaults.
const (
	DefaultPath                  = "/dns-query"
	DefaultMaxConcurrentStreams  = 100
	DefaultMaxHeaderListSize     = 8192
	DefaultMaxBodySize           = 65535
	DefaultMaxConnMemory         = 1 << 20
	DefaultIdleTimeout           = 30 * time.Second
	DefaultAbuseWindow           = 10 * time.Second
	DefaultMaxRapidResets        = 200
	DefaultMaxSettingsFrames     = 100
	DefaultMaxPingFrames         = 100
	DefaultMaxContinuationFrames = 16
)

// config is Options with defaults applied, computed once per Options and
// shared, read-only, by its sessions.
type config struct {
	from             *Options
	paths            []string
	exact            bool
	maxStreams       uint32
	maxHeaderList    uint32
	maxBody          int
	maxMem           int
	idle             time.Duration
	custom           []Header
	cacheControl     bool
	trustXFF         bool
	abuseWindow      time.Duration
	maxResets        int
	maxSettings      int
	maxPings         int
	maxContinuations int
}

// DefaultOptions returns the defaults, with the booleans set as documented.
func DefaultOptions() *Options {
	return &Options{ExactPathMatching: true, SendCacheControl: true}
}

// config returns the shared, read-only config of o.
func (o *Options) config() *config {
	if o == nil {
		o = DefaultOptions()
	}
	if c, _ := o.resolved.Load().(*config); c != nil && c.from == o {
		return c
	}
	// Racing sessions may each resolve: the results are equal.
	c := o.resolve()
	o.resolved.Store(c)
	return c
}

func (o *Options) resolve() *config {
	c := &config{
		from:             o,
		paths:            o.Paths,
		exact:            o.ExactPathMatching,
		maxStreams:       o.MaxConcurrentStreams,
		maxHeaderList:    o.MaxHeaderListSize,
		maxBody:          o.MaxBodySize,
		maxMem:           o.MaxConnMemory,
		idle:             o.IdleTimeout,
		custom:           o.CustomResponseHeaders,
		cacheControl:     o.SendCacheControl,
		trustXFF:         o.TrustForwardedFor,
		abuseWindow:      o.AbuseWindow,
		maxResets:        o.MaxRapidResets,
		maxSettings:      o.MaxSettingsFrames,
		maxPings:         o.MaxPingFrames,
		maxContinuations: o.MaxContinuationFrames,
	}
	c.custom = lowerKeys(c.custom)
	if len(c.paths) == 0 {
		c.paths = []string{DefaultPath}
	}
	setDefault(&c.maxStreams, DefaultMaxConcurrentStreams)
	setDefault(&c.maxHeaderList, DefaultMaxHeaderListSize)
	setDefault(&c.maxBody, DefaultMaxBodySize)
	setDefault(&c.maxMem, DefaultMaxConnMemory)
	setDefault(&c.idle, DefaultIdleTimeout)
	setDefault(&c.abuseWindow, DefaultAbuseWindow)
	setDefault(&c.maxResets, DefaultMaxRapidResets)
	setDefault(&c.maxSettings, DefaultMaxSettingsFrames)
	setDefault(&c.maxPings, DefaultMaxPingFrames)
	setDefault(&c.maxContinuations, DefaultMaxContinuationFrames)
	return c
}

// lowerKeys returns hs with lowercase names: HTTP/2 requires them (RFC 9113
// 8.2.1: an uppercase name makes the response malformed), and HTTP/1.1 does
// not care. hs itself is shared by the bind's sessions and not modified; a
// copy is made only when a name needs it.
func lowerKeys(hs []Header) []Header {
	for i, h := range hs {
		if strings.ToLower(h.Key) == h.Key {
			continue
		}
		out := slices.Clone(hs)
		for j := i; j < len(out); j++ {
			out[j].Key = strings.ToLower(out[j].Key)
		}
		return out
	}
	return hs
}

func setDefault[T uint32 | int | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}
