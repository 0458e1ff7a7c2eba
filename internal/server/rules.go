package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/dnsfront/dnsfront/config"
	"github.com/dnsfront/dnsfront/engine"
	"github.com/dnsfront/dnsfront/engine/rules"
	"github.com/prometheus/client_golang/prometheus"
)

// policy is the process's traffic policy: the dynamic blocks live as long as the process
// (a reload keeps the blocks in force and swaps only the rules that raise them), the rule
// set is compiled per configuration and published in the engine's State.
type policy struct {
	clock  rules.Clock
	dyn    *rules.DynBlocks
	cancel context.CancelFunc
}

func newPolicy(loops int, log *slog.Logger, onBlock func(rules.BlockInfo)) *policy {
	clock := rules.NewSystemClock()
	return &policy{clock: clock, dyn: rules.NewDynBlocks(rules.DynOptions{Loops: loops, Clock: clock, Logger: log, OnBlock: onBlock})}
}

// run starts the once-a-second evaluator that turns counters into blocks.
func (p *policy) run() {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go p.dyn.Run(ctx)
}

func (p *policy) stop() {
	if p.cancel != nil {
		p.cancel()
	}
}

// preparedRules is the policy of one configuration, compiled beside the one in force.
type preparedRules struct {
	rs  *rules.RuleSet // nil: the configuration has no query or response rules
	dyn rules.DynConfig
}

// compileRules compiles the rules of cfg for the state st (whose pools PoolAvailable
// reads). Errors carry the file and line of the rule.
func compileRules(cfg *config.Config, st *engine.State, loops int, clock rules.Clock, log *slog.Logger) (preparedRules, error) {
	var out preparedRules
	r := &cfg.Rules
	if len(r.QueryRules)+len(r.ResponseRules)+len(r.CacheHitResponseRules)+len(r.SelfAnsweredResponseRules) > 0 {
		rs, err := rules.Compile(r, rules.Options{Loops: loops, Logger: log, Clock: clock, PoolAvailable: poolAvailable(st)})
		if err != nil {
			return out, ruleError(cfg, err)
		}
		out.rs = rs
	}
	dc, err := rules.CompileDynamic(r)
	if err != nil {
		return out, ruleError(cfg, err)
	}
	out.dyn = dc
	return out, nil
}

// ruleError places a compile error, whose text starts with the rule's key path, at that
// key's line in the file.
func ruleError(cfg *config.Config, err error) error {
	msg := err.Error()
	if path, rest, ok := strings.Cut(msg, ": "); ok && !strings.ContainsAny(path, " \"") {
		return cfg.At(path, errors.New(rest))
	}
	return fmt.Errorf("%s: %w", cfg.Path, err)
}

// poolAvailable reports whether a pool of st has a backend up (the PoolAvailable selector).
func poolAvailable(st *engine.State) func(string) bool {
	return func(name string) bool {
		p := st.Pools[name]
		if p == nil {
			return false
		}
		for _, b := range p.Backends {
			if b.Up() {
				return true
			}
		}
		return false
	}
}

// tlsLimits converts tuning.tcp into the limiter's settings; ok is false when no limit is
// set.
func tlsLimits(t config.TCPTuning) (rules.TLSLimits, bool) {
	l := rules.TLSLimits{
		NewSessionsPerSecond:     uint32(max(t.MaxTLSNewSessionRatePerClient, 0)),
		ResumedSessionsPerSecond: uint32(max(t.MaxTLSResumedSessionRatePerClient, 0)),
	}
	if b := t.BanDurationForExceedingTCPTLSRate; b != nil {
		l.BanDuration = time.Duration(*b) * time.Second
	}
	if m := t.ConnectionsMaskV4; m != nil {
		l.IPv4Mask = *m
	}
	if m := t.ConnectionsMaskV6; m != nil {
		l.IPv6Mask = *m
	}
	return l, l.NewSessionsPerSecond > 0 || l.ResumedSessionsPerSecond > 0
}

// registerBlocksAPI adds the dynamic blocks to the admin API: GET lists them, POST adds one
// (a rules.BlockRequest; "seconds" may stand for duration_ns), DELETE ?key= lifts one.
func (s *Server) registerBlocksAPI(mux *http.ServeMux, api func(http.HandlerFunc) http.Handler) {
	mux.Handle("GET /api/v1/blocks", api(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.pol.dyn.List())
	}))
	mux.Handle("POST /api/v1/blocks", api(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			rules.BlockRequest
			Seconds int `json:"seconds"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		if req.Duration == 0 {
			req.Duration = time.Duration(req.Seconds) * time.Second
		}
		if req.Reason == "" {
			req.Reason = "added through the admin API"
		}
		if err := s.pol.dyn.Add(req.BlockRequest); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		s.fm.shareAdded(req.BlockRequest)
		writeJSON(w, http.StatusCreated, map[string]string{"result": "added"})
	}))
	mux.Handle("DELETE /api/v1/blocks", api(func(w http.ResponseWriter, r *http.Request) {
		key := r.URL.Query().Get("key")
		if key == "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "the key parameter names the block (a network as listed, or suffix:<name>)"})
			return
		}
		s.fm.shareRemoved(key) // also when not in force here: another member may hold it
		if !s.pol.dyn.Remove(key) {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no block %q", key)})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"result": "removed"})
	}))
}

// policyCollector exports what the rules did on the loops.
type policyCollector struct {
	eng  *engine.Engine
	desc *prometheus.Desc
}

func newPolicyCollector(e *engine.Engine) *policyCollector {
	return &policyCollector{eng: e, desc: prometheus.NewDesc("dnsfront_rule_outcomes_total",
		"Queries and answers that rules or dynamic blocks dropped, answered or delayed, by outcome.", []string{"outcome"}, nil)}
}

func (c *policyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *policyCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.eng.PolicyStats()
	for _, o := range []struct {
		name string
		v    uint64
	}{{"drop", s.Drops}, {"answer", s.Answered}, {"http_status", s.HTTPStatus}, {"response_drop", s.ResponseDrops}, {"delay", s.Delayed}} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(o.v), o.name)
	}
}
