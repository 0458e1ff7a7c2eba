package fleet

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
)

// Status is what GET /api/v1/fleet reports and `dnsfront fleet status` prints.
type Status struct {
	Name      string `json:"name"`
	Member    string `json:"member"`
	Connected bool   `json:"connected"`
	// Leader is the member elected to rotate keys and fetch staples, as last seen.
	Leader   string   `json:"leader"`
	IsLeader bool     `json:"is_leader"`
	Members  []Member `json:"members"`
	// KeyEpoch is the epoch of the encrypting ticket key; KeySource is "shared" (from
	// etcd), "derived" (degraded mode) or "none" (no key from the fleet yet).
	KeyEpoch  uint64 `json:"key_epoch"`
	KeySource string `json:"key_source"`
	Keys      int    `json:"keys"`
	// NextKeyShared tells whether the next epoch's key is already installed.
	NextKeyShared bool `json:"next_key_shared"`
	// LastSync is the last time this member was known to have applied everything etcd had.
	LastSync *time.Time `json:"last_sync,omitempty"`
	// LagSeconds is how long the last change took from its writer to this member.
	LagSeconds float64        `json:"lag_seconds"`
	Staples    []StapleStatus `json:"staples"`
	Blocks     []Block        `json:"blocks"`
	Sessions   uint64         `json:"sessions"` // etcd sessions opened (1 + reconnections)
	LastError  string         `json:"last_error,omitempty"`
}

// StapleStatus is one staple the fleet shares.
type StapleStatus struct {
	CertSHA256 string    `json:"cert_sha256"`
	Bytes      int       `json:"bytes"`
	Origin     string    `json:"origin"`
	Written    time.Time `json:"written"`
}

// Status returns a snapshot of this member's view of the fleet. It never
// asks etcd: it reports what the watch has applied.
func (f *Fleet) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := Status{
		Name:       f.opt.Name,
		Member:     f.opt.Member,
		Connected:  f.connected,
		Leader:     f.leaderLocked(),
		IsLeader:   f.isLeader,
		KeyEpoch:   f.epoch,
		KeySource:  "none",
		Keys:       len(f.installed),
		LagSeconds: f.lag.Seconds(),
		Sessions:   f.reconnect,
		LastError:  f.lastErr,
		Members:    []Member{},
		Staples:    []StapleStatus{},
		Blocks:     []Block{},
	}
	if f.installed != nil {
		st.KeySource = "shared"
		if f.derived {
			st.KeySource = "derived"
		}
		_, st.NextKeyShared = f.ring.shared[f.epoch+1]
	}
	if !f.lastSync.IsZero() {
		t := f.lastSync.UTC()
		st.LastSync = &t
	}
	for _, m := range f.members {
		st.Members = append(st.Members, m)
	}
	sort.Slice(st.Members, func(i, j int) bool { return st.Members[i].Name < st.Members[j].Name })
	for fp, s := range f.staples {
		st.Staples = append(st.Staples, StapleStatus{CertSHA256: hex.EncodeToString(fp[:]), Bytes: len(s.DER), Origin: s.Origin, Written: s.Written})
	}
	sort.Slice(st.Staples, func(i, j int) bool { return st.Staples[i].CertSHA256 < st.Staples[j].CertSHA256 })
	for _, b := range f.blocks {
		st.Blocks = append(st.Blocks, b)
	}
	slices.SortFunc(st.Blocks, func(a, b Block) int { return strings.Compare(a.Prefix.String(), b.Prefix.String()) })
	return st
}

// Handler serves Status as JSON on GET; the server mounts it at
// /api/v1/fleet behind its API key.
func (f *Fleet) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(f.Status())
	})
}
