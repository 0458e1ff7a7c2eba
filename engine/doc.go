// Package engine is the DNS frontend's data plane: one gnet v2 engine with one
// event loop per core, the Do53/DoT/DoH listeners, per-loop backend sockets,
// query forwarding, the ACL and the counters behind the metrics.
//
// Concurrency rule: everything a query touches stays on the event loop that
// received it. Per-loop state is owned by that loop and never locked; state
// shared with other goroutines (backend health, certificate snapshots,
// configuration) is immutable and published through atomic pointers.
package engine
