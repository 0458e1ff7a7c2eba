package rules

import (
	"math/bits"
	"net/netip"
	"sync/atomic"
	"time"
)

// BlockAction is what a dynamic block does to the queries it catches.
type BlockAction uint8

const (
	BlockDrop BlockAction = iota
	BlockNoOp
	BlockNoRecurse
	BlockNXDomain
	BlockRefused
	BlockTruncate
	BlockSetTag
)

var blockActionNames = [...]string{"Drop", "NoOp", "NoRecurse", "NXDomain", "Refused", "Truncate", "SetTag"}

func (a BlockAction) String() string {
	if int(a) < len(blockActionNames) {
		return blockActionNames[a]
	}
	return "unknown"
}

// ParseBlockAction reads dnsdist's name of a dynamic block action (case-insensitive).
func ParseBlockAction(s string) (BlockAction, bool) {
	for i, n := range blockActionNames {
		if equalASCIIFold(n, s) {
			return BlockAction(i), true
		}
	}
	if equalASCIIFold(s, "NoNop") { // dnsdist's documented spelling of NoOp
		return BlockNoOp, true
	}
	return 0, false
}

func equalASCIIFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

// Block is one dynamic block: a client network or a domain suffix, an action and an expiry.
// A Block is immutable once published, except for its hit counters.
type Block struct {
	// Prefix is the blocked client network; Suffix (presentation form) the blocked domain.
	Prefix netip.Prefix
	Suffix string
	Action BlockAction
	// TagName and TagValue are set by SetTag blocks.
	TagName, TagValue string
	Reason            string // the rule's comment, or the API caller's reason
	Group, Rule       string // where it came from ("api" for blocks added by hand)
	Warning           bool   // a warning only: listed and logged, never applied
	Since             int64  // clock nanos
	Until             int64  // clock nanos; the block stops applying at Until
	hits              []hitCounter
	// except holds the group's exclude and include ranges: a client the block's network
	// covers but the group excludes keeps its service.
	except *rangeList
}

// Hits returns the number of queries the block caught.
func (b *Block) Hits() uint64 {
	var n uint64
	for i := range b.hits {
		n += b.hits[i].Load()
	}
	return n
}

// key identifies a block: the network or the suffix.
func (b *Block) key() string {
	if b.Suffix != "" {
		return "suffix:" + b.Suffix
	}
	return b.Prefix.String()
}

// BlockSet is a published, immutable set of blocks that loops read without locks.
type BlockSet struct {
	tables   []blockTable
	suffixes *nameTable // entry.val indexes suffixBlk
	suffixBk []*Block
	n        int
}

// blockTable holds the blocks of one family and prefix length in an open-addressing table
// (linear probing, at most half full): built once, read by every loop, one or two cache
// lines per lookup.
type blockTable struct {
	v6    bool
	bits  int
	slots []blockSlot
	shift uint8
	n     int
}

type blockSlot struct {
	k clientKey
	b *Block // nil: empty
}

func (k clientKey) hash() uint64 { return (k.hi*fibMul ^ k.lo) * fibMul }

func (t *blockTable) put(k clientKey, b *Block) {
	if 2*(t.n+1) > len(t.slots) {
		old := t.slots
		size := max(16, 2*len(old))
		t.slots = make([]blockSlot, size)
		t.shift = uint8(64 - bits.TrailingZeros(uint(size)))
		t.n = 0
		for _, s := range old {
			if s.b != nil {
				t.put(s.k, s.b)
			}
		}
	}
	mask := uint64(len(t.slots) - 1)
	for i := k.hash() >> t.shift; ; i = (i + 1) & mask {
		switch {
		case t.slots[i].b == nil:
			t.slots[i] = blockSlot{k, b}
			t.n++
			return
		case t.slots[i].k == k:
			t.slots[i].b = b
			return
		}
	}
}

func (t *blockTable) get(k clientKey) *Block {
	mask := uint64(len(t.slots) - 1)
	for i := k.hash() >> t.shift; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.b == nil || s.k == k {
			return s.b
		}
	}
}

