// Package bench holds dnsfront's load generators and reports: TLS handshakes
// per second with and without stapling, queries per second per protocol,
// latency percentiles, server and client CPU per operation, JSON reports,
// comparisons and SVG charts. It talks to any server over the network
// (dnsfront, dnsdist, anything speaking Do53, DoT or DoH) and depends on no
// engine internals.
//
// Entry points: RunHandshake and RunQuery run a load and return a Report;
// Report.WriteTable, Report.WriteJSON, ReadReport, Compare, MergeReports,
// WriteSummary, WriteReportChart and WriteSummaryChart present it.
//
// Concurrency: a run starts its own goroutines (one per handshake worker;
// a writer, a reader and a timeout sweeper per pipelined connection; one per
// DoH stream) and waits for all of them before returning. Each goroutine
// counts into its own workerStats; the only shared state is the pending-query
// table of a connection (behind its mutex), the TLS session cache and the
// staple and chain verification caches (behind theirs). The Run functions
// are safe to call from any goroutine, one run at a time per process if its
// CPU figures are to mean anything.
package bench
