package quic

import (
	"testing"

	"go.uber.org/goleak"
)

// Every listener test ends with no goroutine left behind: connections, streams and accept
// loops stop. gnet's process-wide worker pool (ants) outlives the engines by design.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*goWorker).run.func1"),
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"),
	)
}
