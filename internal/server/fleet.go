package server

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dnsfront/dnsfront/config"
	"github.com/dnsfront/dnsfront/engine/rules"
	"github.com/dnsfront/dnsfront/internal/fleet"
	"github.com/dnsfront/dnsfront/ocsp"
)

// fleetMode is this instance's part in a fleet (docs/fleet.md): it installs the fleet's
// ticket keys in every TLS bind's ring, hands staples from the leader to the OCSP manager
// (which validates them as it validates files), applies the blocks of the other members
// and shares this one's, and lets the manager fetch only while this instance leads or
// cannot reach etcd. A nil *fleetMode is an instance that acts alone: every method is a
// no-op on it.
//
// Concurrency: the Fleet is behind an atomic pointer (nil until Start has it); writes to
// etcd go through one queue worker, so that the callers that must not block (the rules'
// evaluator, the OCSP manager's publish callback, the fleet's own callbacks) never wait
// on etcd. shared and blocks are guarded by mu; tickets by ticketsMu.
type fleetMode struct {
	cfg    *config.Fleet
	log    *slog.Logger
	member string
	f      atomic.Pointer[fleet.Fleet]

	jobs   chan fleetJob
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	mu     sync.Mutex
	shared map[string][32]byte        // certificate ID → SHA-256 of the staple DER last shared, either way
	blocks map[netip.Prefix]time.Time // the end of each block as last shared by this member

	// ticketsMu orders the fleet's installs in the binds in force against a reload's
	// install in the binds it adds: whichever comes second sees the other's work, so a
	// bind published by a reload never keeps a ring older than the others'.
	ticketsMu sync.Mutex
	tickets   [][32]byte // the fleet's ring as last installed; nil before its first keys
}

type fleetJob struct {
	what string
	run  func(context.Context, *fleet.Fleet) error
}

// fleetQueue bounds the writes waiting for etcd. A write waits at most the dial timeout,
// so a queue this long covers a burst of blocks raised in one evaluation while etcd is
// slow; beyond it writes are dropped and logged: the local state is already applied, only
// its sharing is lost.
const fleetQueue = 1024

func newFleetMode(cfg *config.Config, log *slog.Logger) *fleetMode {
	if cfg.Fleet == nil {
		return nil
	}
	member := cfg.General.ServerID
	if member == "" {
		member, _ = os.Hostname()
	}
	fm := &fleetMode{cfg: cfg.Fleet, log: log, member: member,
		jobs: make(chan fleetJob, fleetQueue), done: make(chan struct{}), shared: map[string][32]byte{},
		blocks: map[netip.Prefix]time.Time{}}
	fm.ctx, fm.cancel = context.WithCancel(context.Background())
	go fm.writer()
	return fm
}

func (fm *fleetMode) writer() {
	defer close(fm.done)
	for {
		select {
		case <-fm.ctx.Done():
			return
		case j := <-fm.jobs:
			f := fm.f.Load()
			if f == nil {
				continue
			}
			if err := j.run(fm.ctx, f); err != nil && fm.ctx.Err() == nil {
				fm.log.Warn("fleet: sharing failed; applied here only", "what", j.what, "err", err)
			}
		}
	}
}

func (fm *fleetMode) enqueue(what string, run func(context.Context, *fleet.Fleet) error) {
	select {
	case fm.jobs <- fleetJob{what, run}:
	default:
		fm.log.Warn("fleet: write queue full; applied here only", "what", what)
	}
}

// mayFetch is the OCSP manager's FetchGate: the leader fetches for the fleet; the others
// fetch only while they cannot reach etcd. Until the first attempt to reach etcd has
// ended, nobody is known to lead, and fetching then would make every instance of a fleet
// restarted together ask the responder; the attempt is bounded by the dial timeout, but
// on a loaded machine it may take longer, so the gate waits for its end, not for a time.
func (fm *fleetMode) mayFetch() bool {
	if fm == nil {
		return true
	}
	f := fm.f.Load()
	if f == nil {
		return false // the fleet starts right after the manager; Start does not block
	}
	if f.IsLeader() {
		return true
	}
	return f.Tried() && !f.Connected()
}

// wrapPublish shares, when this instance leads, every verified staple the OCSP manager
// publishes, after the manager validated it; a staple that came from the fleet is not
// written back.
func (fm *fleetMode) wrapPublish(publish func(string, *ocsp.Staple)) func(string, *ocsp.Staple) {
	if fm == nil {
		return publish
	}
	return func(id string, st *ocsp.Staple) {
		publish(id, st)
		if st != nil {
			fm.shareStaple(id, st.DER, st.Unverified)
		}
	}
}

