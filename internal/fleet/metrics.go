package fleet

import "github.com/prometheus/client_golang/prometheus"

// Collector exports the fleet's state to Prometheus; it reads Status on
// each scrape, so it costs nothing between scrapes.
func (f *Fleet) Collector() prometheus.Collector { return collector{f} }

type collector struct{ f *Fleet }

var (
	descConnected = prometheus.NewDesc("dnsfront_fleet_connected", "1 while this member holds a session with etcd.", nil, nil)
	descLeader    = prometheus.NewDesc("dnsfront_fleet_leader", "1 while this member is the fleet's leader.", nil, nil)
	descMembers   = prometheus.NewDesc("dnsfront_fleet_members", "Members registered in the fleet, as last seen.", nil, nil)
	descEpoch     = prometheus.NewDesc("dnsfront_fleet_ticket_key_epoch", "Epoch of the encrypting session-ticket key.", nil, nil)
	descDerived   = prometheus.NewDesc("dnsfront_fleet_ticket_key_derived", "1 when the encrypting ticket key was derived locally (etcd had none for this epoch).", nil, nil)
	descSync      = prometheus.NewDesc("dnsfront_fleet_last_sync_timestamp_seconds", "Last time this member was known to have applied everything etcd had.", nil, nil)
	descLag       = prometheus.NewDesc("dnsfront_fleet_lag_seconds", "Time the last change took from its writer to this member.", nil, nil)
	descStaples   = prometheus.NewDesc("dnsfront_fleet_staples", "Staples shared by the fleet.", nil, nil)
	descBlocks    = prometheus.NewDesc("dnsfront_fleet_blocks", "Dynamic blocks shared by the fleet.", nil, nil)
	descSessions  = prometheus.NewDesc("dnsfront_fleet_sessions_total", "etcd sessions opened (the first and every reconnection).", nil, nil)
	descUnseal    = prometheus.NewDesc("dnsfront_fleet_ticket_key_errors_total", "Ticket keys from etcd that could not be unsealed or parsed.", nil, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConnected, descLeader, descMembers, descEpoch, descDerived, descSync, descLag, descStaples, descBlocks, descSessions, descUnseal} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.f.Status()
	c.f.mu.Lock()
	unseal := c.f.unsealErr
	c.f.mu.Unlock()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	gauge(descConnected, b2f(st.Connected))
	gauge(descLeader, b2f(st.IsLeader))
	gauge(descMembers, float64(len(st.Members)))
	gauge(descEpoch, float64(st.KeyEpoch))
	gauge(descDerived, b2f(st.KeySource == "derived"))
	if st.LastSync != nil {
		gauge(descSync, float64(st.LastSync.UnixNano())/1e9)
	}
	gauge(descLag, st.LagSeconds)
	gauge(descStaples, float64(len(st.Staples)))
	gauge(descBlocks, float64(len(st.Blocks)))
	ch <- prometheus.MustNewConstMetric(descSessions, prometheus.CounterValue, float64(st.Sessions))
	ch <- prometheus.MustNewConstMetric(descUnseal, prometheus.CounterValue, float64(unseal))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
