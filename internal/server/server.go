// Package server assembles a running dnsfront from its configuration: the engine and its
// listeners, the backends, the TLS snapshots and their staples, the demo backend and the
// admin API; and it applies reloads.
//
// Concurrency rule: Reload and Shutdown are serialised by a mutex; everything the event
// loops read is published through the engine's and tlsframe's atomic pointers.
package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dnsfront/dnsfront/config"
	"github.com/dnsfront/dnsfront/doh"
	"github.com/dnsfront/dnsfront/engine"
	"github.com/dnsfront/dnsfront/engine/rules"
	"github.com/dnsfront/dnsfront/internal/demobackend"
	"github.com/dnsfront/dnsfront/internal/memtune"
	"github.com/dnsfront/dnsfront/internal/quic"
	"github.com/dnsfront/dnsfront/ocsp"
	"github.com/dnsfront/dnsfront/tlsframe"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Version is set at build time (-ldflags "-X .../internal/server.Version=...").
var Version = "dev"

// Server is a running dnsfront.
type Server struct {
	log     *slog.Logger
	path    string
	started time.Time

	mu    sync.Mutex // serialises Reload and Shutdown
	cfg   *config.Config
	eng   *engine.Engine
	demo  *demobackend.Server
	adm   *admin
	reg   *prometheus.Registry
	loops int
	tlsMu sync.RWMutex        // guards tls and retiring (listeners.go)
	tls   map[string]*tlsBind // by tlsKey; replaced whole by a reload, never changed
	// retiring are the TLS sides of binds removed or replaced by a reload, closed once
	// their connections are gone.
	retiring map[*tlsBind]struct{}
	// inherit and inheritAdmin are the listening sockets of the process this one
	// replaces (upgrade.go); adminLns the admin API's, by address.
	inherit      []int
	inheritAdmin map[string]int
	adminLns     map[string]net.Listener
	// reservedAdmin are the admin addresses bound before the engine started (start.go),
	// kept in inheritAdmin until startAdmin serves them.
	reservedAdmin map[string]bool
	// upgrading is set while a successor takes over (upgrade.go): reloads are refused.
	upgrading atomic.Bool
	quic      []*quic.Listener
	st        *staples
	be        *backends // current backend set and caches
	hc        health
	dyn       dynamicCollector
	gc        *memtune.Tuner // nil while GOGC is set or gc_percent is -1
	pol       *policy        // dynamic blocks and the rules' clock (rules.go)
	fm        *fleetMode     // nil: no fleet section (fleet.go)
	tap       dnstapLoggers  // remote_logging.dnstap_loggers (dnstap.go)

	reloads, reloadFailures prometheus.Counter
}

// Start loads the configuration at path and starts serving it.
func Start(path string, log *slog.Logger) (*Server, error) {
	return StartWith(path, log, StartOptions{})
}

