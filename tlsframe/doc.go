// Package tlsframe runs Go's own crypto/tls on gnet event loops: a net.Conn
// adapter over the loop's buffers, handshakes on bounded worker goroutines,
// established records decrypted and encrypted on the loop, and per-loop
// certificate snapshots (with their OCSP staples) behind atomic pointers.
//
// Use: build a Snapshot (BuildSnapshot) with the process's TicketKeys,
// Publish it into one Store per TLS bind, share one Handshaker, and in the
// gnet handler call NewConn in OnOpen, Conn.OnTraffic then Conn.Flush in
// OnTraffic, and Conn.OnClose in OnClose.
//
// Concurrency rule: a Conn is driven by its event loop, except during the
// handshake, when one Handshaker goroutine owns the tls.Conn; it hands it
// back by storing the state atomically, and calls Wake when the loop has
// something to act on (client bytes already read, a handshake error);
// otherwise the loop takes over at the client's next bytes. Either way the
// loop takes over only once the handshake's AsyncWrites have all run, and
// crypto/tls's handshake-grown read buffers are dropped (release.go).
// Handshake goroutines that find nothing queued park for a short while
// before they exit, keeping their grown stacks. Snapshots are
// immutable; a reload or a new staple publishes a new one. Store and
// TicketKeys are safe for concurrent use.
//
// GOMAXPROCS must exceed the number of event loops: a loop parked in
// epoll_wait holds a scheduler slot, and handshake goroutines starve
// without a spare one. The engine sets it.
//
// The package carries OCSP staples as bytes; it never fetches or parses them.
package tlsframe
