// Package e2e holds the end-to-end tests: they build the dnsfront binary once per run,
// start it as a subprocess with a configuration written into a temporary directory, and
// query it with real peers (dig, kdig, dnsperf and a miekg/dns Go client) in front of
// in-process miekg/dns backends.
//
// The helpers are meant to be reused by every end-to-end test: Start a dnsfront from a
// YAML template (ports are allocated by name with {{port "dns"}}), StartBackend a resolver
// with the behaviour a test needs, then query, read metrics and signal the process.
//
// Concurrency rule: each test owns its dnsfront process and backends; helpers are safe to
// call from the test's goroutines, and every process and server stops in t.Cleanup.
// Everything listens on loopback only.
package e2e
