package quic

import (
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/engine"
	"github.com/dnsfront/dnsfront/internal/testutil"
)

// waitCounts returns the engine's counters once want holds, or after 10 s. The loop
// counts a response after it has handed the answer to the listener, so the last count
// may trail the last answer a client read by a moment.
func waitCounts(t *testing.T, e *engine.Engine, want func(engine.Stats) bool) engine.Stats {
	t.Helper()
	var s engine.Stats
	testutil.Poll(10*time.Second, func() bool { s = e.Stats(); return want(s) })
	return s
}
