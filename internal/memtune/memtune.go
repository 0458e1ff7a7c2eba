// Package memtune paces Go's garbage collector for a server whose live heap
// ranges from a few megabytes (a burst of TLS handshakes, each allocating
// tens of kilobytes that die at once) to gigabytes (a million idle
// connections).
//
// Go's own pacer lets the heap grow by GOGC percent of the live heap before
// it collects, with a floor of 4 MB × GOGC/100. One GOGC cannot serve both
// ends: a high one (400) spares the collector during handshake bursts but
// lets the process hold five times its live heap once connections pile up;
// a low one (100) bounds memory but collects every few hundred handshakes
// while the heap is small. The Tuner keeps both: the heap may grow by
// max(live × Percent/100, MinHeadroom) before a collection, so a small heap
// gets a fixed, generous headroom and a large one a proportional, bounded one.
//
// It also returns memory once the process goes quiet: an idle server makes
// no garbage, so no collection runs and the garbage of the last burst stays
// resident for minutes. After IdleRelease without a collection, while the
// process holds noticeably more than its live heap, the Tuner collects once
// and returns the freed pages to the kernel.
//
// Concurrency rule: one goroutine owns the Tuner's state; the collector
// reaches it through a finalizer that only signals a channel.
package memtune

import (
	"log/slog"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Tuner. Zero values take the defaults noted.
type Options struct {
	// Percent is the headroom as a percentage of the live heap once the
	// heap is large (GOGC). 0: 100; -1 turns the collector off and the
	// Tuner does nothing else.
	Percent int
	// MinHeadroom is the smallest headroom in bytes: the collector waits for
	// at least this much new allocation. 0: 32 MiB.
	MinHeadroom uint64
	// IdleRelease is how long the process must go without a collection
	// before memory is returned. 0: 10 s; negative: never.
	IdleRelease time.Duration
	Log         *slog.Logger
}

// Default values, and why.
const (
	// A handshake allocates about 40 kB that dies within the handshake:
	// with 16 MiB of headroom the collector runs once per ~400 handshakes
	// whatever the live heap, which is what GOGC=400 bought while the heap
	// was small, and the same pages are reused while they are warm in the
	// cache. A heap of 10,000 idle DoT connections (about 75 MB live) is
	// paced by Percent instead, so it peaks at twice its live size, not five
	// times. More headroom is slower, not faster: every fresh page is a
	// page fault and a kernel zeroing.
	DefaultMinHeadroom = 16 << 20
	DefaultPercent     = 100
	// Long enough that a server between two bursts is not made to collect,
	// short enough that an operator sees memory fall soon after a ramp.
	DefaultIdleRelease = 10 * time.Second
	// Release only when the process holds this much more than its live heap
	// (a quarter, and at least 4 MiB): below that a forced collection costs
	// more than the pages are worth.
	releaseSlackFraction = 4
	releaseSlackMin      = 4 << 20
)

// Tuner adjusts the collector's target after every collection.
type Tuner struct {
	o       Options
	update  chan updateReq
	gcDone  chan struct{}
	stop    chan struct{}
	stopped sync.WaitGroup
	samples []metrics.Sample

	percent  atomic.Int64 // last value given to debug.SetGCPercent; read by Percent
	cycles   uint64       // collections seen at the last idle check
	released uint64       // collections seen right after our own release
}

const (
	mLive    = "/gc/heap/live:bytes"
	mCycles  = "/gc/cycles/total:gc-cycles"
	mObjects = "/memory/classes/heap/objects:bytes"
	mUnused  = "/memory/classes/heap/unused:bytes"
	mFree    = "/memory/classes/heap/free:bytes" // free and not yet returned to the kernel
)

// Start applies o and runs the Tuner until Stop.
func Start(o Options) *Tuner {
	if o.Percent == 0 {
		o.Percent = DefaultPercent
	}
	if o.MinHeadroom == 0 {
		o.MinHeadroom = DefaultMinHeadroom
	}
	if o.IdleRelease == 0 {
		o.IdleRelease = DefaultIdleRelease
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	t := &Tuner{
		o:      o,
		update: make(chan updateReq),
		gcDone: make(chan struct{}, 1),
		stop:   make(chan struct{}),
		samples: []metrics.Sample{
			{Name: mLive}, {Name: mCycles}, {Name: mObjects}, {Name: mUnused}, {Name: mFree},
		},
	}
	if o.Percent < 0 {
		debug.SetGCPercent(-1)
		return t
	}
	t.retune()
	armSentinel(t.gcDone, t.stop)
	t.stopped.Add(1)
	go t.run()
	return t
}

// Stop ends the Tuner. The collector keeps the last target it was given.
func (t *Tuner) Stop() {
	select {
	case <-t.stop:
		return
	default:
	}
	close(t.stop)
	t.stopped.Wait()
}

// Update changes Percent and MinHeadroom (a reload); zero values keep the
// current ones. The new target applies at once.
func (t *Tuner) Update(percent int, minHeadroom uint64) {
	if t.o.Percent < 0 {
		return // the collector is off for this process's life
	}
	req := updateReq{Options{Percent: percent, MinHeadroom: minHeadroom}, make(chan struct{})}
	select {
	case t.update <- req:
		<-req.done
	case <-t.stop:
	}
}

type updateReq struct {
	o    Options
	done chan struct{}
}

// Percent returns the GC percent currently in force.
func (t *Tuner) Percent() int { return int(t.percent.Load()) }

func (t *Tuner) run() {
	defer t.stopped.Done()
	var tick <-chan time.Time
	if t.o.IdleRelease > 0 {
		tk := time.NewTicker(t.o.IdleRelease)
		defer tk.Stop()
		tick = tk.C
	}
	for {
		select {
		case <-t.stop:
			return
		case <-t.gcDone:
			t.retune()
		case u := <-t.update:
			if u.o.Percent > 0 {
				t.o.Percent = u.o.Percent
			}
			if u.o.MinHeadroom > 0 {
				t.o.MinHeadroom = u.o.MinHeadroom
			}
			t.percent.Store(0) // apply even a small change
			t.retune()
			close(u.done)
		case <-tick:
			t.idleCheck()
		}
	}
}

// read returns the live heap at the last collection, the number of
// collections so far, and the heap memory the process holds (objects live
// or dead, fragmentation, and free pages not yet returned to the kernel).
func (t *Tuner) read() (live, cycles, retained uint64) {
	metrics.Read(t.samples)
	live = t.samples[0].Value.Uint64()
	cycles = t.samples[1].Value.Uint64()
	retained = t.samples[2].Value.Uint64() + t.samples[3].Value.Uint64() + t.samples[4].Value.Uint64()
	return live, cycles, retained
}

// retune sets the percent that gives max(live × Percent/100, MinHeadroom)
// of headroom over the live heap the last collection found.
func (t *Tuner) retune() {
	live, _, _ := t.read()
	p := Target(live, t.o.Percent, t.o.MinHeadroom)
	// Small moves are noise between two collections of a steady heap.
	if cur := t.Percent(); cur != 0 && p*20 > cur*19 && p*20 < cur*21 {
		return
	}
	t.percent.Store(int64(p))
	debug.SetGCPercent(p)
}

// Target is the GC percent that gives a heap of live bytes
// max(live × percent/100, minHeadroom) of headroom.
//
// The runtime also holds the heap to a minimum of 4 MiB × percent/100
// before it collects at all. A percent raised for a small heap would raise
// that minimum with it (3,200 percent: 128 MiB of fresh pages, each one
// faulted in and zeroed by the kernel, which costs more than the
// collections it saves), so the percent is capped where that minimum
// equals live + minHeadroom.
func Target(live uint64, percent int, minHeadroom uint64) int {
	const runtimeHeapMinimum = 4 << 20
	if live == 0 {
		live = 1 << 20
	}
	floor := minHeadroom * 100 / live
	ceiling := (live + minHeadroom) * 100 / runtimeHeapMinimum
	return int(max(uint64(percent), min(floor, ceiling)))
}

// idleCheck returns memory to the kernel when no collection has run since
// the last check (nothing is allocating) and the process holds noticeably
// more than its live heap.
func (t *Tuner) idleCheck() {
	live, cycles, retained := t.read()
	quiet := cycles == t.cycles || cycles == t.released
	t.cycles = cycles
	slack := max(live/releaseSlackFraction, releaseSlackMin)
	if !quiet || retained <= live+slack {
		return
	}
	start := time.Now()
	debug.FreeOSMemory()
	_, t.released, _ = t.read()
	t.cycles = t.released
	_, _, after := t.read()
	t.o.Log.Debug("returned idle memory to the kernel", "retained_before", retained, "retained_after", after, "live", live, "took", time.Since(start))
}

// armSentinel calls back after every collection: an unreachable object's
// finalizer runs after the cycle that found it dead, and re-arms a new one.
func armSentinel(done chan<- struct{}, stop <-chan struct{}) {
	s := new(sentinel)
	runtime.SetFinalizer(s, func(*sentinel) {
		select {
		case <-stop:
			return
		default:
		}
		select {
		case done <- struct{}{}:
		default: // a signal is already pending: one retune covers both
		}
		armSentinel(done, stop)
	})
}

// sentinel has a field so that it is a real allocation: finalizers on
// zero-sized objects may never run.
type sentinel struct{ _ [16]byte }
