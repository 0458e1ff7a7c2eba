package rules

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
	"sort"
)

// NetmaskGroup is a set of networks (dnsdist's NetmaskGroup). The prefixes are merged into
// sorted, disjoint address ranges; a lookup is a binary search, narrowed first by a table
// indexed by the address's top 16 bits when the group is large, so a million prefixes cost
// one table read and a search over a handful of ranges. Immutable once built.
type NetmaskGroup struct {
	v4    []range4
	v6    []range6
	idx4  []uint32 // len 65537 when built: idx4[k] is the first range whose end is ≥ k<<16
	idx6  []uint32
	count int
}

type range4 struct{ lo, hi uint32 }

type range6 struct{ lo, hi u128 }

type u128 struct{ hi, lo uint64 }

func (a u128) cmp(b u128) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
}

func (a u128) next() u128 {
	if a.lo == ^uint64(0) {
		return u128{a.hi + 1, 0}
	}
	return u128{a.hi, a.lo + 1}
}

func addr128(a netip.Addr) u128 {
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// indexThreshold is the group size above which the 16-bit index pays for its 256 KiB.
const indexThreshold = 256

// NewNetmaskGroup builds a group. IPv4-mapped IPv6 prefixes count as IPv4.
func NewNetmaskGroup(prefixes []netip.Prefix) *NetmaskGroup {
	g := &NetmaskGroup{count: len(prefixes)}
	var r4 []range4
	var r6 []range6
	for _, p := range prefixes {
		p = p.Masked()
		a := p.Addr()
		bitsLen := p.Bits()
		if a.Is4In6() {
			a = a.Unmap()
			bitsLen = max(bitsLen-96, 0)
		}
		if a.Is4() {
			lo := binary.BigEndian.Uint32(a.AsSlice())
			hi := lo | uint32(uint64(1)<<(32-bitsLen)-1)
			r4 = append(r4, range4{lo, hi})
			continue
		}
		lo := addr128(a)
		hi := lo
		if host := 128 - bitsLen; host >= 64 {
			hi.hi |= uint64(1)<<(host-64) - 1
			hi.lo = ^uint64(0)
			if host == 128 {
				hi.hi = ^uint64(0)
			}
		} else if host > 0 {
			hi.lo |= uint64(1)<<host - 1
		}
		r6 = append(r6, range6{lo, hi})
	}
	slices.SortFunc(r4, func(a, b range4) int { return cmp.Compare(a.lo, b.lo) })
	for _, r := range r4 {
		if n := len(g.v4); n > 0 && (g.v4[n-1].hi == ^uint32(0) || r.lo <= g.v4[n-1].hi+1) {
			g.v4[n-1].hi = max(g.v4[n-1].hi, r.hi)
			continue
		}
		g.v4 = append(g.v4, r)
	}
	slices.SortFunc(r6, func(a, b range6) int { return a.lo.cmp(b.lo) })
	for _, r := range r6 {
		if n := len(g.v6); n > 0 && (g.v6[n-1].hi == u128{^uint64(0), ^uint64(0)} || r.lo.cmp(g.v6[n-1].hi.next()) <= 0) {
			if r.hi.cmp(g.v6[n-1].hi) > 0 {
				g.v6[n-1].hi = r.hi
			}
			continue
		}
		g.v6 = append(g.v6, r)
	}
	if len(g.v4) > indexThreshold {
		g.idx4 = make([]uint32, 65537)
		for k := range g.idx4 {
			x := uint32(k) << 16
			if k == 65536 {
				g.idx4[k] = uint32(len(g.v4))
				continue
			}
			g.idx4[k] = uint32(sort.Search(len(g.v4), func(i int) bool { return g.v4[i].hi >= x }))
		}
	}
	if len(g.v6) > indexThreshold {
		g.idx6 = make([]uint32, 65537)
		for k := range g.idx6 {
			x := uint64(k) << 48
			if k == 65536 {
				g.idx6[k] = uint32(len(g.v6))
				continue
			}
			g.idx6[k] = uint32(sort.Search(len(g.v6), func(i int) bool { return g.v6[i].hi.hi >= x }))
		}
	}
	return g
}

// Len returns the number of prefixes the group was built from.
func (g *NetmaskGroup) Len() int { return g.count }

// Contains reports whether a is inside one of the group's networks.
func (g *NetmaskGroup) Contains(a netip.Addr) bool {
	if a.Is4() || a.Is4In6() {
		b := a.As16()
		x := binary.BigEndian.Uint32(b[12:])
		r := g.v4
		if g.idx4 != nil {
			k := x >> 16
			r = r[g.idx4[k]:min(int(g.idx4[k+1])+1, len(r))]
		}
		// First range whose end is ≥ x.
		lo, hi := 0, len(r)
		for lo < hi {
			m := int(uint(lo+hi) >> 1)
			if r[m].hi < x {
				lo = m + 1
			} else {
				hi = m
			}
		}
		return lo < len(r) && r[lo].lo <= x
	}
	if !a.Is6() {
		return false
	}
	x := addr128(a)
	r := g.v6
	if g.idx6 != nil {
		k := x.hi >> 48
		r = r[g.idx6[k]:min(int(g.idx6[k+1])+1, len(r))]
	}
	lo, hi := 0, len(r)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if r[m].hi.cmp(x) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo < len(r) && r[lo].lo.cmp(x) <= 0
}

// rangeList answers "which of these few prefixes is the most specific one holding a",
// for dynamic-block include and exclude ranges. Sorted longest first.
type rangeList struct {
	prefixes []netip.Prefix
	include  []bool
}

func (l *rangeList) add(p netip.Prefix, include bool) {
	l.prefixes = append(l.prefixes, p.Masked())
	l.include = append(l.include, include)
	for i := len(l.prefixes) - 1; i > 0 && l.prefixes[i].Bits() > l.prefixes[i-1].Bits(); i-- {
		l.prefixes[i], l.prefixes[i-1] = l.prefixes[i-1], l.prefixes[i]
		l.include[i], l.include[i-1] = l.include[i-1], l.include[i]
	}
}

// lookup returns whether the most specific prefix holding a is an include range, and
// whether any holds it.
func (l *rangeList) lookup(a netip.Addr) (include, found bool) {
	for i, p := range l.prefixes {
		if p.Contains(a) {
			return l.include[i], true
		}
	}
	return false, false
}
