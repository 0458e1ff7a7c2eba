package rules

import (
	"sync"
)

// maxDynQTypes bounds the query types that qtype-rate rules can watch.
const maxDynQTypes = 8

// maxTrackedPerLoop bounds the clients (at the finest mask) a loop counts in one second. A
// flood from spoofed sources must not grow the counters without limit; clients past the bound
// are not counted in that second (dnsfront_dynblock_untracked_total).
const maxTrackedPerLoop = 1 << 18

// clientCount is what a loop counts for one client network in one second.
type clientCount struct {
	key         clientKey
	queries     uint32
	responses   uint32
	bytes       uint64
	cacheHits   uint32
	cacheMisses uint32
	rcodes      [16]uint32
	qtypes      [maxDynQTypes]uint32
}

func (c *clientCount) add(o *clientCount) {
	c.queries += o.queries
	c.responses += o.responses
	c.bytes += o.bytes
	c.cacheHits += o.cacheHits
	c.cacheMisses += o.cacheMisses
	for i := range c.rcodes {
		c.rcodes[i] += o.rcodes[i]
	}
	for i := range c.qtypes {
		c.qtypes[i] += o.qtypes[i]
	}
}

func (c *clientCount) sub(o *clientCount) {
	c.queries -= o.queries
	c.responses -= o.responses
	c.bytes -= o.bytes
	c.cacheHits -= o.cacheHits
	c.cacheMisses -= o.cacheMisses
	for i := range c.rcodes {
		c.rcodes[i] -= o.rcodes[i]
	}
	for i := range c.qtypes {
		c.qtypes[i] -= o.qtypes[i]
	}
}

func (c *clientCount) zero() bool { return c.queries == 0 && c.responses == 0 }

// suffixCount counts the responses for names under one suffix in one second.
type suffixCount struct {
	rule   int // index of the suffix-match rule (its labels and rcode)
	count  uint32
	nameAt int // offset of the name in the loop's arena while counting
	nameLn int
}

// window is one loop's counters for the current second. The loop writes it under mu; the
// evaluator swaps it for an empty one once a second, so the lock is contended only then.
type window struct {
	clients   []clientCount
	index     winIndex
	suffixes  []suffixCount
	sIndex    map[uint64]int32
	arena     []byte
	untracked uint64
}

func newWindow() *window {
	return &window{sIndex: make(map[uint64]int32)}
}

func (w *window) reset() {
	w.clients = w.clients[:0]
	w.index.reset()
	w.suffixes = w.suffixes[:0]
	clear(w.sIndex)
	w.arena = w.arena[:0]
	w.untracked = 0
}

// client returns the counters of k, or nil past the tracking bound.
func (w *window) client(k clientKey) *clientCount {
	slot := w.index.find(k)
	if slot.gen == w.index.gen {
		return &w.clients[slot.idx]
	}
	if len(w.clients) >= maxTrackedPerLoop {
		w.untracked++
		return nil
	}
	*slot = winSlot{k: k, idx: int32(len(w.clients)), gen: w.index.gen}
	w.clients = append(w.clients, clientCount{key: k})
	w.index.added(w.clients)
	return &w.clients[len(w.clients)-1]
}

// suffix counts one response under the suffix of name selected by rule r.
func (w *window) suffix(rule int, name []byte, h uint64) {
	h ^= uint64(rule) * fibMul
	if i, ok := w.sIndex[h]; ok {
		s := &w.suffixes[i]
		if s.rule == rule && equalFold(name, w.arena[s.nameAt:s.nameAt+s.nameLn]) {
			s.count++
			return
		}
	}
	if len(w.suffixes) >= maxTrackedPerLoop {
		w.untracked++
		return
	}
	at := len(w.arena)
	for _, b := range name {
		w.arena = append(w.arena, lower(b))
	}
	w.sIndex[h] = int32(len(w.suffixes))
	w.suffixes = append(w.suffixes, suffixCount{rule: rule, count: 1, nameAt: at, nameLn: len(name)})
}

// loopCounters is one loop's pair of windows, padded against false sharing with neighbours.
type loopCounters struct {
	mu    sync.Mutex
	cur   *window
	spare *window
	_     [40]byte
}

// winIndex maps client keys to their counters in a window: open addressing with a
// generation number per slot, so that emptying the index once a second is one increment,
// not a clear of the table, and a lookup costs one or two cache lines.
type winIndex struct {
	slots []winSlot
	shift uint8
	gen   uint32
	n     int
}

type winSlot struct {
	k   clientKey
	idx int32
	gen uint32 // the slot is in use when gen equals the index's
}

func (x *winIndex) reset() {
	x.gen++
	x.n = 0
}

// find returns the slot of k, or the empty slot where k goes.
func (x *winIndex) find(k clientKey) *winSlot {
	if x.slots == nil {
		x.slots, x.shift, x.gen = make([]winSlot, 1024), 64-10, 1
	}
	mask := uint64(len(x.slots) - 1)
	for i := k.hash() >> x.shift; ; i = (i + 1) & mask {
		s := &x.slots[i]
		if s.gen != x.gen || s.k == k {
			return s
		}
	}
}

// added records an insertion and grows the table past half full, from the counters.
func (x *winIndex) added(clients []clientCount) {
	x.n++
	if 2*x.n <= len(x.slots) {
		return
	}
	x.slots = make([]winSlot, 2*len(x.slots))
	x.shift--
	x.gen = 1
	for i := range clients {
		*x.find(clients[i].key) = winSlot{k: clients[i].key, idx: int32(i), gen: 1}
	}
}
