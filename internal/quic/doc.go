// Package quic serves DNS over QUIC (RFC 9250, ALPN "doq") and DNS over HTTP/3 (RFC 8484
// over RFC 9114, ALPN "h3") with quic-go.
//
// QUIC cannot run on the gnet event loops without writing QUIC for the reactor, so these
// listeners run on quic-go's goroutines: one per connection and one per stream, bounded by
// the stream and connection limits. Once a query is decoded it is handed to an event loop
// (engine.ExternalClient) and takes the path of every other query: rules, cache, backends,
// metrics. The answer comes back through a callback that runs on the loop and only hands
// a copy to the stream's goroutine, which writes it.
//
// Certificates come from the bind's tlsframe.Store: every ClientHello reads its current
// snapshot (GetConfigForClient), so SNI selection, OCSP staples, reloads and session-ticket
// keys behave as on the TCP binds.
//
// Concurrency rule: a Listener's counters are atomics; its TLS view is behind an atomic
// pointer and immutable; its set of connections is behind a mutex taken per connection,
// never per query.
package quic
