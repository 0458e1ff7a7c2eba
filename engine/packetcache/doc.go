// Package packetcache is dnsfront's DNS packet cache, shaped like dnsdist's
// packet_caches: answers are stored in wire form, keyed by the query's
// question, the flags that change an answer and the EDNS Client Subnet
// (ecs.go), and served with the query's ID and qname case and with their TTLs
// aged.
//
// Concurrency rule: a Cache is safe for use from any goroutine. It is split
// into shards, each behind its own sync.RWMutex; a lookup takes one shard's
// read lock for the duration of a copy, an insertion one shard's write lock.
// Get never allocates when dst has room for the answer. The counters behind
// Stats are atomic and may be read from anywhere.
package packetcache
