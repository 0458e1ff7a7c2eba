package ocsp

import (
	"testing"
	"time"
)

func TestRefreshAtRules(t *testing.T) {
	m := NewManager(Options{MaxRefreshDelay: 24 * time.Hour}, func(string, *Staple) {})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	far := now.Add(365 * 24 * time.Hour)
	staple := func(this, next time.Time) *Staple { return &Staple{ThisUpdate: this, NextUpdate: next} }
	for i := 0; i < 200; i++ {
		// Week-long response: capped at MaxRefreshDelay (less up to 10% jitter).
		if got := m.refreshAt(now, staple(now, now.Add(7*24*time.Hour)), far, time.Minute); got.After(now.Add(24*time.Hour)) ||
			got.Before(now.Add(21*time.Hour+36*time.Minute)) {
			t.Fatalf("week-long: %s", got.Sub(now))
		}
		// 10-hour response: middle plus at most a tenth.
		s := staple(now, now.Add(10*time.Hour))
		window := s.Expiry().Sub(now)
		if got := m.refreshAt(now, s, far, time.Minute); got.Before(now.Add(window/2)) || got.After(now.Add(window/2+window/10)) {
			t.Fatalf("10h: %s", got.Sub(now))
		}
		// A staple past its midpoint: at once at Set, MinRefreshDelay after an attempt.
		old := staple(now.Add(-9*time.Hour), now.Add(time.Hour))
		if got := m.refreshAt(now, old, far, 0); got.After(now) {
			t.Fatalf("old staple at Set: %s", got.Sub(now))
		}
		if got := m.refreshAt(now, old, far, time.Minute); !got.Equal(now.Add(time.Minute)) {
			t.Fatalf("old staple after an attempt: %s", got.Sub(now))
		}
		// Expired certificate: nothing to refresh.
		if got := m.refreshAt(now, s, now.Add(-time.Second), time.Minute); !got.IsZero() {
			t.Fatalf("expired certificate: %s", got)
		}
	}
}

func TestRetryAtBackoff(t *testing.T) {
	m := NewManager(Options{MinRefreshDelay: time.Minute, BackoffCap: time.Hour}, func(string, *Staple) {})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 200; i++ {
		for failures, max := range map[int]time.Duration{1: time.Minute, 2: 2 * time.Minute, 3: 4 * time.Minute, 7: time.Hour, 30: time.Hour} {
			d := m.retryAt(now, failures, nil).Sub(now)
			if d < max/2 || d > max {
				t.Fatalf("failure %d: retry in %s, want %s..%s", failures, d, max/2, max)
			}
		}
		// A staple ending in 20 minutes gets an attempt a minute before its end
		// even when the back-off says an hour.
		s := &Staple{ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(20*time.Minute + Skew)}
		if got := m.retryAt(now, 30, s); !got.Equal(now.Add(19 * time.Minute)) {
			t.Fatalf("retry before the end: %s", got.Sub(now))
		}
	}
}
