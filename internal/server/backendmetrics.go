package server

import (
	"sync"

	"github.com/dnsfront/dnsfront/engine/lb"
	"github.com/dnsfront/dnsfront/engine/packetcache"
	"github.com/prometheus/client_golang/prometheus"
)

// dynamicCollector exports the metrics of whatever backend set and caches are current:
// they change with reloads, the registry does not.
type dynamicCollector struct {
	mu  sync.Mutex
	cur []prometheus.Collector
}

func (d *dynamicCollector) set(b *backends) {
	cs := []prometheus.Collector{lb.NewCollector(b.set)}
	for name, e := range b.caches {
		cs = append(cs, packetcache.NewCollector(name, e.cache))
	}
	d.mu.Lock()
	d.cur = cs
	d.mu.Unlock()
}

// Describe sends nothing: the collector is unchecked, since its metrics follow reloads.
func (d *dynamicCollector) Describe(chan<- *prometheus.Desc) {}

func (d *dynamicCollector) Collect(ch chan<- prometheus.Metric) {
	d.mu.Lock()
	cs := d.cur
	d.mu.Unlock()
	for _, c := range cs {
		c.Collect(ch)
	}
}
