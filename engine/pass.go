package engine

// One writer per connection. gnet calls OnClose synchronously when a write fails or when
// the loop closes a connection, so a callback can start inside another connection's
// callback: a backend write that fails in the middle of a client's read pass closes the
// backend socket, and its OnClose answers the queries that waited on it. Flushing those
// answers there would write in the middle of the outer connection's pass (a DoH session
// flushed halfway through Feed, a TLS record buffer shared by the bind's connections
// written out while it holds another connection's records). So every entry point from
// gnet brackets its work with begin and end: only the outermost one flushes, after the
// inner ones have queued their work with markDirty.

// begin marks the start of work on the loop; it reports whether this is the outermost
// entry, the one whose end runs the deferred flushes.
func (l *loop) begin() bool {
	if l.busy {
		return false
	}
	l.busy = true
	l.pol.stale = true // the rules read the clock once per pass
	return true
}

// end runs, for the outermost entry, every flush deferred during the pass.
func (l *loop) end(outer bool) {
	if !outer {
		return
	}
	l.flushDirty()
	l.busy = false
}
