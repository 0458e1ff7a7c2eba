package fleet

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestHandlerAndMetricsWithoutEtcd(t *testing.T) {
	f, err := Start(t.Context(), Options{Name: "f", Endpoints: []string{"http://127.0.0.1:1"}, DialTimeout: time.Second,
		Member: "m", RotationDelay: time.Hour, NumberOfKeys: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rec := httptest.NewRecorder()
	f.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/fleet", nil))
	var st Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("%d %v %s", rec.Code, err, rec.Body)
	}
	if st.Connected || st.KeySource != "none" || st.Member != "m" || st.Members == nil {
		t.Fatalf("status %+v", st)
	}
	rec = httptest.NewRecorder()
	f.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/v1/fleet", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", rec.Code)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(f.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got[mf.GetName()] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	// No last sync yet: that series is absent until there is one.
	if len(got) != 10 || got["dnsfront_fleet_connected"] != 0 || got["dnsfront_fleet_ticket_key_derived"] != 0 {
		t.Fatalf("metrics %v", got)
	}
	if _, ok := got["dnsfront_fleet_last_sync_timestamp_seconds"]; ok {
		t.Fatal("a last sync before any")
	}
}
