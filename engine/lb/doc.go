// Package lb holds dnsfront's backends: their configuration, health state,
// per-loop counters, the pools they form and the policies that pick one of
// them for each query, plus the health checker that runs off the event
// loops.
//
// Concurrency rule: a Set, its Backends and Pools are immutable once built,
// except for their state, which a reload hands from one Set to the next
// (Set.Inherit). A backend's health is an atomic value written only by the
// Checker and read lock-free by Backend.Up; the progress of its checks is
// written by the one Checker goroutine probing it. Its counters are atomic
// shards, one per loop of a Set (Set.NewLoop), read by the metrics collector.
// A Picker's policy state (a round-robin position, a random generator) has
// exactly one writer, the event loop that created it with
// Pool.NewLoopPicker. Nothing on the query path takes a lock or allocates.
package lb
