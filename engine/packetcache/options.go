package packetcache

import "fmt"

// Options configure a Cache. TTLs are in seconds, as in dnsdist's
// packet_caches; DefaultOptions returns dnsdist's defaults.
type Options struct {
	// Size bounds the number of entries (size). Required, at least 1.
	Size int
	// MaxTTL caps the lifetime of an entry (max_ttl, default 86400).
	MaxTTL uint32
	// MinTTL: answers whose lifetime would be shorter are not cached
	// (min_ttl, default 0).
	MinTTL uint32
	// TemporaryFailureTTL is the lifetime of a SERVFAIL or REFUSED answer;
	// 0 disables caching them (temporary_failure_ttl, default 60).
	TemporaryFailureTTL uint32
	// MaxNegativeTTL caps the lifetime of an NXDOMAIN or NODATA answer
	// (max_negative_ttl, default 3600).
	MaxNegativeTTL uint32
	// DontAge serves TTLs as they were received instead of decrementing
	// them by the entry's age (dont_age, default false).
	DontAge bool
	// Shards is the number of independently locked shards (shards,
	// default 20). It is lowered to Size when larger.
	Shards int
	// MaximumEntrySize is the largest answer, in bytes, that is cached
	// (maximum_entry_size, default 4096, at most 65535).
	MaximumEntrySize int
}

// DefaultOptions returns dnsdist's defaults for the given size.
func DefaultOptions(size int) Options {
	return Options{
		Size:                size,
		MaxTTL:              86400,
		MinTTL:              0,
		TemporaryFailureTTL: 60,
		MaxNegativeTTL:      3600,
		DontAge:             false,
		Shards:              20,
		MaximumEntrySize:    4096,
	}
}

// Validate reports the first option that New would have to correct.
func (o Options) Validate() error {
	switch {
	case o.Size < 1:
		return fmt.Errorf("packetcache: size %d: must be at least 1", o.Size)
	case o.Shards < 1:
		return fmt.Errorf("packetcache: shards %d: must be at least 1", o.Shards)
	case o.MaximumEntrySize < headerLen || o.MaximumEntrySize > 65535:
		return fmt.Errorf("packetcache: maximum_entry_size %d: must be between %d and 65535", o.MaximumEntrySize, headerLen)
	case o.MinTTL > o.MaxTTL:
		return fmt.Errorf("packetcache: min_ttl %d is above max_ttl %d", o.MinTTL, o.MaxTTL)
	}
	return nil
}
