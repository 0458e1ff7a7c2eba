package ocsp

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"
)

// CertSource is one certificate whose staple the Manager keeps.
type CertSource struct {
	// ID is the stable key of the certificate: it names the cache file and
	// lets Set recognise the certificate on reload. Empty: CertID(Chain[0]).
	ID string
	// Name is how logs and metrics name the certificate (its file, say).
	// Empty: the leaf's subject.
	Name string
	// Chain is the leaf first, then its issuer and any intermediates. A
	// chain of the leaf alone makes the Manager look for the issuer in
	// IssuerFiles, then at the AIA caIssuers URL (once, in the background).
	// Until it is found, response files are checked for everything that
	// needs no issuer key and stapled as unverified (ValidateUnverified).
	Chain []*x509.Certificate
	// IssuerFiles are CA certificates (PEM) the configuration names
	// elsewhere: another certificate's issuer, a generate CA, the rest of
	// another chain. The first that issued the leaf is taken as its issuer
	// when Chain lacks it.
	IssuerFiles []string
	// Files are DER responses (ocsp_response_files) loaded at every Set.
	Files []string
	// Fetch asks the responder (Responder, else the AIA OCSP URL).
	Fetch     bool
	Responder string
	// Generate mints responses from a local CA key instead of fetching.
	Generate *GenerateSpec
}

// GenerateSpec is the local-PKI source: responses minted with the CA key.
type GenerateSpec struct {
	CACertFile string
	CAKeyFile  string
	Validity   time.Duration // 0: DefaultGenerateValidity
}

// Options configure a Manager. Zero values take the defaults in schedule.go.
type Options struct {
	CacheDir        string // "" disables the disk cache
	MinRefreshDelay time.Duration
	MaxRefreshDelay time.Duration
	BackoffCap      time.Duration
	RequestTimeout  time.Duration
	MaxResponseSize int64
	HTTPProxy       string // "" uses HTTP_PROXY/HTTPS_PROXY/NO_PROXY
	Logger          *slog.Logger
	Clock           Clock        // nil: the real clock
	HTTPClient      *http.Client // nil: one built from HTTPProxy
	// FetchGate, when set, is asked before each fetch from a responder; false puts the
	// fetch off (shared.go). A fleet member fetches only while it leads or is cut off.
	FetchGate func() bool
}

// Sources of a staple, as shown in status.
const (
	SourceFile     = "file"
	SourceCache    = "cache"
	SourceFetch    = "fetch"
	SourceGenerate = "generate"
)

// Manager keeps one staple per certificate: it loads files and the disk
// cache, fetches or mints new responses in the background, schedules their
// refresh and drops them at nextUpdate.
//
// Concurrency: every certificate has one worker goroutine (started by Set,
// stopped by the next Set or Close). Mutable per-certificate state is guarded
// by mu; Staples are immutable and handed out as pointers. publish is called
// from Set's goroutine and from workers, one call at a time (pubMu), never
// with mu held; it must not call Set or Close.
type Manager struct {
	opts    Options
	log     *slog.Logger
	clock   Clock
	client  *http.Client
	cache   diskCache
	publish func(id string, s *Staple)

	setMu   sync.Mutex // serialises Set and Close
	pubMu   sync.Mutex
	ctx     context.Context
	cancel  context.CancelFunc
	closed  bool
	workers []*worker

	mu        sync.Mutex
	certs     map[string]*certState
	order     []string
	attempts  map[[2]string]uint64 // (source, result) → count
	clientErr error
}

// certState is what the Manager knows of one certificate; fields below mu
// are guarded by Manager.mu, the others are set by Set before the worker
// starts and not changed while it runs.
type certState struct {
	id, name   string
	leaf       *x509.Certificate
	src        CertSource
	mustStaple bool
	gen        *generator
	url        string
	kick       chan struct{}

	// guarded by Manager.mu
	issuer      *x509.Certificate
	current     *Staple
	source      string
	revoked     *RevokedError
	nextRefresh time.Time // zero: no background source
	lastAttempt time.Time
	lastResult  string
	lastError   string
	failures    int // consecutive
	successes   int // total
	noURLLogged bool
	// needIssuer: the worker fetches the issuer from the caIssuers URL
	// once, for response files stapled unverified meanwhile.
	needIssuer       bool
	unverifiedLogged bool
	toCache          []byte // DER for the disk cache, written by flushCache
}