// StartWith is Start for a process that inherited listening sockets (a binary upgrade):
// the binds and admin listeners on their addresses serve them instead of opening new ones.
func StartWith(path string, log *slog.Logger, o StartOptions) (*Server, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	s := &Server{log: log, path: path, cfg: cfg, started: time.Now(), reg: prometheus.NewRegistry(),
		inherit: o.Engine, inheritAdmin: maps.Clone(o.Admin), adminLns: map[string]net.Listener{}}
	defer s.closeInheritedAdmin()
	setMemoryLimit(cfg, log)
	s.reloads = prometheus.NewCounter(prometheus.CounterOpts{Name: "dnsfront_reloads_total", Help: "Successful reloads."})
	s.reloadFailures = prometheus.NewCounter(prometheus.CounterOpts{Name: "dnsfront_reload_failures_total", Help: "Reloads rejected; the previous state kept serving."})
	s.reg.MustRegister(s.reloads, s.reloadFailures, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if cfg.DemoBackend != nil {
		if s.demo, err = demobackend.Start(cfg.DemoBackend.ListenAddress); err != nil {
			return nil, err
		}
		log.Info("demo backend serving", "zone", demobackend.Zone, "listener", cfg.DemoBackend.ListenAddress)
	}
	s.loops = cfg.General.EventLoops
	if s.loops <= 0 {
		s.loops = runtime.NumCPU()
	}
	s.tls = map[string]*tlsBind{}
	s.retiring = map[*tlsBind]struct{}{}
	s.fm = newFleetMode(cfg, log)
	s.pol = newPolicy(s.loops, log, s.fm.shareBlock)
	clock := ocsp.SystemClock()
	s.st = newStaples(clock, log)
	oo := withLogger(ocspOptions(cfg.OCSP), log)
	oo.Clock, oo.FetchGate = clock, s.fm.mayFetch
	s.st.mgr = ocsp.NewManager(oo, s.fm.wrapPublish(s.st.publish))
	s.reg.MustRegister(s.st.mgr.Collector(), &s.dyn, newHandshakeCollector(s))
	s.reg.MustRegister(tlsframe.HandshakeCollector()) // dnsfront_tls_handshakes_negotiated_total, process-wide
	s.reg.MustRegister(&s.tap)
	fail := func(err error) (*Server, error) {
		s.releaseAdmin()
		s.closeDnstap()
		s.closeQUIC()
		s.closeTLS()
		s.stopDemo()
		return nil, err
	}
	for i, b := range cfg.Binds {
		if b.TLS == nil {
			continue
		}
		tb, err := newTLSBind(b, s.loops, log)
		if err != nil {
			return fail(cfg.At(fmt.Sprintf("binds[%d].tls", i), err))
		}
		s.tls[tlsKey(b)] = tb
	}
	p, err := s.prepare(cfg, s.tls)
	if err != nil {
		return fail(err)
	}
	s.commit(p)
	s.applyTLSLimits(cfg)
	binds, err := s.buildBinds(cfg, s.tls)
	if err != nil {
		return fail(err)
	}
	s.eng, err = engine.New(engine.Options{
		Loops:          s.loops,
		Binds:          engineBinds(cfg, binds),
		Inherit:        s.inherit,
		TCPIdleTimeout: cfg.General.TCPIdleTimeout.D(),
		MaxTCPInFlight: cfg.General.MaxTCPInFlight,
		Logger:         log,
		Dyn:            s.pol.dyn,
		Clock:          s.pol.clock,
	}, p.be.state)
	if err != nil {
		return fail(err)
	}
	s.useBackends(p.be)
	s.reg.MustRegister(s.eng.ProxyCollector())
	s.reg.MustRegister(s.eng.Collector(), s.pol.dyn.Collector(), newPolicyCollector(s.eng),
		rules.RuleCollector(func() *rules.RuleSet { return s.eng.CurrentState().Rules }))
	// Everything that can fail runs before the loops start reading the sockets: a
	// successor of an upgrade shares them with its predecessor, and what its loops took
	// off them (datagrams read, connections accepted) is lost if it then stops.
	if err := s.reserveAdmin(cfg.Webserver.ListenAddresses); err != nil {
		return fail(err)
	}
	if err := s.startFleet(); err != nil {
		return fail(err)
	}
	if o.Serving != nil {
		if err := o.Serving(); err != nil {
			return fail(err)
		}
	}
	if err := s.eng.Start(); err != nil {
		return fail(err)
	}
	// QUIC stays after the engine: its queries go to the loops, and a client whose
	// handshake came first would be refused instead of getting no answer yet.
	if err := s.startQUIC(cfg, binds); err != nil {
		s.stopServing()
		return fail(err)
	}
	s.pol.run()
	for _, b := range cfg.Binds {
		log.Info("listening", "listener", b.ListenAddress, "protocol", b.Protocol)
	}
	if len(cfg.Webserver.ListenAddresses) > 0 {
		if s.adm, err = startAdmin(s, cfg.Webserver); err != nil {
			s.stopServing()
			return fail(err)
		}
	}
	// Last, so that a failed start leaves no tuner behind.
	s.tuneGC(cfg)
	return s, nil
}

// Engine returns the running engine.
func (s *Server) Engine() *engine.Engine { return s.eng }

// Reload re-reads the configuration file and applies it whole, or not at all: on any
// error the previous state keeps serving and the error is returned.
func (s *Server) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.reload()
	if err != nil {
		s.reloadFailures.Inc()
		s.log.Error("reload rejected, previous configuration still serving", "err", err)
		return err
	}
	s.reloads.Inc()
	s.log.Info("reloaded", "config", s.path)
	return nil
}

