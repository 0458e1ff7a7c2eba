package fleet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// DefaultLeaseTTL is the lease of a member's session: its registration and
// its candidacy disappear this long after its last renewal, so it bounds
// how long a crashed leader holds the election. etcd's concurrency package
// defaults to 60 s; 10 s is long enough to ride out a slow fsync or a
// leader change inside etcd (a few election timeouts), and short enough
// that a staple refresh or a key write waits at most that for a new leader
// (the next key is written a whole epoch before it is needed).
const DefaultLeaseTTL = 10 * time.Second

// Back-off between connection attempts: start fast (a restarted etcd is
// usually back within a second) and cap at 10 s, so that a fleet of
// instances does not hammer an etcd that is coming back, while still
// catching up within seconds of its return. Jitter spreads the members.
const (
	backoffMin = 200 * time.Millisecond
	backoffMax = 10 * time.Second
)

// Options configure a Fleet.
type Options struct {
	// Name is the fleet's name: everything lives under /dnsfront/<Name>/.
	Name string
	// Endpoints are etcd's client URLs.
	Endpoints []string
	// TLS, when set, is used to reach etcd (CA and client certificate: see TLSConfig).
	TLS *tls.Config
	// Username and Password authenticate to etcd when its auth is enabled.
	Username, Password string
	// DialTimeout bounds each connection attempt and each request to etcd.
	DialTimeout time.Duration
	// Member names this instance in the fleet (general.server_id or the host name).
	Member string
	// LeaseTTL is the session lease (0: DefaultLeaseTTL). etcd rounds it to whole seconds.
	LeaseTTL time.Duration
	// RotationDelay is dnsdist's tickets_keys_rotation_delay: the length of a key epoch.
	// Every member of a fleet must use the same.
	RotationDelay time.Duration
	// NumberOfKeys is dnsdist's number_of_tickets_keys: the keys kept for decryption,
	// the encrypting one included. The next epoch's key is installed on top when known.
	NumberOfKeys int
	// SecretFile, when set, holds the secret (at least 16 bytes) that seals ticket keys
	// in etcd. Every member must read the same secret.
	SecretFile string
	// Log receives the fleet's events (never key material). nil: slog.Default().
	Log *slog.Logger
	// Clock drives key epochs (nil: the system clock).
	Clock Clock

	// OnTicketKeys receives the ring to install, the encrypting key first, whenever it
	// changes (tlsframe.TicketKeys takes exactly this order).
	OnTicketKeys func(keys [][32]byte)
	// OnStaple receives a staple published by the fleet's leader for the certificate whose
	// DER has this SHA-256. It comes from etcd: validate it before stapling it.
	OnStaple func(certSHA256 [32]byte, der []byte)
	// OnBlock and OnUnblock receive dynamic blocks added and removed anywhere in the fleet
	// (removed through DeleteBlock or by expiry).
	OnBlock   func(b Block)
	OnUnblock func(prefix netip.Prefix)
	// OnLeader tells whether this member is the leader: the leader fetches staples and
	// publishes them; the others rely on it and fetch on their own only when it is gone.
	OnLeader func(leader bool)
}

func (o *Options) check() error {
	var errs []string
	if o.Name == "" || strings.ContainsAny(o.Name, "/ ") {
		errs = append(errs, fmt.Sprintf("name %q must be non-empty, without '/' or spaces", o.Name))
	}
	if len(o.Endpoints) == 0 {
		errs = append(errs, "no etcd endpoints")
	}
	if o.Member == "" || strings.ContainsAny(o.Member, "/") {
		errs = append(errs, fmt.Sprintf("member %q must be non-empty, without '/'", o.Member))
	}
	if o.DialTimeout <= 0 {
		errs = append(errs, "dial timeout must be positive")
	}
	if o.RotationDelay < time.Second {
		errs = append(errs, fmt.Sprintf("rotation delay %v is under 1s", o.RotationDelay))
	}
	if o.NumberOfKeys < 1 {
		errs = append(errs, fmt.Sprintf("number of keys %d is under 1", o.NumberOfKeys))
	}
	if o.LeaseTTL < 0 {
		errs = append(errs, "negative lease TTL")
	}
	if len(errs) > 0 {
		return errors.New("fleet: " + strings.Join(errs, "; "))
	}
	return nil
}

