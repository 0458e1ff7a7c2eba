package bench

import (
	"math"
	"math/bits"
	"time"
)

// histogram records latencies in nanoseconds in log-linear buckets: 64
// buckets per power of two, so a percentile read back is within 1/64 (1.6%)
// of the true value. Recording is a few instructions and never allocates,
// which matters because the load generator shares the CPU with the server it
// measures; a sorted slice of samples would cost memory proportional to the
// run length. A histogram belongs to one worker goroutine; merge them after
// the workers have stopped.
type histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    float64
	min    int64
	max    int64
}

const (
	histSubBits = 6
	histSub     = 1 << histSubBits
	histBuckets = 64 * histSub
)

func histIndex(v int64) int {
	if v < histSub {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	msb := bits.Len64(uint64(v)) - 1
	shift := msb - histSubBits
	sub := int(uint64(v) >> uint(shift))
	return (shift+1)*histSub + sub - histSub
}

// histValue returns the middle of bucket i.
func histValue(i int) int64 {
	if i < histSub {
		return int64(i)
	}
	shift := i/histSub - 1
	sub := int64(i%histSub + histSub)
	low := sub << uint(shift)
	return low + (int64(1)<<uint(shift))/2
}

func (h *histogram) record(d time.Duration) {
	v := int64(d)
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
	h.counts[histIndex(v)]++
}

func (h *histogram) merge(o *histogram) {
	if o.n == 0 {
		return
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
	for i, c := range o.counts {
		h.counts[i] += c
	}
}

// quantile returns the latency below which a fraction q of the samples lie.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if q >= 1 {
		return time.Duration(h.max)
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := histValue(i)
			// The bucket midpoint may lie outside what was observed.
			v = max(v, h.min)
			v = min(v, h.max)
			return time.Duration(v)
		}
	}
	return time.Duration(h.max)
}

// summary converts the histogram into the report's latency block.
func (h *histogram) summary() Latency {
	if h.n == 0 {
		return Latency{}
	}
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	return Latency{
		Samples: h.n,
		MinUS:   us(time.Duration(h.min)),
		MeanUS:  h.sum / float64(h.n) / 1e3,
		P50US:   us(h.quantile(0.50)),
		P90US:   us(h.quantile(0.90)),
		P99US:   us(h.quantile(0.99)),
		MaxUS:   us(time.Duration(h.max)),
	}
}