func (s *Server) reload() error {
	cfg, err := config.Load(s.path)
	if err != nil {
		return err
	}
	if err := startOnlyUnchanged(s.cfg, cfg); err != nil {
		return err
	}
	if s.upgrading.Load() {
		return fmt.Errorf("%s: a binary upgrade is under way; reload the new process", cfg.Path)
	}
	lp, err := s.prepareListeners(cfg)
	if err != nil {
		return err
	}
	p, err := s.prepare(cfg, lp.tls)
	if err != nil {
		lp.abort()
		return err
	}
	binds, err := s.buildBinds(cfg, lp.tls)
	if err != nil {
		lp.abort()
		return err
	}
	bp, err := s.eng.PrepareBinds(engineBinds(cfg, binds))
	if err != nil {
		lp.abort()
		return fmt.Errorf("%s: binds: %w", cfg.Path, err)
	}
	s.setTLSBinds(lp.tls, lp.retired)
	s.commit(p)
	s.applyTLSLimits(cfg)
	s.eng.Publish(p.be.state)
	retired := lp.retired
	s.eng.CommitBinds(bp, cfg.General.DrainTimeout.D(), func() { s.retire(retired) })
	for _, a := range bp.Added() {
		s.log.Info("listening", "listener", a)
	}
	for _, a := range bp.Removed() {
		s.log.Info("stopped listening; its connections drain", "listener", a)
	}
	s.useBackends(p.be)
	s.tuneGC(cfg)
	setMemoryLimit(cfg, s.log)
	s.cfg = cfg
	return nil
}

// useBackends starts the health checks and metrics of a newly published backend set.
func (s *Server) useBackends(b *backends) {
	s.be = b
	s.hc.start(b.set, s.log)
	s.dyn.set(b)
}

// plan is a configuration fully loaded and checked, ready to be swapped in: everything a
// reload reads from disk is in it, so that commit only swaps pointers.
type plan struct {
	be      *backends
	snaps   map[*tlsframe.Store]*tlsframe.Snapshot // without staples: commit adds the held ones
	routes  map[string][]stapleRoute
	ocsp    *ocsp.Plan
	tickets map[*tlsBind]*tlsframe.TicketKeyUpdate // ticket key files read for each bind
	rules   preparedRules
	tap     *dnstapPlan
}

// prepare reads and checks everything a configuration names (backends, certificates and
// keys, ticket key files, staple sources with their cache and response files) and builds
// the new state beside the old, changing nothing that is served. Its errors name the
// file and the key.
func (s *Server) prepare(cfg *config.Config, tls map[string]*tlsBind) (*plan, error) {
	if err := ensureDevPKI(cfg); err != nil {
		return nil, err
	}
	be, err := buildState(cfg, s.be)
	if err != nil {
		return nil, err
	}
	pr, err := compileRules(cfg, be.state, s.loops, s.pol.clock, s.log)
	if err != nil {
		return nil, err
	}
	be.state.Rules = pr.rs
	p := &plan{be: be, rules: pr, snaps: map[*tlsframe.Store]*tlsframe.Snapshot{}, routes: map[string][]stapleRoute{},
		tickets: map[*tlsBind]*tlsframe.TicketKeyUpdate{}}
	if p.tap, err = s.prepareDnstap(cfg, pr.rs); err != nil {
		return nil, err
	}
	sources := map[string]ocsp.CertSource{}
	keys := map[string]string{} // certificate ID → the key of its first source, for errors
	for i, b := range cfg.Binds {
		if b.TLS == nil {
			continue
		}
		tb := tls[tlsKey(b)]
		// The ticket key file is read at every reload, changed or not: rewriting it and
		// reloading is how keys from a file rotate (as with dnsdist). An absent key keeps
		// the ring: dropping keys would end every session.
		if f := b.TLS.TicketKeyFile; f != "" {
			u, err := tb.tickets.Prepare(f)
			if err != nil {
				return nil, cfg.At(fmt.Sprintf("binds[%d].tls.ticket_key_file", i), err)
			}
			p.tickets[tb] = u
		}
		snap, err := loadSnapshot(b, tb.tickets, tb.keyLog)
		if err != nil {
			return nil, cfg.At(fmt.Sprintf("binds[%d].tls.certificates", i), err)
		}
		p.snaps[tb.store] = snap
		if err := stapleSources(cfg, i, snap, tb.store, p.routes, sources, keys); err != nil {
			return nil, err
		}
	}
	if p.ocsp, err = prepareSources(s.st.mgr, cfg, sources, keys); err != nil {
		return nil, err
	}
	return p, nil
}