// Fleet is this instance's membership of a fleet. Its state is guarded by mu.
type Fleet struct {
	opt    Options
	prefix string
	log    *slog.Logger
	clock  Clock
	sealer *sealer
	cli    *clientv3.Client
	ttl    int64 // seconds

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	wake   chan struct{} // the rotation loop recomputes the ring
	// tried turns true when the first attempt to reach etcd has ended, either way.
	tried   atomic.Bool
	closing atomic.Bool
	warned  atomic.Bool // the first failure to connect was logged
	cbMu    sync.Mutex  // callbacks one at a time, in order

	mu        sync.Mutex
	sess      *concurrency.Session
	connected bool
	isLeader  bool
	lastErr   string
	lastSync  time.Time
	lag       time.Duration
	applied   int64 // etcd revision applied
	reconnect uint64
	unsealErr uint64
	ring      keyring
	installed [][32]byte
	epoch     uint64
	derived   bool
	members   map[string]Member
	election  map[string]candidate // election key → candidate
	staples   map[[32]byte]stapleRecord
	blocks    map[netip.Prefix]Block
}

type candidate struct {
	rev    int64
	member string
}

// Start connects to etcd in the background and returns at once: a fleet
// that cannot reach etcd yet is not an error, it is degraded mode. Only
// wrong options, an unreadable secret file or a bad endpoint fail.
func Start(ctx context.Context, opt Options) (*Fleet, error) {
	if err := opt.check(); err != nil {
		return nil, err
	}
	if opt.LeaseTTL == 0 {
		opt.LeaseTTL = DefaultLeaseTTL
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.Clock == nil {
		opt.Clock = realClock{}
	}
	s, err := newSealer(opt.Name, opt.SecretFile)
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   opt.Endpoints,
		TLS:         opt.TLS,
		Username:    opt.Username,
		Password:    opt.Password,
		DialTimeout: opt.DialTimeout,
		// etcd's client logs every retry at warn level through zap; the
		// fleet reports connection state itself, through slog.
		Logger: zap.NewNop(),
		// Keep-alive pings detect a dead etcd member between requests.
		DialKeepAliveTime:    opt.DialTimeout,
		DialKeepAliveTimeout: opt.DialTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("fleet: etcd client: %w", err)
	}
	f := &Fleet{
		opt:      opt,
		prefix:   "/dnsfront/" + opt.Name + "/",
		log:      opt.Log.With("fleet", opt.Name, "member", opt.Member),
		clock:    opt.Clock,
		sealer:   s,
		cli:      cli,
		ttl:      max(1, int64((opt.LeaseTTL+time.Second-1)/time.Second)),
		wake:     make(chan struct{}, 1),
		ring:     keyring{name: opt.Name, n: opt.NumberOfKeys, shared: map[uint64][32]byte{}},
		members:  map[string]Member{},
		election: map[string]candidate{},
		staples:  map[[32]byte]stapleRecord{},
		blocks:   map[netip.Prefix]Block{},
	}
	f.ctx, f.cancel = context.WithCancel(context.WithoutCancel(ctx))
	f.wg.Add(2)
	go f.connectLoop()
	go f.rotateLoop()
	return f, nil
}

// Close leaves the fleet: the session's lease is revoked first, so that
// another member takes over the election at once instead of after the TTL,
// then every goroutine is stopped and waited for.
func (f *Fleet) Close() error {
	f.mu.Lock()
	sess := f.sess
	f.mu.Unlock()
	f.closing.Store(true)
	if sess != nil {
		_ = sess.Close() // revokes the lease, bounded by the TTL
	}
	f.cancel()
	err := f.cli.Close()
	f.wg.Wait()
	return err
}

// abandon stops like a crash: no lease revoked, so the election is held
// until the lease expires. Tests measure failover with it.
func (f *Fleet) abandon() {
	f.closing.Store(true)
	f.cancel()
	_ = f.cli.Close()
	f.wg.Wait()
}