func (fm *fleetMode) shareStaple(id string, der []byte, unverified bool) {
	f := fm.f.Load()
	if unverified || f == nil || !f.IsLeader() {
		return
	}
	fp, err := hex.DecodeString(id)
	if err != nil || len(fp) != sha256.Size {
		return
	}
	sum := sha256.Sum256(der)
	fm.mu.Lock()
	same := fm.shared[id] == sum
	fm.shared[id] = sum
	fm.mu.Unlock()
	if same {
		return
	}
	der = append([]byte(nil), der...)
	fm.enqueue("staple "+id[:16], func(ctx context.Context, f *fleet.Fleet) error {
		return f.PublishStaple(ctx, [32]byte(fp), der)
	})
}

// shareBlock is the rules' OnBlock: a block the rules raised or extended here is written
// for the others. It runs on the evaluator and only queues. Suffix blocks and warnings
// stay local: the fleet shares client networks.
//
// The evaluator extends a block every second while its client stays over the rate; the
// extension is written only once the block's end has moved by half its duration, so a
// flood from many sources costs etcd a write per source every half block, not every
// second, and the other members' copies never end more than half a duration early.
func (fm *fleetMode) shareBlock(b rules.BlockInfo) {
	if fm == nil || b.Warning || b.Network == "" {
		return
	}
	p, err := config.ParsePrefix(b.Network)
	if err != nil {
		return
	}
	now := time.Now()
	fm.mu.Lock()
	last, had := fm.blocks[p]
	share := !had || !now.Before(last) || b.Until.Sub(last) >= b.Remaining/2
	if share {
		fm.blocks[p] = b.Until
	}
	if len(fm.blocks) > fleetQueue {
		for q, until := range fm.blocks {
			if !now.Before(until) {
				delete(fm.blocks, q)
			}
		}
	}
	fm.mu.Unlock()
	if share {
		fm.putBlock(b.Network, b.Until, b.Reason, b.Action)
	}
}

// shareAdded shares a block added through the admin API.
func (fm *fleetMode) shareAdded(r rules.BlockRequest) {
	if fm == nil || r.Network == "" {
		return
	}
	fm.putBlock(r.Network, time.Now().Add(r.Duration), r.Reason, r.Action)
}

func (fm *fleetMode) putBlock(network string, until time.Time, reason, action string) {
	p, err := config.ParsePrefix(network)
	if err != nil {
		return
	}
	if action == "" {
		action = rules.BlockDrop.String()
	}
	fm.enqueue("block "+p.String(), func(ctx context.Context, f *fleet.Fleet) error {
		return f.PutBlock(ctx, p, until, reason, action)
	})
}

// shareRemoved lifts, everywhere, a block removed through the admin API.
func (fm *fleetMode) shareRemoved(key string) {
	if fm == nil {
		return
	}
	p, err := config.ParsePrefix(key)
	if err != nil {
		return // a suffix block: local only
	}
	fm.mu.Lock()
	delete(fm.blocks, p)
	fm.mu.Unlock()
	fm.enqueue("unblock "+p.String(), func(ctx context.Context, f *fleet.Fleet) error {
		return f.DeleteBlock(ctx, p)
	})
}

