package ocsp

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"time"
)

// run is a certificate's worker: it sleeps until the next refresh or the
// current staple's expiry, whichever comes first, and acts on it.
func (m *Manager) run(ctx context.Context, st *certState) {
	m.mu.Lock()
	need := st.needIssuer
	st.needIssuer = false
	m.mu.Unlock()
	if need {
		// Once per start or reload, bounded by RequestTimeout: response files
		// are served unverified meanwhile, so a slow CA delays nothing.
		if _, err := m.learnIssuer(ctx, st); err != nil && ctx.Err() == nil {
			m.mu.Lock()
			m.warnUnverified(st, err.Error())
			m.mu.Unlock()
		}
	}
	for {
		now := m.clock.Now()
		m.mu.Lock()
		var dropped *Staple
		if st.current != nil && !now.Before(st.current.Expiry()) {
			// Never serve an expired staple: a client would reject the
			// handshake, which is worse than no staple at all.
			dropped, st.current, st.source = st.current, nil, ""
		}
		wake := st.nextRefresh
		if st.current != nil && (wake.IsZero() || st.current.Expiry().Before(wake)) {
			wake = st.current.Expiry()
		}
		due := !st.nextRefresh.IsZero() && !now.Before(st.nextRefresh)
		m.mu.Unlock()

		if dropped != nil {
			m.dropExpired(st, dropped)
		}
		if due {
			m.attempt(ctx, st)
			continue
		}
		var timerC <-chan time.Time
		var timer Timer
		if !wake.IsZero() {
			timer = m.clock.NewTimer(wake.Sub(now))
			timerC = timer.C()
		}
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		case <-timerC:
		case <-st.kick:
			if timer != nil {
				timer.Stop()
			}
			m.mu.Lock()
			if st.hasBackground() {
				st.nextRefresh = m.clock.Now()
			}
			m.mu.Unlock()
		}
	}
}

func (m *Manager) dropExpired(st *certState, s *Staple) {
	m.pubMu.Lock()
	m.publish(st.id, nil)
	m.pubMu.Unlock()
	m.cache.remove(st.id)
	level := slog.LevelWarn
	msg := "ocsp: staple reached its nextUpdate and is no longer served"
	if st.mustStaple {
		level = slog.LevelError
		msg = "ocsp: must-staple certificate lost its staple at nextUpdate; clients will reject it"
	}
	m.log.Log(context.Background(), level, msg, "cert", st.name, "serial", FormatSerial(st.leaf.SerialNumber),
		"next_update", s.NextUpdate, "has_source", st.hasBackground())
}

// attempt gets one new response (mint or fetch), validates it and applies
// the result. It never holds m.mu while on the network.
func (m *Manager) attempt(ctx context.Context, st *certState) {
	if m.gated(st) {
		return
	}
	source := SourceFetch
	if st.gen != nil {
		source = SourceGenerate
	}
	var (
		s   *Staple
		der []byte
		err error
	)
	if st.gen != nil {
		now := m.clock.Now()
		m.mu.Lock()
		before := st.current
		s, err = m.mint(st, now)
		published := st.current != before
		m.mu.Unlock()
		if err != nil {
			err = &fetchError{ResultError, err}
		}
		m.finish(st, source, s, err, published)
		return
	}
	m.mu.Lock()
	issuer := st.issuer
	m.mu.Unlock()
	if issuer == nil {
		issuer, err = m.learnIssuer(ctx, st)
		if err != nil && ctx.Err() == nil {
			m.mu.Lock()
			m.warnUnverified(st, err.Error())
			m.mu.Unlock()
		}
	}
	if err == nil {
		rctx, cancel := context.WithTimeout(ctx, m.opts.RequestTimeout)
		der, err = Fetch(rctx, m.client, st.url, st.leaf, issuer, m.opts.MaxResponseSize)
		cancel()
	}
	if ctx.Err() != nil {
		return // Set or Close stopped us mid-request: not the responder's fault
	}
	if err == nil {
		s, err = Validate(der, st.leaf, issuer, m.clock.Now())
	}
	published := false
	if err == nil {
		m.mu.Lock()
		published = st.offer(s, SourceFetch)
		if published {
			st.toCache = der
		}
		st.revoked = nil
		m.mu.Unlock()
	}
	m.finish(st, source, s, err, published)
}