// prepareSources has the manager check and read the staple sources; an error names the
// key of the certificate's first source.
func prepareSources(m *ocsp.Manager, cfg *config.Config, sources map[string]ocsp.CertSource, keys map[string]string) (*ocsp.Plan, error) {
	list := make([]ocsp.CertSource, 0, len(sources))
	for _, src := range sources {
		list = append(list, src)
	}
	slices.SortFunc(list, func(a, b ocsp.CertSource) int { return cmp.Compare(keys[a.ID], keys[b.ID]) })
	p, err := m.Prepare(list)
	if err != nil {
		var se *ocsp.SourceError
		if errors.As(err, &se) && se.Index < len(list) {
			return nil, cfg.At(keys[list[se.Index].ID]+".ocsp", err)
		}
		return nil, fmt.Errorf("%s: %w", cfg.Path, err)
	}
	return p, nil
}

// commit swaps a prepared configuration in: ticket keys, the staple sources, then the
// snapshots with the staples held for them. Nothing in it reads a file or can fail, so a
// reload either changes everything or, when prepare failed, nothing.
func (s *Server) commit(p *plan) {
	for tb, u := range p.tickets {
		tb.tickets.Install(u)
	}
	// The blocks in force stay; the rule set goes out with the State the caller publishes.
	s.pol.dyn.Install(p.rules.dyn)
	// Routes first, so that what the manager publishes for the new sources is held;
	// install then puts the staples held into the new snapshots and publishes them.
	s.st.route(p.routes)
	s.st.mgr.Commit(p.ocsp)
	s.st.install(p.snaps)
	s.commitDnstap(p.tap)
}

// Shutdown stops taking queries, lets those in flight finish up to the drain timeout and
// stops everything.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	dctx, cancel := context.WithTimeout(ctx, s.cfg.General.DrainTimeout.D())
	defer cancel()
	err := errors.Join(s.stopQUIC(dctx), s.eng.Drain(dctx))
	if s.adm != nil {
		s.adm.shutdown(ctx)
	}
	s.stopRest()
	return err
}

// stopRest stops what runs beside the engine: health checks, policies, TLS, the demo
// backend and the GC tuner.
func (s *Server) stopRest() {
	s.hc.stop()
	s.pol.stop()
	s.closeTLS()
	s.stopDemo()
	s.closeDnstap()
	if s.gc != nil {
		s.gc.Stop()
	}
}

// closeInheritedAdmin closes the admin sockets handed over for addresses the
// configuration no longer has.
func (s *Server) closeInheritedAdmin() {
	for addr, fd := range s.inheritAdmin {
		s.log.Info("inherited admin listener not in the configuration; closed", "listener", addr)
		_ = newFile(fd, addr).Close()
	}
	s.inheritAdmin = nil
}

