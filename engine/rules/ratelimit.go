package rules

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Clock gives the time in nanoseconds since an arbitrary origin. Loops read it once per
// pass and put it in Query.Now; tests inject their own.
type Clock interface{ Nanos() int64 }

// SystemClock is the monotonic system clock.
type SystemClock struct{ start time.Time }

// NewSystemClock starts a clock at zero now.
func NewSystemClock() *SystemClock { return &SystemClock{start: time.Now()} }

// Nanos returns the nanoseconds since the clock started (at least 1, so that 0 can mean "unset").
func (c *SystemClock) Nanos() int64 { return int64(time.Since(c.start)) + 1 }

// ManualClock is a clock that moves only when told to (tests).
type ManualClock struct{ n atomic.Int64 }

// Nanos returns the clock's time.
func (c *ManualClock) Nanos() int64 { return c.n.Load() }

// Advance moves the clock forward.
func (c *ManualClock) Advance(d time.Duration) { c.n.Add(int64(d)) }

// Set sets the clock.
func (c *ManualClock) Set(n int64) { c.n.Store(n) }

// gcra is a token bucket in the form of the generic cell rate algorithm: one number, the
// theoretical arrival time of the next conforming query. A query at now conforms when
// tat - now ≤ tolerance, where tolerance lets burst queries through at once; it then moves
// tat one interval on. This makes the bucket a single word that loops update with CAS.
type gcra struct {
	interval  int64 // nanoseconds per query
	tolerance int64 // (burst-1) intervals
}

func newGCRA(qps, burst uint32) gcra {
	if burst == 0 {
		burst = qps
	}
	iv := int64(time.Second) / int64(max(qps, 1))
	return gcra{interval: iv, tolerance: iv * int64(max(burst, 1)-1)}
}

// allow applies one query to the bucket state tat and returns the new state.
func (g gcra) allow(tat, now int64) (int64, bool) {
	if tat < now {
		tat = now
	}
	if tat-now > g.tolerance {
		return tat, false
	}
	return tat + g.interval, true
}

// Limiter is a process-wide query rate (MaxQPS, QPS actions), shared by every loop:
// one atomic word, so loops together get the configured rate, not one rate each.
type Limiter struct {
	g   gcra
	tat atomic.Int64
	_   [48]byte // keep neighbours off the contended cache line
}

// NewLimiter returns a limiter of qps queries per second with a burst (0: qps).
func NewLimiter(qps, burst uint32) *Limiter { return &Limiter{g: newGCRA(qps, burst)} }

// Allow takes one query at now and reports whether it is within the rate.
func (l *Limiter) Allow(now int64) bool {
	for {
		old := l.tat.Load()
		tat, ok := l.g.allow(old, now)
		if !ok {
			return false
		}
		if l.tat.CompareAndSwap(old, tat) {
			return true
		}
	}
}

// clientKey is a client address masked to its group's prefix, as two words.
type clientKey struct{ hi, lo uint64 }

func maskedKey(a netip.Addr, bits4, bits6 int) clientKey {
	if a.Is4() || a.Is4In6() {
		b := a.As16()
		x := uint64(b[12])<<24 | uint64(b[13])<<16 | uint64(b[14])<<8 | uint64(b[15])
		if bits4 < 32 {
			x &= ^(uint64(1)<<(32-bits4) - 1) & 0xffffffff
		}
		return clientKey{hi: 0, lo: x | 1<<40} // bit 40 tells v4 from v6 ::a.b.c.d
	}
	k := addr128(a)
	switch {
	case bits6 <= 0:
		return clientKey{}
	case bits6 < 64:
		k.hi &= ^(uint64(1)<<(64-bits6) - 1)
		k.lo = 0
	case bits6 < 128:
		k.lo &= ^(uint64(1)<<(128-bits6) - 1)
	}
	return clientKey(k)
}

