package ocsp

import (
	"time"
)

// Status values of CertStatus.Status.
const (
	StateGood    = "good"    // a valid staple is served
	StateNone    = "none"    // no valid staple: nothing stapled
	StateRevoked = "revoked" // the responder said revoked: nothing stapled
	// StateUnverified: a response file is stapled whose signature could not
	// be checked, the issuer being unknown (ValidateUnverified).
	StateUnverified = "unverified"
	// StateNotApplicable: the certificate has no OCSP responder URL and no
	// other source (no response file, no CA key): there is nothing to
	// staple, and that is normal (Let's Encrypt dropped OCSP in 2025).
	StateNotApplicable = "not_applicable"
)

// Status details, in words for the status API's status_detail and the CLI.
const (
	DetailUnverified    = ErrIssuerUnknown
	DetailNotApplicable = "not applicable: the certificate has no OCSP responder URL and no other source"
)

// CertStatus is the state of one certificate's staple, as served at
// GET /api/v1/ocsp and printed by `dnsfront ocsp status`. Times are absent
// from the JSON when unknown.
type CertStatus struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Subject string `json:"subject"`
	Serial  string `json:"serial"`
	Source  string `json:"source"` // file, cache, fetch, generate; "" without staple
	Status  string `json:"status"`
	// StatusDetail says Status in words when it needs them (unverified,
	// not applicable).
	StatusDetail string     `json:"status_detail,omitempty"`
	Responder    string     `json:"responder,omitempty"`
	ThisUpdate   *time.Time `json:"this_update,omitempty"`
	NextUpdate   *time.Time `json:"next_update,omitempty"`
	NextRefresh  *time.Time `json:"next_refresh,omitempty"`
	LastAttempt  *time.Time `json:"last_attempt,omitempty"`
	LastResult   string     `json:"last_result,omitempty"`
	LastError    string     `json:"last_error,omitempty"`
	Failures     int        `json:"failures"`  // consecutive failed attempts
	Successes    int        `json:"successes"` // successful attempts since start
	MustStaple   bool       `json:"must_staple"`
	RevokedAt    *time.Time `json:"revoked_at,omitempty"`
	Reason       string     `json:"revocation_reason,omitempty"`
}

// Staple returns the staple currently served for certificate id, or nil.
// After Set returns it reflects what Set published, so a caller building a
// whole certificate snapshot can read every staple at once instead of
// reacting to each publish call.
func (m *Manager) Staple(id string) *Staple {
	m.mu.Lock()
	defer m.mu.Unlock()
	if st, ok := m.certs[id]; ok {
		return st.current
	}
	return nil
}

// Status returns the state of every managed certificate, in Set's order.
// Safe to call from any goroutine.
func (m *Manager) Status() []CertStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]CertStatus, 0, len(m.order))
	for _, id := range m.order {
		st := m.certs[id]
		cs := CertStatus{
			ID:          st.id,
			Name:        st.name,
			Subject:     st.leaf.Subject.String(),
			Serial:      FormatSerial(st.leaf.SerialNumber),
			Source:      st.source,
			Status:      StateNone,
			Responder:   st.url,
			NextRefresh: timePtr(st.nextRefresh),
			LastAttempt: timePtr(st.lastAttempt),
			LastResult:  st.lastResult,
			LastError:   st.lastError,
			Failures:    st.failures,
			Successes:   st.successes,
			MustStaple:  st.mustStaple,
		}
		if s := st.current; s != nil {
			cs.Status = StateGood
			if s.Unverified {
				cs.Status, cs.StatusDetail = StateUnverified, DetailUnverified
			}
			cs.ThisUpdate, cs.NextUpdate = timePtr(s.ThisUpdate), timePtr(s.NextUpdate)
		} else if st.notApplicable() {
			cs.Status, cs.StatusDetail = StateNotApplicable, DetailNotApplicable
		}
		if r := st.revoked; r != nil {
			cs.Status = StateRevoked
			cs.RevokedAt, cs.Reason = timePtr(r.RevokedAt), ReasonString(r.Reason)
		}
		out = append(out, cs)
	}
	return out
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// notApplicable says that nothing can ever be stapled for the certificate,
// and normally so: its only source is fetch and it has no OCSP URL. Called
// with Manager.mu held.
func (st *certState) notApplicable() bool {
	return st.current == nil && st.revoked == nil && st.url == "" && st.gen == nil && len(st.src.Files) == 0
}
