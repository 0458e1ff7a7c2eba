package ocsp

import (
	"fmt"
	"time"
)

// SourceShared is the source of a staple another instance of the fleet
// fetched and this one validated again (Offer).
const SourceShared = "fleet"

// gatePoll is how often a certificate whose fetch is due asks FetchGate
// again while it stays closed: a second is short enough that an instance
// taking over from a fleet leader that is gone fetches at once, and long
// enough to cost nothing (the gate is a function call, not a request).
const gatePoll = time.Second

// gated reports whether FetchGate forbids fetching now, and if so plans the
// next look at the gate. Generated staples are local and never gated.
func (m *Manager) gated(st *certState) bool {
	if st.gen != nil || m.opts.FetchGate == nil || m.opts.FetchGate() {
		return false
	}
	m.mu.Lock()
	st.nextRefresh = m.clock.Now().Add(gatePoll)
	m.mu.Unlock()
	return true
}

// Offer gives the Manager a response for certificate id that came from
// elsewhere (a fleet's leader fetched it). It is validated exactly as a
// response file is (signature by the issuer or its delegate when the issuer
// is known, serial, status good, window), never trusted for its channel;
// when it is fresher than the staple held it is published and cached, and
// the certificate's next refresh is planned from it as if fetched here, so
// that an instance that must later fetch on its own does so on the usual
// schedule. The validated staple is returned.
func (m *Manager) Offer(id string, der []byte) (*Staple, error) {
	now := m.clock.Now()
	m.mu.Lock()
	st := m.certs[id]
	if st == nil {
		m.mu.Unlock()
		return nil, fmt.Errorf("ocsp: shared staple for certificate %.16s…, which no source watches here", id)
	}
	var (
		s   *Staple
		err error
	)
	if st.issuer != nil {
		s, err = Validate(der, st.leaf, st.issuer, now)
	} else {
		s, err = ValidateUnverified(der, st.leaf, now)
	}
	if err != nil {
		m.mu.Unlock()
		return nil, fmt.Errorf("ocsp: %s: shared staple: %w", st.name, err)
	}
	published := st.offer(s, SourceShared)
	if published {
		st.toCache = der
		if st.hasBackground() {
			st.nextRefresh = m.refreshAt(now, s, st.leaf.NotAfter, 0)
		}
	}
	cur := st.current
	m.mu.Unlock()
	if published {
		m.pubMu.Lock()
		m.publish(st.id, cur)
		m.pubMu.Unlock()
		m.flushCache(st)
	}
	return s, nil
}
