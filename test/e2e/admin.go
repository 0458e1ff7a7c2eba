package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/internal/testutil"
)

// adminClient talks to dnsfront's admin API; requests are bounded so that a stuck server
// fails the test instead of hanging it.
var adminClient = &http.Client{Timeout: 5 * time.Second}

// AdminURL is the base URL of the admin API, served on the port the configuration
// template allocated as {{port "admin"}}.
func (d *Dnsfront) AdminURL() string {
	d.t.Helper()
	return "http://" + d.Addr("admin")
}

// Metrics scrapes /metrics and returns every sample by its series as printed, e.g.
// `dnsfront_dropped_queries_total{reason="acl"}` or `dnsfront_tc_tcp_retries_total`.
func (d *Dnsfront) Metrics() map[string]float64 {
	d.t.Helper()
	resp, err := adminClient.Get(d.AdminURL() + "/metrics")
	if err != nil {
		d.t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		d.t.Fatalf("GET /metrics: %s", resp.Status)
	}
	m, err := parseMetrics(resp.Body)
	if err != nil {
		d.t.Fatalf("GET /metrics: %v", err)
	}
	return m
}

// Metric returns one series' value; a series that is absent fails the test, since every
// dnsfront counter is exported from the start.
func (d *Dnsfront) Metric(series string) float64 {
	d.t.Helper()
	m := d.Metrics()
	v, ok := m[series]
	if !ok {
		d.t.Fatalf("/metrics has no series %s", series)
	}
	return v
}

// WaitMetric polls series until cond holds for its value or timeout passes, and returns
// the last value seen. Counters of the loops are read while the loops run, so a test
// that has just got its answer may see a counter a moment later.
func (d *Dnsfront) WaitMetric(series string, timeout time.Duration, cond func(float64) bool) float64 {
	d.t.Helper()
	v, _ := pollValue(timeout, cond, func() float64 { return d.Metric(series) })
	return v
}

// pollValue reads a value every testutil.PollInterval until cond holds for it or timeout
// passes, and returns the last value read and how long that took.
func pollValue(timeout time.Duration, cond func(float64) bool, read func() float64) (float64, time.Duration) {
	start := time.Now()
	var v float64
	testutil.Poll(timeout, func() bool {
		v = read()
		return cond(v)
	})
	return v, time.Since(start)
}

// parseMetrics reads the Prometheus text format: comment lines are skipped, each sample
// line is "series value [timestamp]".
func parseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		// The value follows the last space outside the labels' braces.
		end := strings.LastIndexByte(line, '}')
		rest := line[end+1:]
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return nil, fmt.Errorf("metrics line without value: %q", line)
		}
		series := line[:end+1]
		if end < 0 {
			series = fields[0]
			fields = fields[1:]
			if len(fields) == 0 {
				return nil, fmt.Errorf("metrics line without value: %q", line)
			}
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %v", line, err)
		}
		out[series] = v
	}
	return out, sc.Err()
}

// Status returns the JSON of GET /api/v1/status.
func (d *Dnsfront) Status() map[string]any {
	d.t.Helper()
	var m map[string]any
	getJSON(d.t, d.AdminURL()+"/api/v1/status", &m)
	return m
}

// getJSON decodes the JSON answer of GET url into v.
func getJSON(t testing.TB, url string, v any) {
	t.Helper()
	resp, err := adminClient.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// Post sends a POST to the admin API path and returns the status code and body.
func (d *Dnsfront) Post(path string) (int, string) {
	d.t.Helper()
	resp, err := adminClient.Post(d.AdminURL()+path, "application/json", nil)
	if err != nil {
		d.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}
