package bench

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	// 1..100000 µs uniformly: the q-quantile is q*100 ms.
	for i := 1; i <= 100000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, q := range []float64{0.5, 0.9, 0.99} {
		want := q * 100000
		got := float64(h.quantile(q)) / 1e3
		if math.Abs(got-want)/want > 1.0/64 {
			t.Errorf("p%v = %v µs, want %v µs within 1/64", q*100, got, want)
		}
	}
	s := h.summary()
	if s.MinUS != 1 || s.MaxUS != 100000 || s.Samples != 100000 || math.Abs(s.MeanUS-50000.5) > 0.01 {
		t.Errorf("summary %+v", s)
	}
	var a, b histogram
	a.record(time.Millisecond)
	b.record(3 * time.Millisecond)
	a.merge(&b)
	if a.n != 2 || a.quantile(1) != 3*time.Millisecond || a.quantile(0.5) < time.Millisecond || a.quantile(0.5) > time.Millisecond*65/64 {
		t.Errorf("merged: n %d p100 %v p50 %v", a.n, a.quantile(1), a.quantile(0.5))
	}
	for v := int64(0); v < 1<<20; v += 997 {
		if i := histIndex(v); histValue(i) < v-v/64-1 || histValue(i) > v+v/64+1 {
			t.Fatalf("value %d: bucket %d middle %d", v, i, histValue(i))
		}
	}
}

func TestParseProcStat(t *testing.T) {
	line := "4242 (dns (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 9 0 100 200000000 3000 18446744073709551615\n"
	d, err := parseProcStat("/proc/4242/stat", []byte(line))
	if err != nil || d != 3*time.Second {
		t.Errorf("got %v, %v; want 3s (300 ticks)", d, err)
	}
	if _, err := parseProcStat("x", []byte("1 (a) S 1 2")); err == nil {
		t.Error("short stat accepted")
	}
	self, err := ProcCPU(os.Getpid())
	if err != nil || self <= 0 {
		t.Errorf("ProcCPU(self) = %v, %v", self, err)
	}
	if _, err := ProcCPU(1 << 30); err == nil {
		t.Error("missing process accepted")
	}
}

func fakeReport(label string, rate, perCore, p50 float64, staple float64) *Report {
	return newReport("handshake", "127.0.0.1:853", "test", label, time.Now(),
		Params{Protocol: "tls", TLSVersion: "1.3", DurationS: 1},
		Results{OK: uint64(rate), Rate: rate, RatePerServerCore: perCore, ServerCPUPerOpUS: 1e6 / perCore,
			Latency: Latency{P50US: p50, P90US: 2 * p50, P99US: 3 * p50}, StapleFrac: staple, FullHandshake: uint64(rate)})
}

func TestCompareFiles(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	if err := fakeReport("dnsdist", 1000, 4000, 200, 1).WriteJSON(a); err != nil {
		t.Fatal(err)
	}
	if err := fakeReport("dnsfront", 2500, 6000, 100, 1).WriteJSON(b); err != nil {
		t.Fatal(err)
	}
	ra, err := ReadReport(a)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := ReadReport(b)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Compare(&out, []*Report{ra, rb}, true); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{
		"| metric | A: dnsdist | B: dnsfront | B/A |",
		"| rate /s (higher is better) | 1000 | 2500 | 2.50 |",
		"| rate per server core /s (higher is better) | 4000 | 6000 | 1.50 |",
		"| latency p50 µs (lower is better) | 200 | 100 | 0.50 |",
		"| staple fraction (higher is better) | 1.000 | 1.000 | 1.00 |",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %q in\n%s", want, s)
		}
	}
	if strings.Contains(s, "errors") {
		t.Errorf("all-zero metric printed:\n%s", s)
	}

	// Runs of one side are averaged before the ratio.
	m, err := MergeReports([]*Report{ra, fakeReport("dnsdist", 3000, 4000, 200, 1)})
	if err != nil || m.Results.Rate != 2000 {
		t.Errorf("merged rate %v, %v", m.Results.Rate, err)
	}
	q := fakeReport("q", 1, 1, 1, 0)
	q.Kind, q.Params.Protocol = "query", "udp"
	if err := Compare(&out, []*Report{ra, q}, false); err == nil {
		t.Error("compared a handshake run with a query run")
	}

	os.WriteFile(a, []byte(`{"schema":"other/9"}`), 0o644)
	if _, err := ReadReport(a); err == nil || !strings.Contains(err.Error(), "schema") {
		t.Errorf("foreign schema: %v", err)
	}
}

func TestReportOutputs(t *testing.T) {
	addr := startDNS(t, &dnsHandler{}, "udp", nil)
	r, err := RunQuery(context.Background(), QueryOptions{Proto: "udp", Target: addr, Duration: 100 * time.Millisecond, RunInfo: RunInfo{Label: "udp <test>"}})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := r.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"protocol", "udp", "rate", "p99", "client cpu", "machine"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	if r.Machine.NProc < 1 || r.Machine.GoVersion == "" {
		t.Errorf("machine %+v", r.Machine)
	}
	svg := filepath.Join(t.TempDir(), "c.svg")
	if err := WriteReportChart(svg, r); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(svg)
	if !bytes.HasPrefix(b, []byte("<svg")) || !bytes.Contains(b, []byte("udp &lt;test&gt;")) || bytes.Count(b, []byte("<rect")) != 5 {
		t.Errorf("chart:\n%s", b)
	}
	out.Reset()
	if err := WriteSummary(&out, []*Report{r, r}, true); err != nil {
		t.Fatal(err)
	}
	if strings.Count(out.String(), "| udp <test> |") != 2 {
		t.Errorf("summary:\n%s", out.String())
	}
}
