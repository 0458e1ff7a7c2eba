package packetcache

import "github.com/prometheus/client_golang/prometheus"

// Collector exports one cache's Stats, labelled cache=<name>. Several
// collectors for differently named caches can share a registry. It is not
// registered anywhere: the caller registers it.
type Collector struct {
	name                                                                               string
	c                                                                                  *Cache
	hits, misses, insertions, evictions, expunged, uncacheable, ecsMismatches, entries *prometheus.Desc
}

// NewCollector returns a collector for c under the given cache name.
func NewCollector(name string, c *Cache) *Collector {
	// The name is a constant label so that each cache's descriptors are
	// distinct and collectors for several caches can share a registry.
	l := prometheus.Labels{"cache": name}
	d := func(n, help string) *prometheus.Desc { return prometheus.NewDesc("dnsfront_cache_"+n, help, nil, l) }
	return &Collector{
		name:          name,
		c:             c,
		hits:          d("hits_total", "Lookups answered from the packet cache."),
		misses:        d("misses_total", "Lookups not answered from the packet cache."),
		insertions:    d("insertions_total", "Answers stored in the packet cache."),
		evictions:     d("evictions_total", "Live entries dropped to make room."),
		expunged:      d("expunged_total", "Expired entries removed."),
		uncacheable:   d("uncacheable_total", "Answers offered to the cache and not stored."),
		ecsMismatches: d("ecs_mismatches_total", "Answers not stored because their EDNS Client Subnet option named another subnet than the query's (also in uncacheable_total)."),
		entries:       d("entries", "Entries held in the packet cache."),
	}
}

// Describe implements prometheus.Collector.
func (k *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{k.hits, k.misses, k.insertions, k.evictions, k.expunged, k.uncacheable, k.ecsMismatches, k.entries} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (k *Collector) Collect(ch chan<- prometheus.Metric) {
	s := k.c.Stats()
	for _, m := range []struct {
		d *prometheus.Desc
		v uint64
	}{{k.hits, s.Hits}, {k.misses, s.Misses}, {k.insertions, s.Insertions}, {k.evictions, s.Evictions}, {k.expunged, s.Expunged}, {k.uncacheable, s.Uncacheable}, {k.ecsMismatches, s.ECSMismatches}} {
		ch <- prometheus.MustNewConstMetric(m.d, prometheus.CounterValue, float64(m.v))
	}
	ch <- prometheus.MustNewConstMetric(k.entries, prometheus.GaugeValue, float64(s.Entries))
}
