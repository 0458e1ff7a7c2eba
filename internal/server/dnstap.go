package server

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/dnsfront/dnsfront/config"
	"github.com/dnsfront/dnsfront/engine/rules"
	"github.com/dnsfront/dnsfront/internal/dnstap"
	"github.com/prometheus/client_golang/prometheus"
)

// dnstapLoggers are the running dnstap loggers (remote_logging.dnstap_loggers) by name.
// Reload and Shutdown change them under Server.mu; mu guards the map for the scraper.
type dnstapLoggers struct {
	mu     sync.Mutex
	byName map[string]*dnstap.Logger
}

// dnstapPlan is the loggers a prepared configuration uses: the running ones it keeps
// unchanged (with their connections) and new ones, not started yet.
type dnstapPlan struct {
	byName map[string]*dnstap.Logger
	fresh  []*dnstap.Logger
}

// dnstapOptions are the logger options of a configured dnstap_logger.
func (s *Server) dnstapOptions(d config.DnstapLogger) dnstap.Options {
	return dnstap.Options{
		Name:           d.Name,
		Network:        d.Transport,
		Address:        d.Address,
		QueueSize:      d.InputQueueSize,
		BufferHint:     d.BufferHint,
		FlushTimeout:   time.Duration(d.FlushTimeout) * time.Second,
		FlushFrames:    d.OutputQueueSize,
		ReopenInterval: time.Duration(d.ReopenInterval) * time.Second,
		Connections:    d.ConnectionCount,
		Version:        "dnsfront " + Version,
		Log:            s.log,
	}
}

// prepareDnstap builds the loggers of cfg beside the running ones, keeping a running
// logger whose settings are unchanged, and gives the rule set's DnstapLog actions their
// loggers. It starts and stops nothing.
func (s *Server) prepareDnstap(cfg *config.Config, rs *rules.RuleSet) (*dnstapPlan, error) {
	p := &dnstapPlan{byName: map[string]*dnstap.Logger{}}
	s.tap.mu.Lock()
	running := s.tap.byName
	s.tap.mu.Unlock()
	for i, d := range cfg.RemoteLogging.DnstapLoggers {
		o := s.dnstapOptions(d)
		if l := running[d.Name]; l != nil && l.Same(o) {
			p.byName[d.Name] = l
			continue
		}
		l, err := dnstap.New(o)
		if err != nil {
			return nil, cfg.At(fmt.Sprintf("remote_logging.dnstap_loggers[%d]", i), err)
		}
		p.byName[d.Name], p.fresh = l, append(p.fresh, l)
	}
	if err := rs.ResolveDnstap(func(name string) *dnstap.Logger { return p.byName[name] }); err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Path, err)
	}
	return p, nil
}

// commitDnstap starts the plan's new loggers and closes the running ones it does not
// keep. It cannot fail. A closed logger's queue is discarded: queries still on their way
// with the previous rule set log into it harmlessly.
func (s *Server) commitDnstap(p *dnstapPlan) {
	for _, l := range p.fresh {
		l.Start()
	}
	s.tap.mu.Lock()
	old := s.tap.byName
	s.tap.byName = p.byName
	s.tap.mu.Unlock()
	for name, l := range old {
		if p.byName[name] != l {
			s.log.Info("dnstap: logger replaced or removed", "logger", name)
			go l.Close() // flushes for at most a second: not in the reload's way
		}
	}
}

// closeDnstap closes every logger, flushing what each holds (bounded).
func (s *Server) closeDnstap() {
	s.tap.mu.Lock()
	old := s.tap.byName
	s.tap.byName = nil
	s.tap.mu.Unlock()
	var wg sync.WaitGroup
	for _, l := range old {
		wg.Go(l.Close)
	}
	wg.Wait()
}

var (
	dnstapMessagesDesc = prometheus.NewDesc("dnsfront_dnstap_messages_total",
		"dnstap messages by logger and outcome: queued by the event loops, dropped because the queue was full, sent to the collector.",
		[]string{"logger", "outcome"}, nil)
	dnstapWriteErrorsDesc = prometheus.NewDesc("dnsfront_dnstap_write_errors_total",
		"Connections to the dnstap collector lost while writing.", []string{"logger"}, nil)
	dnstapConnectErrorsDesc = prometheus.NewDesc("dnsfront_dnstap_connect_errors_total",
		"Failed connection attempts and Frame Streams handshakes to the dnstap collector.", []string{"logger"}, nil)
	dnstapConnectsDesc = prometheus.NewDesc("dnsfront_dnstap_connects_total",
		"Connections made to the dnstap collector.", []string{"logger"}, nil)
	dnstapConnectedDesc = prometheus.NewDesc("dnsfront_dnstap_connected",
		"Connections to the dnstap collector up now.", []string{"logger"}, nil)
	dnstapQueueDesc = prometheus.NewDesc("dnsfront_dnstap_queue_length",
		"dnstap messages waiting for the writer.", []string{"logger"}, nil)
)

// Describe sends nothing: the collector is unchecked, since its loggers follow reloads.
func (t *dnstapLoggers) Describe(chan<- *prometheus.Desc) {}

func (t *dnstapLoggers) Collect(ch chan<- prometheus.Metric) {
	t.mu.Lock()
	ls := make([]*dnstap.Logger, 0, len(t.byName))
	for _, l := range t.byName {
		ls = append(ls, l)
	}
	t.mu.Unlock()
	sort.Slice(ls, func(i, j int) bool { return ls[i].Name() < ls[j].Name() })
	for _, l := range ls {
		st, n := l.Stats(), l.Name()
		c := func(d *prometheus.Desc, v uint64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{n}, labels...)...)
		}
		c(dnstapMessagesDesc, st.Queued, "queued")
		c(dnstapMessagesDesc, st.Dropped, "dropped")
		c(dnstapMessagesDesc, st.Sent, "sent")
		c(dnstapWriteErrorsDesc, st.WriteErrors)
		c(dnstapConnectErrorsDesc, st.ConnectErrors)
		c(dnstapConnectsDesc, st.Connects)
		ch <- prometheus.MustNewConstMetric(dnstapConnectedDesc, prometheus.GaugeValue, float64(st.Connected), n)
		ch <- prometheus.MustNewConstMetric(dnstapQueueDesc, prometheus.GaugeValue, float64(st.QueueLength), n)
	}
}
