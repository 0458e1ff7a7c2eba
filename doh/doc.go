// Package doh implements DNS over HTTPS (RFC 8484) over HTTP/2 and HTTP/1.1 as
// a sans-IO session: bytes in, DNS queries out; DNS responses in, bytes out.
//
// A Session owns no socket and no TLS. The event loop feeds it what it read
// (Feed, any split), hands the emitted queries to the engine, answers them in
// any order (Respond, Fail), and writes AppendOutput in one write per read
// pass. HTTP/2 streams follow the RFC 9113 state table of h2streams.go;
// frames and HPACK blocks are read by h2frames.go and h2hpack.go without
// allocating, and written in place into the output by h2write.go and
// h2hpackenc.go. An idle session holds no buffer: input, output and
// bodies come from a pool and go back to it once empty. HTTP/1.1 is parsed
// by a small strict parser (see h1.go for why). Limits and abuse
// defences (rapid reset, CONTINUATION floods, HPACK bombs, SETTINGS and PING
// floods, zero-window stalls, memory) are enforced per session and counted
// in Stats; an offending session sends GOAWAY and reports Closed.
//
// Concurrency rule: a Session belongs to one connection and is used by one
// goroutine at a time (the connection's event loop). Options are shared,
// read-only, by every session of a bind.
package doh
