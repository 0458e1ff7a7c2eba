package memtune

import (
	"log/slog"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestTarget(t *testing.T) {
	const MiB = 1 << 20
	for _, c := range []struct {
		live  uint64
		pct   int
		floor uint64
		want  int
	}{
		{live: 8 * MiB, pct: 100, floor: 16 * MiB, want: 200},  // small heap: the floor rules
		{live: 64 * MiB, pct: 100, floor: 16 * MiB, want: 100}, // large heap: the percent rules
		{live: 16 * MiB, pct: 100, floor: 16 * MiB, want: 100}, // the crossover
		{live: 200 * MiB, pct: 50, floor: 16 * MiB, want: 50},  // an operator's lower percent
		// A tiny heap: the floor asks 1,600 percent, but the runtime's own
		// minimum (4 MiB × percent/100) must not exceed live + floor.
		{live: 1 * MiB, pct: 100, floor: 16 * MiB, want: 425},
		{live: 0, pct: 100, floor: 16 * MiB, want: 425}, // before the first collection
		{live: 2 * MiB, pct: 400, floor: 16 * MiB, want: 450},
	} {
		if got := Target(c.live, c.pct, c.floor); got != c.want {
			t.Errorf("Target(%d MiB, %d, %d MiB) = %d, want %d", c.live/MiB, c.pct, c.floor/MiB, got, c.want)
		}
	}
}

// After each collection the tuner sets the percent that gives the heap its
// floor of headroom; the test waits on the collector, never on a clock.
func TestTunerRetunesAfterCollection(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	// A floor so large that the percent is the ceiling, whatever the live heap.
	tu := Start(Options{Percent: 100, MinHeadroom: 1 << 40, IdleRelease: -1})
	defer tu.Stop()
	deadline := time.Now().Add(30 * time.Second)
	for tu.Percent() < 1<<40*100/(4<<20) {
		if time.Now().After(deadline) {
			t.Fatalf("percent %d after collections, want at least %d", tu.Percent(), 1<<40*100/(4<<20))
		}
		runtime.GC()
		runtime.Gosched()
	}
	if got := debug.SetGCPercent(100); got != tu.Percent() {
		t.Errorf("runtime's GC percent %d, want %d", got, tu.Percent())
	}
}

// With the collector off the tuner only turns it off.
func TestTunerOff(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	tu := Start(Options{Percent: -1})
	defer tu.Stop()
	if got := debug.SetGCPercent(100); got != -1 {
		t.Errorf("GC percent %d, want -1", got)
	}
}

// idleCheck returns memory only when no collection ran since the last check
// and the process holds more than its live heap plus the slack.
func TestIdleCheckReleasesOnlyWhenQuiet(t *testing.T) {
	old := debug.SetGCPercent(-1) // no collection may run but ours
	tu := Start(Options{Percent: -1, Log: slog.New(slog.DiscardHandler)})
	defer debug.SetGCPercent(old)

	allocate64MiB()
	runtime.GC() // the 64 MiB are free but still retained

	_, cycles, _ := tu.read()
	tu.cycles = cycles - 1 // a collection ran since the "last check": not quiet
	tu.idleCheck()
	if _, c, _ := tu.read(); c != cycles {
		t.Fatalf("idleCheck collected while the process was busy")
	}
	_, _, before := tu.read()
	tu.idleCheck() // quiet now: nothing ran since the last check
	live, after, retained := tu.read()
	if after != cycles+1 {
		t.Fatalf("cycles %d after a quiet check, want %d (one release)", after, cycles+1)
	}
	if retained >= before {
		t.Errorf("retained %d bytes after release, %d before (live %d)", retained, before, live)
	}
	tu.idleCheck() // the release itself is not activity, and memory is now close to live
	if _, c, _ := tu.read(); c != cycles+1 {
		t.Errorf("a second quiet check collected again (cycles %d)", c)
	}
}

// Update applies a new percent and floor at once.
func TestTunerUpdate(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	tu := Start(Options{Percent: 100, MinHeadroom: 1, IdleRelease: -1})
	defer tu.Stop()
	tu.Update(250, 1)
	if got := tu.Percent(); got != 250 {
		t.Errorf("percent %d after Update(250), want 250", got)
	}
	if got := debug.SetGCPercent(100); got != 250 {
		t.Errorf("runtime's GC percent %d, want 250", got)
	}
}

// allocate64MiB makes 64 MiB of garbage in 64 KiB pieces.
//
//go:noinline
func allocate64MiB() {
	var keep [][]byte
	for range 1024 {
		keep = append(keep, make([]byte, 64<<10))
	}
	sink = keep
	sink = nil
}

var sink [][]byte
