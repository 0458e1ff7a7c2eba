package rules

import "math/bits"

// nameTable maps lower-cased wire names to small integers. It answers "which stored names
// are suffixes of this query name" with one pass over the name: a rolling hash computed from
// the last byte backwards gives the hash of every suffix that starts at a label boundary, and
// each is looked up in an open-addressing table (linear probing, at most half full), so a
// lookup costs one probe per label whatever the number of names. Built once, then read-only.
type nameTable struct {
	slots     []nameSlot
	shift     uint8
	arena     []byte // the stored names, concatenated
	entries   []nameEntry
	minLabels int
	maxLabels int
}

// nameSlot holds what a lookup needs, so that a probe touches the slot and the stored name
// only: the name's offset in the arena and the entry's value.
type nameSlot struct {
	hash  uint64
	entry uint32 // index+1 into entries; 0 is an empty slot
	off   uint32 // of the name in arena
}

type nameEntry struct {
	off    uint32
	length uint8
	labels uint8
	val    uint32
}

const (
	hashSeed  = 0xcbf29ce484222325
	hashPrime = 0x100000001b3
	fibMul    = 0x9e3779b97f4a7c15
)

// hashWire is the hash nameTable stores: the backwards rolling hash over a whole lower-case name.
func hashWire(lw []byte) uint64 {
	h := uint64(hashSeed)
	for i := len(lw) - 1; i >= 0; i-- {
		h = (h ^ uint64(lw[i])) * hashPrime
	}
	return h
}

func newNameTable() *nameTable {
	return &nameTable{slots: make([]nameSlot, 16), shift: 64 - 4, minLabels: 1 << 30, maxLabels: -1}
}

// insert adds a lower-case wire name with val, or returns the index of the entry that
// already holds it. Callers read and update entries[i].val.
func (t *nameTable) insert(lw []byte, val uint32) int {
	h := hashWire(lw)
	if i, ok := t.find(h, lw); ok {
		return i
	}
	if 2*(len(t.entries)+1) > len(t.slots) {
		t.grow()
	}
	t.entries = append(t.entries, nameEntry{off: uint32(len(t.arena)), length: uint8(len(lw)), labels: uint8(labelCount(lw)), val: val})
	t.arena = append(t.arena, lw...)
	t.place(h, uint32(len(t.entries)))
	l := labelCount(lw)
	t.minLabels = min(t.minLabels, l)
	t.maxLabels = max(t.maxLabels, l)
	return len(t.entries) - 1
}

func (t *nameTable) place(h uint64, e uint32) {
	mask := uint64(len(t.slots) - 1)
	for i := (h * fibMul) >> t.shift; ; i = (i + 1) & mask {
		if t.slots[i].entry == 0 {
			t.slots[i] = nameSlot{hash: h, entry: e, off: t.entries[e-1].off}
			return
		}
	}
}

func (t *nameTable) grow() {
	old := t.slots
	t.slots = make([]nameSlot, 2*len(old))
	t.shift = uint8(64 - bits.TrailingZeros(uint(len(t.slots))))
	for _, s := range old {
		if s.entry != 0 {
			t.place(s.hash, s.entry)
		}
	}
}

// find looks up a name given its hash; name may be in any case.
func (t *nameTable) find(h uint64, name []byte) (int, bool) {
	mask := uint64(len(t.slots) - 1)
	for i := (h * fibMul) >> t.shift; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.entry == 0 {
			return 0, false
		}
		// Equal bytes up to name's root label mean equal names: the stored name's labels
		// then end at the same place.
		if s.hash == h && int(s.off)+len(name) <= len(t.arena) && equalFold(name, t.arena[int(s.off):int(s.off)+len(name)]) {
			return int(s.entry - 1), true
		}
	}
}