func newBlockSet(blocks []*Block) *BlockSet {
	s := &BlockSet{}
	for _, b := range blocks {
		if b.Warning {
			continue
		}
		s.n++
		if b.Suffix != "" {
			if s.suffixes == nil {
				s.suffixes = newNameTable()
			}
			w, err := nameToWire(b.Suffix)
			if err != nil {
				continue
			}
			e := s.suffixes.insert(w, uint32(len(s.suffixBk)))
			if int(s.suffixes.entries[e].val) == len(s.suffixBk) {
				s.suffixBk = append(s.suffixBk, b)
			}
			continue
		}
		v6 := b.Prefix.Addr().Is6()
		var t *blockTable
		for i := range s.tables {
			if s.tables[i].v6 == v6 && s.tables[i].bits == b.Prefix.Bits() {
				t = &s.tables[i]
			}
		}
		if t == nil {
			s.tables = append(s.tables, blockTable{v6: v6, bits: b.Prefix.Bits()})
			t = &s.tables[len(s.tables)-1]
		}
		t.put(maskedKey(b.Prefix.Addr(), b.Prefix.Bits(), b.Prefix.Bits()), b)
	}
	return s
}

// Len returns the number of blocks that apply (warnings excluded).
func (s *BlockSet) Len() int { return s.n }

// Lookup returns the block that catches q at now (on the DynBlocks clock), or nil: the
// client's networks first, then the query name's suffixes. the clock is read only on a hit.
func (s *BlockSet) Lookup(q *Query, clock Clock) *Block {
	if s == nil || s.n == 0 {
		return nil
	}
	v6 := !(q.Client.Is4() || q.Client.Is4In6())
	for i := range s.tables {
		t := &s.tables[i]
		if t.v6 != v6 {
			continue
		}
		if b := t.get(maskedKey(q.Client, t.bits, t.bits)); b != nil && clock.Nanos() < b.Until && !b.excluded(q.Client) {
			return b
		}
	}
	if s.suffixes != nil {
		if e, ok := s.suffixes.longestSuffix(q.QName); ok {
			if b := s.suffixBk[s.suffixes.entries[e].val]; clock.Nanos() < b.Until {
				return b
			}
		}
	}
	return nil
}

// blockSetPtr is the published block set.
type blockSetPtr = atomic.Pointer[BlockSet]

// apply turns a block into the verdict: Drop, Refused and NXDomain answer; Truncate answers
// UDP queries with TC and lets stream queries through; NoRecurse and SetTag change the query
// and let the rules run. It reports whether the verdict is final.
func (b *Block) apply(q *Query, v *Verdict) bool {
	loop := q.Loop
	if loop < 0 || loop >= len(b.hits) {
		loop = 0
	}
	b.hits[loop].Add(1)
	switch b.Action {
	case BlockDrop:
		v.Kind = KindDrop
	case BlockRefused:
		v.Kind, v.RCode = KindRCode, 5
	case BlockNXDomain:
		v.Kind, v.RCode = KindRCode, 3
	case BlockTruncate:
		if q.Proto != DoUDP {
			return false
		}
		v.Kind = KindTruncate
	case BlockNoRecurse:
		v.NoRecurse = true
		return false
	case BlockSetTag:
		q.Tags.Set(b.TagName, b.TagValue)
		return false
	default:
		return false
	}
	v.RuleName = "dynamic block"
	return true
}

// remaining is the time a block has left at now.
func (b *Block) remaining(now int64) time.Duration {
	return time.Duration(max(b.Until-now, 0))
}

func (b *Block) excluded(a netip.Addr) bool {
	if b.except == nil {
		return false
	}
	inc, found := b.except.lookup(a)
	return found && !inc
}

// all returns every block of the set.
func (s *BlockSet) all() []*Block {
	var out []*Block
	for i := range s.tables {
		for _, sl := range s.tables[i].slots {
			if sl.b != nil {
				out = append(out, sl.b)
			}
		}
	}
	return append(out, s.suffixBk...)
}
