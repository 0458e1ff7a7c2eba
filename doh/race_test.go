//go:build race

package doh

// raceEnabled: under the race detector sync.Pool drops a share of what is
// put back, so pooled buffers are reallocated at random and allocation
// counts say nothing about the code.
const raceEnabled = true