func (s *Server) closeTLS() {
	s.fm.close() // first: its callbacks feed the rings and the manager closed below
	if s.st != nil && s.st.mgr != nil {
		_ = s.st.mgr.Close()
		s.st.close()
	}
	s.tlsMu.Lock()
	defer s.tlsMu.Unlock()
	for _, tb := range s.tls {
		tb.close()
	}
	for tb := range s.retiring {
		tb.close()
	}
	s.retiring = nil
}

func (s *Server) stopDemo() {
	if s.demo != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = s.demo.Shutdown(ctx)
	}
}

// Check validates a configuration file as Start would, without serving it.
func Check(path string) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	be, err := buildState(cfg, nil)
	if err != nil {
		return err
	}
	if _, err := compileRules(cfg, be.state, 1, nil, nil); err != nil {
		return err
	}
	if _, err := fleetTLS(cfg); err != nil {
		return err
	}
	sources, keys := map[string]ocsp.CertSource{}, map[string]string{}
	for i, b := range cfg.Binds {
		if b.TLS == nil {
			continue
		}
		if f := b.TLS.TicketKeyFile; f != "" {
			if _, err := tlsframe.NewTicketKeys(b.TLS.NumberOfTicketsKeys, 0, f); err != nil {
				return cfg.At(fmt.Sprintf("binds[%d].tls.ticket_key_file", i), err)
			}
		}
		snap, err := loadSnapshot(b, nil, nil)
		if err != nil {
			if cfg.DevPKI != nil && errors.Is(err, os.ErrNotExist) {
				continue // created by dev_pki at start
			}
			return cfg.At(fmt.Sprintf("binds[%d].tls.certificates", i), err)
		}
		if err := stapleSources(cfg, i, snap, nil, map[string][]stapleRoute{}, sources, keys); err != nil {
			return err
		}
	}
	m := ocsp.NewManager(ocspOptions(cfg.OCSP), func(string, *ocsp.Staple) {})
	defer m.Close()
	_, err = prepareSources(m, cfg, sources, keys)
	return err
}

func (s *Server) buildBinds(cfg *config.Config, tls map[string]*tlsBind) ([]engine.BindOptions, error) {
	var out []engine.BindOptions
	for i, b := range cfg.Binds {
		ap, err := netip.ParseAddrPort(b.ListenAddress)
		if err != nil {
			return nil, fmt.Errorf("%s: binds[%d]: %w", cfg.Path, i, err)
		}
		bo := engine.BindOptions{Addr: ap, Protocol: b.Protocol, Pool: b.Pool, PadResponses: b.PadResponses}
		bo.Proxy = bindProxy(b)
		if b.TCP != nil {
			bo.MaxConns = b.TCP.MaxConcurrentConnections
		}
		if tb := tls[tlsKey(b)]; tb != nil {
			bo.TLSStore, bo.Handshaker = tb.store, tb.hs
		}
		if d := b.DoH; d != nil {
			o := &doh.Options{
				Paths:                d.Paths,
				ExactPathMatching:    *d.ExactPathMatching,
				MaxConcurrentStreams: uint32(d.MaxConcurrentStreams),
				MaxBodySize:          d.MaxBodySize,
				IdleTimeout:          time.Duration(d.IdleTimeout) * time.Second,
				SendCacheControl:     *d.SendCacheControlHeaders,
				TrustForwardedFor:    d.TrustForwardedForHeader,

				MaxHeaderListSize:     uint32(d.MaxHeaderListSize),
				MaxConnMemory:         d.MaxConnectionMemory,
				AbuseWindow:           time.Duration(d.AbuseWindow) * time.Second,
				MaxRapidResets:        d.MaxRapidResets,
				MaxSettingsFrames:     d.MaxSettingsFrames,
				MaxPingFrames:         d.MaxPingFrames,
				MaxContinuationFrames: d.MaxContinuationFrames,
			}
			for _, h := range d.CustomResponseHeaders {
				o.CustomResponseHeaders = append(o.CustomResponseHeaders, doh.Header{Key: h.Key, Value: h.Value})
			}
			bo.DoH = o
		}
		out = append(out, bo)
	}
	return out, nil
}