type generator struct {
	ca       *x509.Certificate
	key      crypto.Signer
	validity time.Duration
}

type worker struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// NewManager returns a Manager that calls publish(id, staple) whenever the
// staple to serve for certificate id changes; publish(id, nil) means stop
// stapling it. Set also calls it once for every certificate it is given.
// publish runs on the caller of Set or on a Manager goroutine, one call at a
// time; it must return promptly and must not wait for anything the caller
// of Set holds (Set waits for the workers, which may be inside publish).
func NewManager(opts Options, publish func(id string, staple *Staple)) *Manager {
	if opts.MinRefreshDelay <= 0 {
		opts.MinRefreshDelay = DefaultMinRefreshDelay
	}
	if opts.MaxRefreshDelay <= 0 {
		opts.MaxRefreshDelay = DefaultMaxRefreshDelay
	}
	if opts.BackoffCap <= 0 {
		opts.BackoffCap = DefaultBackoffCap
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	if opts.MaxResponseSize <= 0 {
		opts.MaxResponseSize = DefaultMaxResponseSize
	}
	m := &Manager{
		opts:     opts,
		log:      opts.Logger,
		clock:    opts.Clock,
		client:   opts.HTTPClient,
		cache:    diskCache{dir: opts.CacheDir},
		publish:  publish,
		certs:    map[string]*certState{},
		attempts: map[[2]string]uint64{},
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	if m.clock == nil {
		m.clock = realClock{}
	}
	if m.client == nil {
		m.client, m.clientErr = newHTTPClient(opts.HTTPProxy)
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	return m
}

// Set replaces the managed certificates; call it at start and on every
// reload. Certificates whose ID is unchanged keep their state and staple.
// Before returning it loads the disk cache and the files (and mints for a
// generate source with no valid staple), publishes a staple or nil for every
// certificate and nil for the ones removed, so that the first handshake after
// Set is stapled; fetching happens afterwards in the background.
//
// Of the staples available (the one held, the cache, the files, and later
// what is fetched or minted), the valid one with the latest thisUpdate wins.
//
// Set returns an error, changing nothing, when a source is unusable as
// configured: empty chain, duplicate or unusable ID, generate CA files that
// do not load or did not issue the certificate. Bad response files are not
// errors: they are logged and skipped.
//
// Set is Prepare then Commit; a caller that must apply other changes with
// the same all-or-nothing rule calls them itself.
func (m *Manager) Set(certs []CertSource) error {
	p, err := m.Prepare(certs)
	if err != nil {
		return err
	}
	m.Commit(p)
	return nil
}

// SourceError is why Prepare (or Set) rejected certs[Index].
type SourceError struct {
	Index int
	Name  string
	Err   error
}

func (e *SourceError) Error() string {
	return fmt.Sprintf("ocsp: certificate %d (%s): %v", e.Index+1, e.Name, e.Err)
}

func (e *SourceError) Unwrap() error { return e.Err }

// Plan is a list of certificate sources read and checked by Prepare: the
// CA files of generate sources loaded, the cache and the response files
// read and validated. Commit installs it.
type Plan struct {
	m     *Manager
	fresh []*certState
	seen  map[string]bool
	// candidate per certificate: the best staple of the cache and the
	// files, or the revocation a file reports, at Prepare's time.
	cands map[*certState]candidate
}

type candidate struct {
	s       *Staple
	source  string
	revoked *RevokedError
}

// Prepare reads and checks certs as Set would, without changing anything
// the Manager serves or schedules, and returns what Commit needs. Its
// errors are those of Set.
func (m *Manager) Prepare(certs []CertSource) (*Plan, error) {
	m.setMu.Lock()
	closed := m.closed
	m.setMu.Unlock()
	if closed {
		return nil, errors.New("ocsp: manager is closed")
	}
	if m.clientErr != nil {
		return nil, m.clientErr
	}
	p := &Plan{m: m, fresh: make([]*certState, 0, len(certs)), seen: map[string]bool{}, cands: map[*certState]candidate{}}
	for i, c := range certs {
		st, err := newCertState(c)
		if err != nil {
			return nil, &SourceError{Index: i, Name: c.Name, Err: err}
		}
		if p.seen[st.id] {
			return nil, &SourceError{Index: i, Name: st.name, Err: fmt.Errorf("duplicate ID %s", st.id)}
		}
		p.seen[st.id] = true
		p.fresh = append(p.fresh, st)
	}
	now := m.clock.Now()
	read := map[string][]*x509.Certificate{}
	for _, st := range p.fresh {
		// st is not shared yet: reading into it needs no lock, except for
		// the issuer learnt from caIssuers by the certificate's last worker.
		m.mu.Lock()
		if prev, ok := m.certs[st.id]; ok && st.issuer == nil {
			st.issuer = prev.issuer
		}
		m.mu.Unlock()
		if st.issuer == nil {
			st.issuer = IssuerFromFiles(st.leaf, st.src.IssuerFiles, read)
		}
		if st.issuer != nil {
			s, err := m.cache.load(st.id, st.leaf, st.issuer, now)
			if err != nil {
				m.log.Warn("ocsp: ignoring cached response", "cert", st.name, "error", err)
			}
			st.offer(s, SourceCache)
		}
		m.loadFiles(st, now)
		p.cands[st] = candidate{st.current, st.source, st.revoked}
		st.current, st.source, st.revoked = nil, "", nil
	}
	return p, nil
}

// Commit installs a plan made by Prepare on this Manager. It cannot fail:
// on a closed Manager it does nothing.
func (m *Manager) Commit(p *Plan) {
	if p == nil || p.m != m {
		return
	}
	m.setMu.Lock()
	defer m.setMu.Unlock()
	if m.closed {
		return
	}
	m.stopWorkers()
	now := m.clock.Now()
	type pub struct {
		id string
		s  *Staple
	}
	var pubs []pub
	var uncache []string
	m.mu.Lock()
	old := m.certs
	m.certs = make(map[string]*certState, len(p.fresh))
	m.order = m.order[:0]
	for _, st := range p.fresh {
		if prev, ok := old[st.id]; ok {
			st.inherit(prev, now)
		}
		c := p.cands[st]
		switch {
		case c.revoked != nil:
			st.revoked = c.revoked
			st.current, st.source = nil, ""
			uncache = append(uncache, st.id)
		case st.revoked == nil:
			st.offer(c.s, c.source)
		}
		m.certs[st.id] = st
		m.order = append(m.order, st.id)
		m.loadSync(st, now)
		m.noteUnverified(st)
		pubs = append(pubs, pub{st.id, st.current})
	}
	for id := range old {
		if !p.seen[id] {
			pubs = append(pubs, pub{id, nil})
		}
	}
	m.mu.Unlock()

	for _, id := range uncache {
		m.cache.remove(id)
	}
	m.pubMu.Lock()
	for _, p := range pubs {
		m.publish(p.id, p.s)
	}
	m.pubMu.Unlock()
	for _, st := range p.fresh {
		m.flushCache(st)
		if st.mustStaple && st.current == nil && !st.hasBackground() {
			m.log.Error("ocsp: must-staple certificate has no valid staple and no source to get one; clients will reject it",
				"cert", st.name, "serial", FormatSerial(st.leaf.SerialNumber))
		}
		m.startWorker(st)
	}
}

func newCertState(c CertSource) (*certState, error) {
	if len(c.Chain) == 0 || c.Chain[0] == nil {
		return nil, errors.New("empty certificate chain")
	}
	leaf := c.Chain[0]
	st := &certState{id: c.ID, name: c.Name, leaf: leaf, src: c, kick: make(chan struct{}, 1)}
	if st.id == "" {
		st.id = CertID(leaf)
	}
	if !validID(st.id) {
		return nil, fmt.Errorf("ID %q is not usable as a file name", st.id)
	}
	if st.name == "" {
		st.name = leaf.Subject.String()
	}
	st.mustStaple = HasMustStaple(leaf)
	if len(c.Chain) > 1 {
		st.issuer = c.Chain[1]
	}
	if g := c.Generate; g != nil {
		ca, err := ReadCertFile(g.CACertFile)
		if err != nil {
			return nil, fmt.Errorf("generate: %w", err)
		}
		key, err := ReadKeyFile(g.CAKeyFile)
		if err != nil {
			return nil, fmt.Errorf("generate: %w", err)
		}
		if err := leaf.CheckSignatureFrom(ca); err != nil {
			return nil, fmt.Errorf("generate: %s did not issue the certificate: %v", g.CACertFile, err)
		}
		if !samePublicKey(key.Public(), ca.PublicKey) {
			return nil, fmt.Errorf("generate: %s does not match %s", g.CAKeyFile, g.CACertFile)
		}
		v := g.Validity
		if v <= 0 {
			v = DefaultGenerateValidity
		}
		st.gen = &generator{ca: ca, key: key, validity: v}
		if st.issuer == nil {
			st.issuer = ca
		}
	} else if c.Fetch {
		st.url = ResponderURL(leaf, c.Responder)
	}
	return st, nil
}

// hasBackground says whether a worker can obtain new responses.
func (st *certState) hasBackground() bool { return st.gen != nil || st.url != "" }

// sameSource says whether two configurations get responses the same way.
func (st *certState) sameSource(prev *certState) bool {
	return st.url == prev.url && (st.gen == nil) == (prev.gen == nil) &&
		slices.Equal(st.src.Files, prev.src.Files)
}

// inherit carries state across a reload for an unchanged certificate.
// Called with m.mu held.
func (st *certState) inherit(prev *certState, now time.Time) {
	if st.issuer == nil {
		st.issuer = prev.issuer // fetched from caIssuers before
	}
	st.current, st.source, st.revoked = prev.current, prev.source, prev.revoked
	st.lastAttempt, st.lastResult, st.lastError = prev.lastAttempt, prev.lastResult, prev.lastError
	st.failures, st.successes, st.noURLLogged = prev.failures, prev.successes, prev.noURLLogged
	st.unverifiedLogged = prev.unverifiedLogged
	// An unchanged source keeps its schedule, so a reload (a cron job's
	// SIGHUP every few minutes) never turns into a burst of requests.
	if st.sameSource(prev) {
		st.nextRefresh = prev.nextRefresh
	}
}

// loadSync completes a certificate's state at Commit, once the cache and
// the files read by Prepare have been offered: it drops a staple that has
// expired since, mints one for a generate source that has none, and plans
// the first background attempt. Called with m.mu held: it signs at most
// once and never touches the network or the disk.
func (m *Manager) loadSync(st *certState, now time.Time) {
	if st.current != nil && !now.Before(st.current.Expiry()) {
		st.current, st.source = nil, ""
	}
	if st.url == "" && st.src.Fetch && st.gen == nil && !st.noURLLogged {
		st.noURLLogged = true
		m.log.Info("ocsp: certificate has no OCSP responder URL; nothing to fetch",
			"cert", st.name, "serial", FormatSerial(st.leaf.SerialNumber))
	}
	if st.current == nil && st.gen != nil && st.revoked == nil {
		m.mint(st, now)
	}
	switch {
	case !st.hasBackground():
		st.nextRefresh = time.Time{}
	case !st.nextRefresh.IsZero():
		// kept from before the reload (same source), even when overdue
	case st.current == nil:
		st.nextRefresh = now
	default:
		st.nextRefresh = m.refreshAt(now, st.current, st.leaf.NotAfter, 0)
	}
}

// loadFiles validates the certificate's response files; bad ones are
// logged with the file and the reason, never served. A revoked one sets
// st.revoked; the caller removes the disk cache.
func (m *Manager) loadFiles(st *certState, now time.Time) {
	for _, f := range st.src.Files {
		var s *Staple
		var err error
		if st.issuer != nil {
			s, err = LoadFile(f, st.leaf, st.issuer, now)
		} else {
			s, err = LoadFileUnverified(f, st.leaf, now)
		}
		var revoked *RevokedError
		if errors.As(err, &revoked) {
			// A validly signed response saying revoked is the CA's word, whatever
			// channel brought it: stop stapling the good response held so far
			// (it would keep telling clients "good" until its nextUpdate), as a
			// fetched revocation does.
			m.log.Error("ocsp: certificate is revoked; stapling stopped", "cert", st.name,
				"serial", FormatSerial(st.leaf.SerialNumber), "file", f,
				"revoked_at", revoked.RevokedAt, "reason", ReasonString(revoked.Reason))
			st.revoked = revoked
			st.current, st.source = nil, ""
			return
		}
		if err != nil {
			m.log.Warn("ocsp: not stapling response file", "cert", st.name,
				"serial", FormatSerial(st.leaf.SerialNumber), "file", f, "error", err)
			continue
		}
		st.offer(s, SourceFile)
	}
}

// offer makes s the current staple if it is fresher. Called with m.mu held.
func (st *certState) offer(s *Staple, source string) bool {
	if s == nil || st.current != nil && !s.ThisUpdate.After(st.current.ThisUpdate) {
		return false
	}
	st.current, st.source = s, source
	return true
}

// mint signs a new response for a generate source and offers it.
// Called with m.mu held (signing takes well under a millisecond).
func (m *Manager) mint(st *certState, now time.Time) (*Staple, error) {
	der, err := Generate(st.leaf, st.gen.ca, st.gen.key, now, now.Add(st.gen.validity))
	if err != nil {
		return nil, err
	}
	s, err := Validate(der, st.leaf, st.gen.ca, now)
	if err != nil {
		return nil, err
	}
	if st.offer(s, SourceGenerate) {
		st.toCache = der
	}
	return s, nil
}

// flushCache writes the response waiting for the disk cache, if any. It is
// called after publishing, without m.mu, so that a slow or failing disk
// never delays a staple.
func (m *Manager) flushCache(st *certState) {
	m.mu.Lock()
	der := st.toCache
	st.toCache = nil
	m.mu.Unlock()
	if der == nil {
		return
	}
	if err := m.cache.store(st.id, der); err != nil {
		m.log.Warn("ocsp: cache write failed; staple still served", "cert", st.name, "error", err)
	}
}

// Refresh asks every certificate with a fetch or generate source to try
// now, whatever its schedule (the admin API's refresh). It does not wait.
func (m *Manager) Refresh() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, st := range m.certs {
		select {
		case st.kick <- struct{}{}:
		default:
		}
	}
}

// Close stops the workers. Staples already published stay where they are.
func (m *Manager) Close() error {
	m.setMu.Lock()
	defer m.setMu.Unlock()
	m.closed = true
	m.stopWorkers()
	m.cancel()
	return nil
}

func (m *Manager) startWorker(st *certState) {
	ctx, cancel := context.WithCancel(m.ctx)
	w := &worker{cancel: cancel, done: make(chan struct{})}
	m.workers = append(m.workers, w)
	go func() {
		defer close(w.done)
		m.run(ctx, st)
	}()
}

func (m *Manager) stopWorkers() {
	for _, w := range m.workers {
		w.cancel()
	}
	for _, w := range m.workers {
		<-w.done
	}
	m.workers = m.workers[:0]
}

// HasMustStaple reports the TLS Feature extension (RFC 7633) with
// status_request (5): "OCSP Must-Staple".
func HasMustStaple(leaf *x509.Certificate) bool {
	for _, e := range leaf.Extensions {
		if !e.Id.Equal(OIDTLSFeature) {
			continue
		}
		var features []int
		if _, err := asn1.Unmarshal(e.Value, &features); err != nil {
			return false
		}
		return slices.Contains(features, 5)
	}
	return false
}

// OIDTLSFeature is the TLS Feature extension of RFC 7633; with the value
// status_request (5) it is "OCSP Must-Staple". The one definition: the
// development PKI marks its Must-Staple certificates with it.
var OIDTLSFeature = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 24}
