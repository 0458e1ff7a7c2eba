package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/internal/fleet"
)

func TestFleetStatus(t *testing.T) {
	// A member whose etcd is unreachable still answers its status: the
	// admin API never waits on etcd.
	f, err := fleet.Start(context.Background(), fleet.Options{
		Name: "fleet-a", Endpoints: []string{"http://127.0.0.1:1"}, DialTimeout: time.Second,
		Member: "dns1", RotationDelay: time.Hour, NumberOfKeys: 5,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mux := http.NewServeMux()
	h := f.Handler()
	mux.Handle("GET /api/v1/fleet", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-API-Key") != "secret" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	out, err := runCmd(newFleetCmd(), "status", "--admin", srv.URL, "--api-key", "secret")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, w := range []string{"fleet fleet-a, member dns1: connected no", "ticket keys: epoch 0, none, 0 installed", "MEMBER", "STAPLE (CERT SHA-256)", "BLOCK"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	out, err = runCmd(newFleetCmd(), "status", "--admin", srv.URL, "--api-key", "secret", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var st fleet.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Member != "dns1" || st.Connected {
		t.Fatalf("json %+v, %v", st, err)
	}
	if _, err := runCmd(newFleetCmd(), "status", "--admin", srv.URL, "--api-key", "wrong"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("err = %v", err)
	}
}

func TestPrintFleetStatus(t *testing.T) {
	now := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	sync := now.Add(-3 * time.Second)
	st := fleet.Status{
		Name: "fleet-a", Member: "dns1", Connected: true, Leader: "dns2", KeyEpoch: 498896, KeySource: "shared", Keys: 4, NextKeyShared: true,
		LastSync: &sync, LagSeconds: 0.02, Sessions: 1,
		Members: []fleet.Member{{Name: "dns1", Since: now.Add(-time.Hour)}, {Name: "dns2", Since: now.Add(-2 * time.Hour)}},
		Staples: []fleet.StapleStatus{{CertSHA256: "ab12", Bytes: 471, Origin: "dns2", Written: now.Add(-time.Minute)}},
		Blocks:  []fleet.Block{{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Until: now.Add(time.Minute), Action: "refused", Reason: "flood", Origin: "dns1"}},
	}
	var b strings.Builder
	printFleetStatus(&b, st, now)
	out := b.String()
	for _, w := range []string{"connected yes, leader dns2\n", "epoch 498896, shared, 4 installed, next key shared yes", "(3s ago)",
		"dns2  ", "ab12", "471", "192.0.2.0/24", "(in 1m0s)", "refused", "flood"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}