// startFleet joins the fleet once the TLS binds, the OCSP manager and the rules exist.
// It returns at once: an unreachable etcd is degraded mode, not an error.
func (s *Server) startFleet() error {
	fm := s.fm
	if fm == nil {
		return nil
	}
	c := fm.cfg
	opt := fleet.Options{
		Name:        c.Name,
		Endpoints:   c.Etcd.Endpoints,
		Username:    c.Etcd.Username,
		Password:    c.Etcd.Password,
		DialTimeout: c.Etcd.DialTimeout.D(),
		Member:      fm.member,
		SecretFile:  c.SecretFile,
		Log:         s.log,
	}
	opt.RotationDelay, opt.NumberOfKeys = s.cfg.FleetTicketSettings()
	tc, err := fleetTLS(s.cfg)
	if err != nil {
		return err
	}
	opt.TLS = tc
	// From the fleet's first keys on, the fleet rotates them and local rotation would fight
	// it; until then (etcd unreachable since start) the rings keep rotating on their own.
	opt.OnTicketKeys = func(keys [][32]byte) { fm.installTickets(keys, s.tlsBinds) }
	opt.OnStaple = func(fp [32]byte, der []byte) {
		id := hex.EncodeToString(fp[:])
		fm.mu.Lock()
		fm.shared[id] = sha256.Sum256(der)
		fm.mu.Unlock()
		if _, err := s.st.mgr.Offer(id, der); err != nil {
			s.log.Warn("fleet: not stapling a shared staple", "cert", id[:16], "err", err)
		}
	}
	opt.OnBlock = func(b fleet.Block) {
		if b.Origin == fm.member {
			return // written here: already applied
		}
		d := time.Until(b.Until)
		if d <= 0 {
			return
		}
		req := rules.BlockRequest{Network: b.Prefix.String(), Action: b.Action, Duration: d,
			Reason: fmt.Sprintf("%s (fleet, from %s)", b.Reason, b.Origin)}
		if err := s.pol.dyn.Add(req); err != nil {
			s.log.Warn("fleet: not applying a shared block", "block", b.Prefix.String(), "err", err)
		}
	}
	opt.OnUnblock = func(p netip.Prefix) { s.pol.dyn.Remove(p.String()) }
	opt.OnLeader = func(leader bool) {
		if !leader {
			return
		}
		// A new leader shares what it holds: the others may have started after the last
		// refresh, and the next one is up to half a validity window away.
		s.st.mu.Lock()
		held := make(map[string]*ocsp.Staple, len(s.st.held))
		for id, h := range s.st.held {
			held[id] = h.s
		}
		s.st.mu.Unlock()
		for id, st := range held {
			fm.shareStaple(id, st.DER, st.Unverified)
		}
	}
	f, err := fleet.Start(context.Background(), opt)
	if err != nil {
		return fmt.Errorf("%s: fleet: %w", s.cfg.Path, err)
	}
	fm.f.Store(f)
	s.reg.MustRegister(f.Collector())
	s.log.Info("fleet: joining", "fleet", c.Name, "member", fm.member, "endpoints", c.Etcd.Endpoints)
	return nil
}

// installTickets makes keys the ring of every TLS bind in force, and stops the binds'
// own rotation. binds is read under ticketsMu, so that a bind a reload publishes
// meanwhile gets keys either here or from adoptTickets.
func (fm *fleetMode) installTickets(keys [][32]byte, binds func() map[string]*tlsBind) {
	fm.ticketsMu.Lock()
	defer fm.ticketsMu.Unlock()
	fm.tickets = keys
	for _, tb := range binds() {
		tb.tickets.Stop()
		tb.tickets.SetKeys(keys)
	}
}

// adoptTickets gives the TLS binds a reload has just published (added, or replaced with
// a new TLS side) the fleet's ring, so that sessions from the other members resume on
// them at once rather than from the next rotation. Before the fleet's first keys they
// keep rotating their own, as every bind does then. It runs at commit, after the binds
// are published, and cannot fail.
func (fm *fleetMode) adoptTickets(tbs []*tlsBind) {
	if fm == nil || len(tbs) == 0 {
		return
	}
	fm.ticketsMu.Lock()
	defer fm.ticketsMu.Unlock()
	if fm.tickets == nil {
		return
	}
	for _, tb := range tbs {
		tb.tickets.Stop()
		tb.tickets.SetKeys(fm.tickets)
	}
}

// fleetTLS loads the CA and client certificate that reach etcd; nil without fleet.etcd.tls.
// check-config calls it too, so that a bad file is found before a start.
func fleetTLS(cfg *config.Config) (*tls.Config, error) {
	if cfg.Fleet == nil || cfg.Fleet.Etcd.TLS == nil {
		return nil, nil
	}
	t := cfg.Fleet.Etcd.TLS
	tc, err := fleet.TLSConfig(t.CA, t.Certificate, t.Key)
	if err != nil {
		return nil, cfg.At("fleet.etcd.tls", err)
	}
	return tc, nil
}

// registerFleetAPI serves GET /api/v1/fleet: this member's view of the fleet.
func (s *Server) registerFleetAPI(mux *http.ServeMux, api func(http.HandlerFunc) http.Handler) {
	mux.Handle("GET /api/v1/fleet", api(func(w http.ResponseWriter, r *http.Request) {
		var f *fleet.Fleet
		if s.fm != nil {
			f = s.fm.f.Load()
		}
		if f == nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "fleet mode is off: the configuration has no fleet section"})
			return
		}
		f.Handler().ServeHTTP(w, r)
	}))
}

// close leaves the fleet (its lease revoked, so another member leads at once) and stops
// the writes still queued.
func (fm *fleetMode) close() {
	if fm == nil {
		return
	}
	fm.once.Do(func() {
		if f := fm.f.Load(); f != nil {
			_ = f.Close()
		}
		fm.cancel()
		<-fm.done
	})
}
