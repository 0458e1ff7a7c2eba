package lb_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/dnsfront/dnsfront/engine/lb"
)

// The engine builds one Set, starts a Checker, and gives each event loop its
// own Loop and Pickers; everything after that runs on the loop without locks.
func Example() {
	set, err := lb.NewSet([]lb.BackendConfig{
		{Name: "a", Address: "127.0.0.1:5301", HealthCheck: lb.HealthCheckConfig{Mode: lb.ModeUp}},
		{Name: "b", Address: "127.0.0.1:5302", HealthCheck: lb.HealthCheckConfig{Mode: lb.ModeDown}},
	}, map[string]string{"": lb.PolicyRoundRobin})
	if err != nil {
		panic(err)
	}
	checker := lb.NewChecker(set, slog.Default())
	checker.Start(context.Background())
	defer checker.Stop()

	// Per event loop, when it starts (OnBoot / first tick):
	loop := set.NewLoop()
	picker := set.Pool("").NewLoopPicker()

	// Per query, on that loop:
	qname := []byte("\x07example\x03com\x00")
	b := picker.Pick(loop, lb.HashQName(qname))
	if b == nil {
		fmt.Println("all down: answer SERVFAIL now")
		return
	}
	loop.QuerySent(b.ID)
	// ... when the answer comes back on the same loop:
	loop.ResponseReceived(b.ID, 2*time.Millisecond)
	fmt.Println(b.Name, b.Addr)
	// Output: a 127.0.0.1:5301
}
