package rules

import (
	"net/netip"
	"sync"
	"time"

	"github.com/dnsfront/dnsfront/config"
)

// TLSLimits are the per-client limits on TLS sessions (dnsdist 2.0's tuning.tcp), the defence
// against handshake floods: a client network that opens new sessions or resumes sessions
// faster than allowed is banned for BanDuration, and at most MaxConcurrentHandshakes of its
// handshakes run at once. Zero disables a limit.
type TLSLimits struct {
	NewSessionsPerSecond     uint32
	ResumedSessionsPerSecond uint32
	MaxConcurrentHandshakes  int
	BanDuration              time.Duration // default 10 s (dnsdist's)
	IPv4Mask, IPv6Mask       int           // default 32 and 128 (dnsdist's connections_mask_v4/v6)
}

// TLSLimiter applies TLSLimits. The TLS layer calls it from the loops (Begin at the first
// ClientHello record, Banned at accept) and from handshake goroutines (Done); it is safe
// for concurrent use: sharded maps behind one mutex each.
type TLSLimiter struct {
	lim          TLSLimits
	newG, resG   gcra
	ban          int64
	bits4, bits6 int
	shards       [16]tlsShard
}

type tlsShard struct {
	mu          sync.Mutex
	clients     map[clientKey]*tlsClient
	lastCleanup int64
	_           [32]byte
}

type tlsClient struct {
	newTAT, resTAT int64
	inFlight       int
	bannedUntil    int64
	lastSeen       int64
}

// NewTLSLimiter returns a limiter; zero masks and ban duration take dnsdist's defaults.
func NewTLSLimiter(l TLSLimits) *TLSLimiter {
	t := &TLSLimiter{lim: l, bits4: l.IPv4Mask, bits6: l.IPv6Mask, ban: int64(l.BanDuration)}
	if t.bits4 == 0 {
		t.bits4 = 32
	}
	if t.bits6 == 0 {
		t.bits6 = 128
	}
	if t.ban == 0 {
		t.ban = int64(10 * time.Second)
	}
	// A rate per second admits a burst of one second's worth: a client reconnecting after
	// a network change may open several sessions at once.
	t.newG = newGCRA(l.NewSessionsPerSecond, l.NewSessionsPerSecond)
	t.resG = newGCRA(l.ResumedSessionsPerSecond, l.ResumedSessionsPerSecond)
	for i := range t.shards {
		t.shards[i].clients = map[clientKey]*tlsClient{}
	}
	return t
}

func (t *TLSLimiter) client(a netip.Addr, now int64, create bool) (*tlsShard, *tlsClient) {
	k := maskedKey(a, t.bits4, t.bits6)
	s := &t.shards[k.shard(len(t.shards))]
	s.mu.Lock()
	c := s.clients[k]
	if c == nil && create {
		c = &tlsClient{}
		s.clients[k] = c
	}
	if c != nil {
		c.lastSeen = now
	}
	// Forget idle clients once a minute: their buckets are full again and no ban is left.
	if now-s.lastCleanup > int64(time.Minute) {
		s.lastCleanup = now
		for k, c := range s.clients {
			if c.inFlight == 0 && c.bannedUntil < now && now-c.lastSeen > int64(time.Minute) {
				delete(s.clients, k)
			}
		}
	}
	return s, c
}

// Banned reports whether connections from a are refused at now.
func (t *TLSLimiter) Banned(a netip.Addr, now int64) bool {
	s, c := t.client(a, now, false)
	defer s.mu.Unlock()
	return c != nil && c.bannedUntil > now
}

// Begin is called when a client's handshake is about to start. It reports false when the
// client is banned or already has MaxConcurrentHandshakes in flight; the caller then closes
// the connection. On true, the caller must call Done or Abort exactly once.
func (t *TLSLimiter) Begin(a netip.Addr, now int64) bool {
	s, c := t.client(a, now, true)
	defer s.mu.Unlock()
	if c.bannedUntil > now {
		return false
	}
	if t.lim.MaxConcurrentHandshakes > 0 && c.inFlight >= t.lim.MaxConcurrentHandshakes {
		return false
	}
	c.inFlight++
	return true
}

// Abort releases a handshake that failed.
func (t *TLSLimiter) Abort(a netip.Addr, now int64) {
	s, c := t.client(a, now, false)
	if c != nil && c.inFlight > 0 {
		c.inFlight--
	}
	s.mu.Unlock()
}

// Done releases a handshake that completed and counts its session, new or resumed. It
// reports false when the client went over a rate: it is then banned for BanDuration and the
// caller closes this connection too.
func (t *TLSLimiter) Done(a netip.Addr, resumed bool, now int64) bool {
	s, c := t.client(a, now, true)
	defer s.mu.Unlock()
	if c.inFlight > 0 {
		c.inFlight--
	}
	ok := true
	if resumed && t.lim.ResumedSessionsPerSecond > 0 {
		c.resTAT, ok = t.resG.allow(c.resTAT, now)
	} else if !resumed && t.lim.NewSessionsPerSecond > 0 {
		c.newTAT, ok = t.newG.allow(c.newTAT, now)
	}
	if !ok {
		c.bannedUntil = now + t.ban
	}
	return ok && c.bannedUntil <= now
}

// TLSLimitsFrom reads the limits from tuning.tcp and a bind's max_handshakes_per_client.
func TLSLimitsFrom(t config.TCPTuning, maxHandshakesPerClient int) TLSLimits {
	l := TLSLimits{
		NewSessionsPerSecond:     uint32(max(t.MaxTLSNewSessionRatePerClient, 0)),
		ResumedSessionsPerSecond: uint32(max(t.MaxTLSResumedSessionRatePerClient, 0)),
		MaxConcurrentHandshakes:  maxHandshakesPerClient,
	}
	if t.BanDurationForExceedingTCPTLSRate != nil {
		l.BanDuration = time.Duration(*t.BanDurationForExceedingTCPTLSRate) * time.Second
	}
	if t.ConnectionsMaskV4 != nil {
		l.IPv4Mask = *t.ConnectionsMaskV4
	}
	if t.ConnectionsMaskV6 != nil {
		l.IPv6Mask = *t.ConnectionsMaskV6
	}
	return l
}