// suffixes calls f with the entry index of every stored name that is a suffix of the wire
// name (in any case), from the shortest to the longest, until f returns false. exact tells
// f that the stored name is the whole name.
func (t *nameTable) suffixes(name []byte, f func(entry int, exact bool) bool) {
	if len(t.entries) == 0 || len(name) == 0 {
		return
	}
	var offs [128]uint8
	n := 0
	for off := 0; off < len(name) && name[off] != 0 && n < len(offs); off += 1 + int(name[off]) {
		offs[n] = uint8(off)
		n++
	}
	// offs[j] starts the suffix with n-j labels; the root is the last byte.
	h := uint64(hashSeed)
	i := len(name) - 1
	h = (h ^ uint64(lower(name[i]))) * hashPrime
	if t.minLabels == 0 {
		if e, ok := t.find(h, name[i:]); ok && !f(e, n == 0) {
			return
		}
	}
	for j := n - 1; j >= 0; j-- {
		start := int(offs[j])
		for i--; i >= start; i-- {
			h = (h ^ uint64(lower(name[i]))) * hashPrime
		}
		i = start
		labels := n - j
		if labels < t.minLabels {
			continue
		}
		if labels > t.maxLabels {
			return
		}
		if e, ok := t.find(h, name[start:]); ok && !f(e, j == 0) {
			return
		}
	}
}

// hasSuffix reports whether a stored name is a suffix of name (or name itself).
func (t *nameTable) hasSuffix(name []byte) bool {
	_, ok := t.longestSuffix(name)
	return ok
}

// longestSuffix returns the entry of the longest stored name that is a suffix of name.
func (t *nameTable) longestSuffix(name []byte) (int, bool) {
	if len(t.entries) == 0 || len(name) == 0 {
		return 0, false
	}
	var offs [128]uint8
	n := 0
	for off := 0; off < len(name) && name[off] != 0 && n < len(offs); off += 1 + int(name[off]) {
		offs[n] = uint8(off)
		n++
	}
	// From the shortest suffix to the longest, remembering the last hit: hashing runs
	// backwards, so shorter suffixes come first.
	found, ok := 0, false
	h := uint64(hashSeed)
	i := len(name) - 1
	h = (h ^ uint64(lower(name[i]))) * hashPrime
	if t.minLabels == 0 {
		found, ok = t.find(h, name[i:])
	}
	for j := n - 1; j >= 0; j-- {
		start := int(offs[j])
		for i--; i >= start; i-- {
			h = (h ^ uint64(lower(name[i]))) * hashPrime
		}
		i = start
		labels := n - j
		if labels < t.minLabels {
			continue
		}
		if labels > t.maxLabels {
			break
		}
		if e, hit := t.find(h, name[start:]); hit {
			found, ok = e, true
		}
	}
	return found, ok
}

// lookup finds the whole name.
func (t *nameTable) lookup(name []byte) (int, bool) {
	if len(t.entries) == 0 {
		return 0, false
	}
	h := uint64(hashSeed)
	for i := len(name) - 1; i >= 0; i-- {
		h = (h ^ uint64(lower(name[i]))) * hashPrime
	}
	return t.find(h, name)
}

// SuffixSet is a set of domain names matched as suffixes of query names (dnsdist's
// SuffixMatchNode): "example.com." matches example.com and every name below it.
// It is immutable once built and safe for concurrent reads.
type SuffixSet struct{ t *nameTable }

// NewSuffixSet builds a set from names in presentation form.
func NewSuffixSet(names []string) (*SuffixSet, error) {
	t := newNameTable()
	for _, n := range names {
		w, err := nameToWire(n)
		if err != nil {
			return nil, err
		}
		t.insert(w, 0)
	}
	return &SuffixSet{t}, nil
}

// Match reports whether the wire name is in the set or below a name of the set.
func (s *SuffixSet) Match(wire []byte) bool { return s.t.hasSuffix(wire) }

// Len returns the number of names.
func (s *SuffixSet) Len() int { return len(s.t.entries) }
