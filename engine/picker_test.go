package engine

import (
	"io"
	"log/slog"
	"testing"
)

// firstUp is the tests' picker: the pool's first backend that is up. Servers take their
// pickers from engine/lb.
type firstUp struct{ p *Pool }

func (f firstUp) Pick(_ func(int) int, _ uint64) int {
	for i, b := range f.p.Backends {
		if b.Up() {
			return f.p.index[i]
		}
	}
	return -1
}

// newTestState is NewState with a firstUp picker for every pool that names none.
func newTestState(acl *ACL, backends []*Backend, pools map[string]*Pool) *State {
	for _, p := range pools {
		if p.NewPicker == nil {
			p.NewPicker = func() Picker { return firstUp{p} }
		}
	}
	return NewState(acl, backends, pools)
}

// startTestEngine runs an engine of loops event loops on st and binds, logging nowhere,
// until the test ends.
func startTestEngine(tb testing.TB, st *State, loops int, binds ...BindOptions) *Engine {
	tb.Helper()
	e, err := New(Options{Loops: loops, Binds: binds, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, st)
	if err != nil {
		tb.Fatal(err)
	}
	if err := e.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = e.Stop() })
	return e
}
