package rules

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// dynStats counts block life cycles for metrics. The evaluator and the API update it under
// DynBlocks.mu; the collector reads it under its own lock.
type dynStats struct {
	mu          sync.Mutex
	insertedBy  map[[3]string]uint64 // group, rule, action
	warningsBy  map[[2]string]uint64 // group, rule
	expiredN    uint64
	removedN    uint64
	retiredHits uint64
	active      map[string]int // by action
	untracked   atomic.Uint64
}

func (s *dynStats) init() {
	s.insertedBy = map[[3]string]uint64{}
	s.warningsBy = map[[2]string]uint64{}
	s.active = map[string]int{}
}

func (s *dynStats) inserted(b *Block) {
	s.mu.Lock()
	if b.Warning {
		s.warningsBy[[2]string{b.Group, b.Rule}]++
	} else {
		s.insertedBy[[3]string{b.Group, b.Rule, b.Action.String()}]++
	}
	s.mu.Unlock()
}

func (s *dynStats) expired(b *Block) {
	s.mu.Lock()
	if !b.Warning {
		s.expiredN++
	}
	s.retiredHits += b.Hits()
	s.mu.Unlock()
}

func (s *dynStats) removed(b *Block) {
	s.mu.Lock()
	s.removedN++
	s.retiredHits += b.Hits()
	s.mu.Unlock()
}

func (s *dynStats) setActive(list []*Block) {
	s.mu.Lock()
	clear(s.active)
	for _, b := range list {
		if !b.Warning {
			s.active[b.Action.String()]++
		}
	}
	s.mu.Unlock()
}

var (
	descActive    = prometheus.NewDesc("dnsfront_dynblock_active", "Dynamic blocks in force, by action.", []string{"action"}, nil)
	descInserted  = prometheus.NewDesc("dnsfront_dynblock_inserted_total", "Dynamic blocks inserted, by group, rule and action.", []string{"group", "rule", "action"}, nil)
	descWarnings  = prometheus.NewDesc("dnsfront_dynblock_warnings_total", "Dynamic rule warnings (warning_rate or warning_ratio exceeded), by group and rule.", []string{"group", "rule"}, nil)
	descExpired   = prometheus.NewDesc("dnsfront_dynblock_expired_total", "Dynamic blocks that expired.", nil, nil)
	descRemoved   = prometheus.NewDesc("dnsfront_dynblock_removed_total", "Dynamic blocks removed through the API.", nil, nil)
	descBlocked   = prometheus.NewDesc("dnsfront_dynblock_blocked_queries_total", "Queries caught by dynamic blocks.", nil, nil)
	descUntracked = prometheus.NewDesc("dnsfront_dynblock_untracked_total", "Client or suffix counts skipped because a loop's window was full.", nil, nil)
	descRuleHits  = prometheus.NewDesc("dnsfront_rule_matches_total", "Queries or responses a rule matched, by list and rule name.", []string{"list", "rule"}, nil)
)

// Collector returns the dynamic blocks' Prometheus collector.
func (d *DynBlocks) Collector() prometheus.Collector { return dynCollector{d} }

type dynCollector struct{ d *DynBlocks }

func (c dynCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descActive, descInserted, descWarnings, descExpired, descRemoved, descBlocked, descUntracked} {
		ch <- d
	}
}

func (c dynCollector) Collect(ch chan<- prometheus.Metric) {
	var live uint64
	for _, b := range c.d.set.Load().all() {
		live += b.Hits()
	}
	s := &c.d.stats
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range blockActionNames {
		ch <- prometheus.MustNewConstMetric(descActive, prometheus.GaugeValue, float64(s.active[a]), a)
	}
	for k, n := range s.insertedBy {
		ch <- prometheus.MustNewConstMetric(descInserted, prometheus.CounterValue, float64(n), k[0], k[1], k[2])
	}
	for k, n := range s.warningsBy {
		ch <- prometheus.MustNewConstMetric(descWarnings, prometheus.CounterValue, float64(n), k[0], k[1])
	}
	ch <- prometheus.MustNewConstMetric(descExpired, prometheus.CounterValue, float64(s.expiredN))
	ch <- prometheus.MustNewConstMetric(descRemoved, prometheus.CounterValue, float64(s.removedN))
	ch <- prometheus.MustNewConstMetric(descBlocked, prometheus.CounterValue, float64(s.retiredHits+live))
	ch <- prometheus.MustNewConstMetric(descUntracked, prometheus.CounterValue, float64(s.untracked.Load()))
}

// RuleCollector returns a Prometheus collector of the rule hit counts of whatever rule set
// current returns (the engine's atomic pointer), so that it survives reloads.
func RuleCollector(current func() *RuleSet) prometheus.Collector { return ruleCollector{current} }

type ruleCollector struct{ current func() *RuleSet }

func (c ruleCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descRuleHits }

func (c ruleCollector) Collect(ch chan<- prometheus.Metric) {
	rs := c.current()
	if rs == nil {
		return
	}
	seen := map[[2]string]bool{}
	for _, s := range rs.Stats() {
		k := [2]string{s.List, s.Name}
		if seen[k] {
			continue // two rules with one name: the first one's series
		}
		seen[k] = true
		ch <- prometheus.MustNewConstMetric(descRuleHits, prometheus.CounterValue, float64(s.Hits), s.List, s.Name)
	}
}
