package packetcache

import (
	"encoding/binary"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// Cache is a sharded packet cache. See the package comment for its
// concurrency rule and docs/backends.md for the caching rules.
type Cache struct {
	opts   Options
	seed   maphash.Seed
	shards []shard
}

// Stats are cumulative counters, except Entries which is current.
type Stats struct {
	Hits        uint64 // lookups answered from the cache
	Misses      uint64 // lookups that were not (including uncacheable queries)
	Insertions  uint64 // answers stored (new or replacing an entry)
	Evictions   uint64 // entries dropped to make room for another
	Expunged    uint64 // expired entries whose slot was taken for another answer
	Uncacheable uint64 // Insert calls whose answer was not stored
	// ECSMismatches are the answers InsertSubnet did not store because their ECS option
	// named another subnet than the query's (counted in Uncacheable too).
	ECSMismatches uint64
	Entries       uint64 // entries held now, expired ones included until removed
}

// entry is one cached answer. Its fields are written under the shard's write
// lock and read under its read lock, except ref, which readers set.
type entry struct {
	ref      atomic.Uint32 // second-chance bit of the CLOCK eviction
	hash     uint64
	inserted int64 // unix nanoseconds
	expires  int64 // unix nanoseconds
	key      []byte
	data     []byte
	ttlOffs  []uint16
}

// shard owns a fixed array of slots, an index from key hash to slot, and a
// CLOCK hand. CLOCK approximates LRU without write locks on hits: a hit sets
// the slot's ref bit, the hand clears it once and evicts the first slot it
// finds unreferenced or expired.
type shard struct {
	mu     sync.RWMutex
	index  map[uint64]int32
	slots  []entry
	filled int // slots[:filled] have been handed out once
	hand   int

	hits, misses, insertions, evictions, expunged, uncacheable, entries atomic.Uint64
	ecsMismatches                                                       atomic.Uint64
	_                                                                   [64]byte // keep hot counters of neighbouring shards apart
}

// New returns an empty cache. Options are corrected rather than rejected
// (Size and Shards at least 1, Shards at most Size, MaximumEntrySize within
// 12..65535); use Options.Validate to report them to the operator.
func New(opts Options) *Cache {
	opts.Size = max(opts.Size, 1)
	opts.Shards = min(max(opts.Shards, 1), opts.Size)
	if opts.MaximumEntrySize < headerLen || opts.MaximumEntrySize > 65535 {
		opts.MaximumEntrySize = min(max(opts.MaximumEntrySize, headerLen), 65535)
	}
	c := &Cache{opts: opts, seed: maphash.MakeSeed(), shards: make([]shard, opts.Shards)}
	per, extra := opts.Size/opts.Shards, opts.Size%opts.Shards
	for i := range c.shards {
		n := per
		if i < extra {
			n++
		}
		c.shards[i].slots = make([]entry, n)
		c.shards[i].index = make(map[uint64]int32, n)
	}
	return c
}

// Options returns the options in effect.
func (c *Cache) Options() Options { return c.opts }

func (c *Cache) shardFor(h uint64) *shard {
	return &c.shards[(h>>32)%uint64(len(c.shards))]
}

// Get appends the cached answer to query to dst and returns it: the query's
// ID and qname case are written into it and, unless DontAge, every TTL
// (OPT excluded) is decremented by the entry's age in whole seconds. It
// does not allocate when cap(dst) suffices. On a miss dst is returned as is.
func (c *Cache) Get(query []byte, dst []byte, now time.Time) ([]byte, bool) {
	var kb [maxKeyLen]byte
	kl, nameEnd, ok := queryKey(query, &kb)
	if !ok {
		c.shards[0].misses.Add(1)
		return dst, false
	}
	return c.lookup(kb[:kl], nameEnd, query, dst, now, true)
}

// lookup is Get with the key built; a miss is counted when countMiss.
func (c *Cache) lookup(key []byte, nameEnd int, query, dst []byte, now time.Time, countMiss bool) ([]byte, bool) {
	h := maphash.Bytes(c.seed, key)
	s := c.shardFor(h)
	nowNs := now.UnixNano()

	s.mu.RLock()
	i, found := s.index[h]
	if !found {
		s.mu.RUnlock()
		if countMiss {
			s.misses.Add(1)
		}
		return dst, false
	}
	e := &s.slots[i]
	if nowNs >= e.expires || string(e.key) != string(key) {
		s.mu.RUnlock()
		if countMiss {
			s.misses.Add(1)
		}
		return dst, false
	}
	if e.ref.Load() == 0 {
		e.ref.Store(1)
	}
	base := len(dst)
	dst = append(dst, e.data...)
	out := dst[base:]
	copy(out[0:2], query[0:2])
	copy(out[headerLen:], query[headerLen:nameEnd])
	if !c.opts.DontAge {
		if age := (nowNs - e.inserted) / int64(time.Second); age > 0 {
			for _, off := range e.ttlOffs {
				ttl := binary.BigEndian.Uint32(out[off:])
				if int64(ttl) > age {
					ttl -= uint32(age)
				} else {
					ttl = 0
				}
				binary.BigEndian.PutUint32(out[off:], ttl)
			}
		}
	}
	s.mu.RUnlock()
	s.hits.Add(1)
	return dst, true
}

// Insert stores response as the answer to query if the rules allow it
// (see docs/backends.md): no TC answers, SERVFAIL and REFUSED for
// TemporaryFailureTTL, NXDOMAIN and NODATA for min(SOA TTL, SOA MINIMUM)
// capped at MaxNegativeTTL, other answers for their lowest TTL capped at
// MaxTTL; lifetimes under MinTTL or of zero are not cached. Neither slice is
// retained.
func (c *Cache) Insert(query, response []byte, now time.Time) {
	c.insert(query, response, now, c.opts.TemporaryFailureTTL)
}

// InsertTempFailureTTL is Insert with tempFailTTL in place of the cache's
// TemporaryFailureTTL for this one answer (a rule's SetTempFailureCacheTTL);
// 0 keeps a SERVFAIL or REFUSED answer out of the cache.
func (c *Cache) InsertTempFailureTTL(query, response []byte, now time.Time, tempFailTTL uint32) {
	c.insert(query, response, now, tempFailTTL)
}

func (c *Cache) insert(query, response []byte, now time.Time, tempFailTTL uint32) {
	var kb [maxKeyLen]byte
	kl, nameEnd, ok := queryKey(query, &kb)
	if !ok {
		c.shards[0].uncacheable.Add(1)
		return
	}
	c.insertKey(kb[:kl], nameEnd, response, now, tempFailTTL)
}

// insertKey stores response under key, the key of a query whose name ends at nameEnd.
func (c *Cache) insertKey(key []byte, nameEnd int, response []byte, now time.Time, tempFailTTL uint32) {
	if len(response) > c.opts.MaximumEntrySize {
		c.shards[0].uncacheable.Add(1)
		return
	}
	h := maphash.Bytes(c.seed, key)
	s := c.shardFor(h)

	// Parse before locking: the write lock is held only to copy. The answer is checked
	// against the question part of the key (name, type, class, flags).
	var offBuf [64]uint16
	ttl, offs, err := analyze(response, key[:nameEnd-headerLen+5], &c.opts, tempFailTTL, offBuf[:0])
	if err != nil || ttl == 0 {
		s.uncacheable.Add(1)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	nowNs := now.UnixNano()
	i, found := s.index[h]
	if !found {
		i = s.allocate(nowNs)
		s.index[h] = i
	}
	e := &s.slots[i]
	e.hash = h
	e.inserted = nowNs
	e.expires = nowNs + int64(ttl)*int64(time.Second)
	e.key = reuse(e.key, key)
	e.data = reuse(e.data, response)
	if cap(e.ttlOffs) >= len(offs) {
		e.ttlOffs = append(e.ttlOffs[:0], offs...)
	} else {
		e.ttlOffs = append([]uint16(nil), offs...)
	}
	e.ref.Store(0)
	s.insertions.Add(1)
}

// reuse copies src into dst's storage when it fits and is not wastefully
// large, so that a full cache replacing entries stops allocating.
func reuse(dst, src []byte) []byte {
	if cap(dst) >= len(src) && cap(dst) <= 2*len(src)+64 {
		return append(dst[:0], src...)
	}
	return append(make([]byte, 0, len(src)), src...)
}

// allocate returns a free slot, evicting one with the CLOCK hand when the
// shard is full. Called with the write lock held.
func (s *shard) allocate(nowNs int64) int32 {
	if s.filled < len(s.slots) {
		s.filled++
		s.entries.Add(1)
		return int32(s.filled - 1)
	}
	// At most two turns: the first clears every ref bit it passes.
	for {
		i := s.hand
		s.hand = (s.hand + 1) % len(s.slots)
		e := &s.slots[i]
		if nowNs < e.expires && e.ref.Load() != 0 {
			e.ref.Store(0)
			continue
		}
		if nowNs >= e.expires {
			s.expunged.Add(1)
		} else {
			s.evictions.Add(1)
		}
		delete(s.index, e.hash)
		return int32(i)
	}
}

// Stats sums the shards' counters. Safe from any goroutine.
func (c *Cache) Stats() Stats {
	var st Stats
	for i := range c.shards {
		s := &c.shards[i]
		st.Hits += s.hits.Load()
		st.Misses += s.misses.Load()
		st.Insertions += s.insertions.Load()
		st.Evictions += s.evictions.Load()
		st.Expunged += s.expunged.Load()
		st.Uncacheable += s.uncacheable.Load()
		st.ECSMismatches += s.ecsMismatches.Load()
		st.Entries += s.entries.Load()
	}
	return st
}
