// Package bench holds dnsfront's load generators and reports: TLS handshakes
// per second with and without stapling, queries per second per protocol,
// latency percentiles and charts. It talks to any server over the network and
// depends on no engine internals.
package bench