// finish records an attempt, publishes, schedules the next one and logs.
func (m *Manager) finish(st *certState, source string, s *Staple, err error, published bool) {
	now := m.clock.Now()
	result := Classify(err)
	var revoked *RevokedError
	m.mu.Lock()
	m.attempts[[2]string{source, result}]++
	st.lastAttempt, st.lastResult = now, result
	st.lastError = ""
	if err != nil {
		st.lastError = err.Error()
	}
	dropRevoked := false
	switch {
	case result == ResultOK:
		st.failures = 0
		st.successes++
		basis := st.current
		if basis == nil {
			basis = s
		}
		st.nextRefresh = m.refreshAt(now, basis, st.leaf.NotAfter, m.opts.MinRefreshDelay)
	case errors.As(err, &revoked):
		// The CA says the certificate is revoked: stop stapling at once,
		// whatever we held. Ask again only after MaxRefreshDelay: a
		// revocation is final (certificateHold aside), so there is no
		// reason to insist.
		st.failures++
		st.revoked = revoked
		dropRevoked = true
		st.current, st.source = nil, ""
		st.nextRefresh = now.Add(m.opts.MaxRefreshDelay)
	default:
		// unknown, tryLater, invalid, HTTP errors: keep the staple we have
		// (it is still valid until its nextUpdate) and back off.
		st.failures++
		st.nextRefresh = m.retryAt(now, st.failures, st.current)
	}
	cur := st.current
	failures, successes, next := st.failures, st.successes, st.nextRefresh
	m.mu.Unlock()

	if published || dropRevoked {
		m.pubMu.Lock()
		m.publish(st.id, cur)
		m.pubMu.Unlock()
	}
	if dropRevoked {
		m.cache.remove(st.id)
	}
	m.flushCache(st)
	attrs := []any{"cert", st.name, "serial", FormatSerial(st.leaf.SerialNumber), "source", source,
		"result", result, "failures", failures, "successes", successes}
	if !next.IsZero() {
		attrs = append(attrs, "next_attempt", next)
	}
	switch {
	case result == ResultOK:
		attrs = append(attrs, "this_update", s.ThisUpdate, "next_update", s.NextUpdate, "published", published)
		m.log.Info("ocsp: update", attrs...)
	case revoked != nil:
		attrs = append(attrs, "revoked_at", revoked.RevokedAt, "reason", ReasonString(revoked.Reason), "error", err)
		m.log.Error("ocsp: certificate is revoked; stapling stopped", attrs...)
	default:
		attrs = append(attrs, "error", err, "staple_kept", cur != nil)
		m.log.Warn("ocsp: update failed", attrs...)
	}
	if cur == nil && st.mustStaple {
		m.log.Error("ocsp: must-staple certificate has no valid staple; clients will reject it",
			"cert", st.name, "serial", FormatSerial(st.leaf.SerialNumber), "result", result)
	}
}

// learnIssuer fetches the issuer from the certificate's caIssuers URL,
// bounded by RequestTimeout, and, once it is known, checks the cache and
// the response files again with it: a staple served unverified until now
// is replaced by the verified one, or dropped when its signature is bad.
func (m *Manager) learnIssuer(ctx context.Context, st *certState) (*x509.Certificate, error) {
	rctx, cancel := context.WithTimeout(ctx, m.opts.RequestTimeout)
	issuer, err := FetchIssuer(rctx, m.client, st.leaf, m.opts.MaxResponseSize)
	cancel()
	if err != nil {
		return nil, err
	}
	now := m.clock.Now()
	m.mu.Lock()
	st.issuer = issuer
	before := st.current
	if before != nil && before.Unverified {
		st.current, st.source = nil, ""
	}
	st.unverifiedLogged = false
	if c, cerr := m.cache.load(st.id, st.leaf, issuer, now); cerr == nil {
		st.offer(c, SourceCache)
	}
	m.loadFiles(st, now)
	early, revoked := st.current, st.revoked != nil
	m.mu.Unlock()
	m.log.Info("ocsp: issuer fetched from the caIssuers URL; responses are checked with it",
		"cert", st.name, "serial", FormatSerial(st.leaf.SerialNumber), "issuer", issuer.Subject.String(),
		"stapled", early != nil)
	if revoked {
		m.cache.remove(st.id)
	}
	if early != before {
		m.pubMu.Lock()
		m.publish(st.id, early)
		m.pubMu.Unlock()
	}
	return issuer, nil
}

// noteUnverified runs at Commit for a certificate served with an unverified
// staple: with a caIssuers URL the worker fetches the issuer (a fetch
// source does so before its first request anyway); without one, nothing
// will find it and the operator is told once. Called with m.mu held.
func (m *Manager) noteUnverified(st *certState) {
	if st.issuer != nil || st.current == nil || !st.current.Unverified {
		return
	}
	if len(st.leaf.IssuingCertificateURL) > 0 {
		st.needIssuer = !st.hasBackground()
		return
	}
	m.warnUnverified(st, "the chain lacks the issuer, no issuer: is set, no CA file of the configuration issued it, and there is no caIssuers URL")
}

// warnUnverified logs, once per certificate until its issuer is found, that
// its staple's signature is not verified and how to fix it. Called with
// m.mu held.
func (m *Manager) warnUnverified(st *certState, why string) {
	if st.unverifiedLogged || st.current == nil || !st.current.Unverified {
		return
	}
	st.unverifiedLogged = true
	m.log.Warn("ocsp: stapling a response whose signature is not verified: issuer unknown",
		"cert", st.name, "serial", FormatSerial(st.leaf.SerialNumber), "why", why, "fix", unverifiedHint(st.leaf))
}
