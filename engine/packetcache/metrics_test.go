package packetcache

import (
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

func TestCollector(t *testing.T) {
	a, b := New(DefaultOptions(10)), New(DefaultOptions(10))
	q := newQuery("example.com.", dns.TypeA, qopt{})
	a.Insert(pack(t, q), pack(t, answer(t, q, 0, []string{"example.com. 60 IN A 192.0.2.1"}, nil)), t0)
	a.Get(pack(t, q), nil, t0)
	a.InsertSubnet(pack(t, q), ecsAnswer(t, q, "198.51.100.0/24", 0, "192.0.2.1"), subnet("192.0.2.0/24"), true, t0, -1)
	a.Get(pack(t, newQuery("other.example.", dns.TypeA, qopt{})), nil, t0)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector("main", a), NewCollector("edge", b))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName() + "/" + m.GetLabel()[0].GetValue()
			if m.Counter != nil {
				got[key] = m.Counter.GetValue()
			} else {
				got[key] = m.Gauge.GetValue()
			}
		}
	}
	for key, want := range map[string]float64{
		"dnsfront_cache_hits_total/main": 1, "dnsfront_cache_misses_total/main": 1,
		"dnsfront_cache_insertions_total/main": 1, "dnsfront_cache_entries/main": 1,
		"dnsfront_cache_hits_total/edge": 0, "dnsfront_cache_evictions_total/main": 0,
		"dnsfront_cache_ecs_mismatches_total/main": 1, "dnsfront_cache_uncacheable_total/main": 1,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}
}