// connectLoop keeps a session to etcd, with back-off between attempts.
func (f *Fleet) connectLoop() {
	defer f.wg.Done()
	backoff := backoffMin
	for f.ctx.Err() == nil {
		start := time.Now()
		err := f.session()
		if f.closing.Load() {
			f.mu.Lock()
			f.connected, f.isLeader, f.sess = false, false, nil
			f.mu.Unlock()
			return
		}
		f.setDisconnected(err)
		// A session that lived through a lease TTL was a success: start
		// the back-off over.
		if time.Since(start) > f.opt.LeaseTTL {
			backoff = backoffMin
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, backoffMax)
		select {
		case <-f.ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (f *Fleet) setDisconnected(err error) {
	f.mu.Lock()
	was, wasLeader := f.connected, f.isLeader
	f.connected, f.isLeader, f.sess = false, false, nil
	if err != nil {
		f.lastErr = err.Error()
	}
	f.mu.Unlock()
	f.tried.Store(true)
	switch {
	case was:
		f.log.Warn("fleet: lost etcd, serving with what this member has; ticket keys rotate locally", "err", err)
	case !f.warned.Swap(true):
		// Once, not at every retry: the status and metrics carry the rest.
		f.log.Warn("fleet: cannot reach etcd yet, retrying with back-off", "err", err)
	}
	if wasLeader {
		f.callback(func() {
			if f.opt.OnLeader != nil {
				f.opt.OnLeader(false)
			}
		})
	}
}

// session runs one etcd session: lease, registration, a full read, then the
// watch and the candidacy, until the lease is lost or the watch breaks.
func (f *Fleet) session() error {
	gctx, cancel := context.WithTimeout(f.ctx, f.opt.DialTimeout)
	lease, err := f.cli.Grant(gctx, f.ttl)
	cancel()
	if err != nil {
		return fmt.Errorf("lease: %w", err)
	}
	sess, err := concurrency.NewSession(f.cli, concurrency.WithLease(lease.ID), concurrency.WithTTL(int(f.ttl)), concurrency.WithContext(f.ctx))
	if err != nil {
		return fmt.Errorf("session: %w", err)
	}
	sctx, scancel := context.WithCancel(f.ctx)
	defer scancel()
	defer func() {
		// Revoke so that the election and registration go at once; bounded.
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(f.ctx), f.opt.DialTimeout)
		_, _ = f.cli.Revoke(rctx, lease.ID)
		rcancel()
	}()

	if err := f.register(sctx, lease.ID); err != nil {
		return err
	}
	rev, err := f.resync(sctx)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.sess, f.connected, f.lastErr = sess, true, ""
	f.reconnect++
	f.mu.Unlock()
	f.tried.Store(true)
	f.log.Info("fleet: connected to etcd", "revision", rev)

	// The campaign is not waited for: when etcd is gone, etcd's Campaign
	// resigns on the client's own context and returns only when etcd does
	// or the client closes (Close closes it before waiting).
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		if err := f.campaign(sctx, sess); err != nil {
			f.log.Warn("fleet: election", "err", err)
			scancel()
		}
	}()
	watchErr := make(chan error, 1)
	go func() { watchErr <- f.watch(sctx, rev) }()
	heartbeat := time.NewTicker(f.opt.LeaseTTL / 3)
	defer heartbeat.Stop()
	for {
		select {
		case <-sess.Done():
			scancel()
			<-watchErr
			return errors.New("session lease lost")
		case err := <-watchErr:
			if err == nil {
				err = errors.New("session ended")
			}
			return err
		case <-heartbeat.C:
			f.heartbeat(sctx)
		}
	}
}

func (f *Fleet) register(ctx context.Context, lease clientv3.LeaseID) error {
	val, err := jsonString(Member{Name: f.opt.Member, Since: time.Now().UTC()})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.opt.DialTimeout)
	defer cancel()
	if _, err := f.cli.Put(ctx, f.prefix+membersDir+f.opt.Member, val, clientv3.WithLease(lease)); err != nil {
		return fmt.Errorf("register: %w", err)
	}
	return nil
}

