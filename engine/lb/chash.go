package lb

import (
	"slices"
	"strconv"
)

// The consistent-hash ring. Each backend owns points on a 64-bit circle, a
// number proportional to its weight (pointsPerWeight per unit, scaled down
// when the ring would exceed maxRingPoints, at least one each); a point's
// position is a hash of the backend's name and the point's index, so it does
// not depend on the other backends or on configuration order. A query goes to
// the owner of the first point at or after its qname hash, clockwise; when
// that owner is down, to the next point's owner that is up. A backend going
// down therefore moves only its own names, spread over the others in
// proportion to their points, and they come back when it does.
const (
	pointsPerWeight = 100
	maxRingPoints   = 1 << 20
)

type ring struct {
	hashes []uint64   // sorted positions
	owners []*Backend // owners[i] owns hashes[i]
}

func newRing(bs []*Backend) *ring {
	var total uint64
	for _, b := range bs {
		total += uint64(b.Config.Weight) * pointsPerWeight
	}
	scale := 1.0
	if total > maxRingPoints {
		scale = float64(maxRingPoints) / float64(total)
	}
	type point struct {
		h uint64
		b *Backend
	}
	var pts []point
	for _, b := range bs {
		n := max(int(float64(uint64(b.Config.Weight)*pointsPerWeight)*scale), 1)
		for i := range n {
			pts = append(pts, point{HashQName([]byte(b.Name + "#" + strconv.Itoa(i))), b})
		}
	}
	slices.SortFunc(pts, func(a, b point) int {
		switch {
		case a.h < b.h:
			return -1
		case a.h > b.h:
			return 1
		}
		return a.b.ID - b.b.ID
	})
	r := &ring{hashes: make([]uint64, len(pts)), owners: make([]*Backend, len(pts))}
	for i, p := range pts {
		r.hashes[i], r.owners[i] = p.h, p.b
	}
	return r
}

// ConsistentHash picks by qname hash on a ring built once per pool; it is
// stateless and shared by every loop.
type ConsistentHash struct{ ring *ring }

func (p *ConsistentHash) Pick(bs []*Backend, _ LoopView, h uint64) *Backend {
	anyUp := false
	for _, b := range bs {
		if b.Up() {
			anyUp = true
			break
		}
	}
	r := p.ring
	n := len(r.hashes)
	if !anyUp || n == 0 {
		return nil
	}
	lo, hi := 0, n // first index with hashes[i] >= h
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if r.hashes[m] < h {
			lo = m + 1
		} else {
			hi = m
		}
	}
	for i := range n {
		if b := r.owners[(lo+i)%n]; b.Up() {
			return b
		}
	}
	return nil
}
