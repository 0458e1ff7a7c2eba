// Package doh implements DNS over HTTPS (RFC 8484) over HTTP/2 and HTTP/1.1 as
// a sans-IO session: bytes in, DNS queries out; DNS responses in, bytes out.
//
// Concurrency rule: a Session belongs to one connection and is used by one
// goroutine at a time (the connection's event loop). It owns no socket and no TLS.
package doh