// heartbeat records the last time this member was known to be in sync: the
// watch had applied everything up to the revision etcd reports now.
func (f *Fleet) heartbeat(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, f.opt.DialTimeout)
	defer cancel()
	resp, err := f.cli.Get(ctx, f.prefix+membersDir, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return
	}
	f.mu.Lock()
	if f.applied >= resp.Header.Revision {
		f.lastSync = time.Now()
	}
	f.mu.Unlock()
}

// campaign runs for leader, and does the leader's work while elected.
func (f *Fleet) campaign(ctx context.Context, sess *concurrency.Session) error {
	el := concurrency.NewElection(sess, f.prefix+"election")
	if err := el.Campaign(ctx, f.opt.Member); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("campaign: %w", err)
	}
	f.mu.Lock()
	if ctx.Err() != nil {
		f.mu.Unlock()
		return nil
	}
	f.isLeader = true
	f.mu.Unlock()
	f.log.Info("fleet: elected leader")
	f.callback(func() {
		if f.opt.OnLeader != nil {
			f.opt.OnLeader(true)
		}
	})
	f.leaderLoop(ctx)
	return nil
}

// leaderLoop writes each next ticket key right after an epoch starts: a
// whole epoch ahead of its use. A failed write is retried with back-off.
func (f *Fleet) leaderLoop(ctx context.Context) {
	backoff := backoffMin
	for {
		e := epochAt(f.clock.Now(), f.opt.RotationDelay)
		var wait <-chan time.Time
		if err := f.ensureTicketKeys(ctx, e); err != nil {
			if ctx.Err() != nil {
				return
			}
			f.log.Warn("fleet: writing the next ticket key failed, retrying", "epoch", e+1, "err", err)
			wait = time.After(backoff)
			backoff = min(2*backoff, backoffMax)
		} else {
			backoff = backoffMin
			wait = f.clock.At(epochStart(e+1, f.opt.RotationDelay))
		}
		select {
		case <-ctx.Done():
			return
		case <-wait:
		}
	}
}

// rotateLoop installs the ring of each epoch at its start, connected or
// not, and again whenever the shared keys change.
func (f *Fleet) rotateLoop() {
	defer f.wg.Done()
	for {
		e := epochAt(f.clock.Now(), f.opt.RotationDelay)
		f.install(e)
		select {
		case <-f.ctx.Done():
			return
		case <-f.wake:
		case <-f.clock.At(epochStart(e+1, f.opt.RotationDelay)):
		}
	}
}

func (f *Fleet) nudge() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *Fleet) install(e uint64) {
	f.mu.Lock()
	f.ring.prune(e)
	keys, derived := f.ring.ring(e)
	changed := !slices.Equal(keys, f.installed)
	prevEpoch, prevDerived := f.epoch, f.derived
	if keys != nil {
		f.epoch, f.derived = e, derived
	}
	if changed && keys != nil {
		f.installed = keys
	}
	f.mu.Unlock()
	if !changed || keys == nil {
		return
	}
	if e != prevEpoch || derived != prevDerived {
		if derived {
			f.log.Warn("fleet: no shared ticket key for this epoch, using the locally derived one", "epoch", e)
		} else {
			f.log.Info("fleet: ticket keys installed", "epoch", e, "keys", len(keys))
		}
	}
	f.callback(func() {
		if f.opt.OnTicketKeys != nil {
			f.opt.OnTicketKeys(keys)
		}
	})
}

// callback runs fn with the other callbacks excluded, so that a receiver
// sees events in order.
func (f *Fleet) callback(fn func()) {
	f.cbMu.Lock()
	defer f.cbMu.Unlock()
	fn()
}

// IsLeader reports whether this member is the fleet's leader now.
func (f *Fleet) IsLeader() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.isLeader
}

// Tried reports whether the first attempt to reach etcd has ended, connected or not.
// Until then nobody can tell whether this member will lead, be served by a leader, or act
// alone; the attempt is bounded by the dial timeout.
func (f *Fleet) Tried() bool { return f.tried.Load() }

// Connected reports whether this member holds a session with etcd now.
func (f *Fleet) Connected() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.connected
}

// TicketKeys returns the ring installed last, the encrypting key first (nil
// before the fleet has any key).
func (f *Fleet) TicketKeys() [][32]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.installed)
}
