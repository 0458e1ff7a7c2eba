// Package lb holds dnsfront's backends: their configuration, health state,
// per-loop counters, the pools they form and the policies that pick one of
// them for each query, plus the health checker that runs off the event
// loops.
//
// Concurrency rule: a Set, its Backends and Pools are immutable once built,
// except for three kinds of state. A backend's health is an atomic value
// written only by the Checker and read lock-free by Backend.Up. Per-loop
// state (a Loop's counters and outstanding counts, a Picker's policy state
// such as a round-robin position or a random generator) has exactly one
// writer, the event loop that created it with Set.NewLoop or
// Pool.NewLoopPicker, and is read by the metrics collector through atomics.
// Nothing on the query path takes a lock or allocates.
package lb