func (k clientKey) shard(n int) int {
	h := (k.hi ^ k.lo*fibMul) * fibMul
	return int((h >> 32) % uint64(n))
}

// addr turns a key back into the network's first address.
func (k clientKey) addr() netip.Addr {
	if k.hi == 0 && k.lo>>40 == 1 {
		v := uint32(k.lo)
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	var b [16]byte
	for i := 0; i < 8; i++ {
		b[i] = byte(k.hi >> (56 - 8*i))
		b[8+i] = byte(k.lo >> (56 - 8*i))
	}
	return netip.AddrFrom16(b)
}

// ClientLimiter is a rate per client network (MaxQPSIP): sharded maps of buckets, each shard
// behind its own mutex, so that loops contend only when they serve clients of the same
// shard and every loop applies one shared budget per client. Idle buckets expire: every
// cleanupDelay a shard scans 1/scanFraction of its entries and drops those idle for longer
// than expiration.
type ClientLimiter struct {
	g            gcra
	bits4, bits6 int
	expiration   int64
	cleanupDelay int64
	scanFraction int
	shards       []clientShard
}

type clientShard struct {
	mu          sync.Mutex
	buckets     map[clientKey]int64
	lastCleanup int64
	_           [24]byte
}

// ClientLimiterConfig is MaxQPSIP's parameters (dnsdist's names and defaults).
type ClientLimiterConfig struct {
	QPS, Burst   uint32
	IPv4Mask     int           // 1-32, default (0) 32
	IPv6Mask     int           // 1-128, default (0) 64
	Expiration   time.Duration // default 300 s
	CleanupDelay time.Duration // default 60 s
	ScanFraction int           // default 10
	Shards       int           // default 10
}

// NewClientLimiter builds a per-client limiter; zero fields take dnsdist's defaults.
func NewClientLimiter(c ClientLimiterConfig) *ClientLimiter {
	l := &ClientLimiter{
		g:            newGCRA(c.QPS, c.Burst),
		bits4:        c.IPv4Mask,
		bits6:        c.IPv6Mask,
		expiration:   int64(orDur(c.Expiration, 300*time.Second)),
		cleanupDelay: int64(orDur(c.CleanupDelay, 60*time.Second)),
		scanFraction: max(c.ScanFraction, 1),
	}
	if l.bits4 <= 0 || l.bits4 > 32 {
		l.bits4 = 32
	}
	if l.bits6 <= 0 || l.bits6 > 128 {
		l.bits6 = 64
	}
	if c.ScanFraction == 0 {
		l.scanFraction = 10
	}
	n := c.Shards
	if n <= 0 {
		n = 10
	}
	l.shards = make([]clientShard, n)
	for i := range l.shards {
		l.shards[i].buckets = make(map[clientKey]int64)
	}
	return l
}

func orDur(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Allow takes one query from client a at now and reports whether it is within the rate.
func (l *ClientLimiter) Allow(a netip.Addr, now int64) bool {
	k := maskedKey(a, l.bits4, l.bits6)
	s := &l.shards[k.shard(len(l.shards))]
	s.mu.Lock()
	tat, ok := l.g.allow(s.buckets[k], now)
	if ok {
		s.buckets[k] = tat
	}
	if now-s.lastCleanup > l.cleanupDelay {
		s.lastCleanup = now
		l.cleanup(s, now)
	}
	s.mu.Unlock()
	return ok
}

// cleanup drops buckets idle for longer than the expiration. A bucket's tat is its last use
// plus at most one interval, so tat < now - expiration means idle for at least that long.
func (l *ClientLimiter) cleanup(s *clientShard, now int64) {
	budget := len(s.buckets)/l.scanFraction + 1
	for k, tat := range s.buckets {
		if budget == 0 {
			return
		}
		budget--
		if tat < now-l.expiration {
			delete(s.buckets, k)
		}
	}
}

// Len returns the number of client buckets held.
func (l *ClientLimiter) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.buckets)
		s.mu.Unlock()
	}
	return n
}
