// Package tlsframe runs Go's crypto/tls on gnet event loops: a net.Conn adapter
// over the loop's buffers, handshakes on bounded worker goroutines, established
// records decrypted and encrypted on the loop, and per-loop certificate
// snapshots (with their OCSP staples) behind atomic pointers.
//
// Concurrency rule: a Conn is driven by its event loop, except during the
// handshake, when one goroutine owns the tls.Conn and hands it back with Wake.
// Snapshots are immutable once published; a reload publishes a new one.
// The package carries OCSP staples as bytes; it never fetches or parses them.
package tlsframe
