package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Schema names the JSON layout of a Report. Fields are only ever added to
// it; a change of meaning gets a new schema name.
const Schema = "dnsfront-bench/1"

// Report is the result of one run, as written by --json and read by compare.
type Report struct {
	Schema  string    `json:"schema"`
	Tool    string    `json:"tool"`
	Version string    `json:"version"`
	Kind    string    `json:"kind"` // "handshake", "query" or "conns"
	Label   string    `json:"label,omitempty"`
	Target  string    `json:"target"`
	Started time.Time `json:"started"`
	Params  Params    `json:"params"`
	Results Results   `json:"results"`
	Machine Machine   `json:"machine"`
}

// Params records what was asked for, so that two reports can be checked for
// like-for-like before their ratios are trusted.
type Params struct {
	Protocol    string   `json:"protocol"` // udp, tcp, dot, doh; "tls" for handshakes
	DurationS   float64  `json:"duration_s"`
	TLSVersion  string   `json:"tls_version,omitempty"`
	Resume      bool     `json:"resume,omitempty"`
	Curves      []string `json:"curves,omitempty"`
	SNI         string   `json:"sni,omitempty"`
	Concurrency int      `json:"concurrency,omitempty"`
	Connections int      `json:"connections,omitempty"`
	Inflight    int      `json:"inflight,omitempty"`
	Query       string   `json:"query,omitempty"`
	Names       int      `json:"names,omitempty"`
	Path        string   `json:"path,omitempty"`
	ServerPID   int      `json:"server_pid,omitempty"`
}

// Results holds the measured figures. Rates are per second of wall time over
// the measurement window; "per op" means per successful handshake or answer.
type Results struct {
	ElapsedS     float64           `json:"elapsed_s"`
	OK           uint64            `json:"ok"`
	Errors       uint64            `json:"errors"`
	ErrorsByKind map[string]uint64 `json:"errors_by_kind,omitempty"`
	Rate         float64           `json:"rate"`
	Latency      Latency           `json:"latency"`

	// Handshakes only.
	Resumed       uint64  `json:"resumed,omitempty"`
	FullHandshake uint64  `json:"full_handshakes,omitempty"`
	StapleValid   uint64  `json:"staple_valid,omitempty"`
	StapleInvalid uint64  `json:"staple_invalid,omitempty"`
	StapleMissing uint64  `json:"staple_missing,omitempty"`
	StapleFrac    float64 `json:"staple_fraction"`
	StapleError   string  `json:"staple_error,omitempty"` // the first reason a staple was refused

	// Queries only. Sent counts every query written during the window:
	// far more than ok+errors means queries were neither answered nor yet
	// timed out (a timeout longer than the run).
	Rcodes map[string]uint64 `json:"rcodes,omitempty"`
	Sent   uint64            `json:"sent,omitempty"`

	// Connection ramps only: the server's resident memory.
	Memory *ConnsResults `json:"memory,omitempty"`

	ServerCPUSeconds  float64 `json:"server_cpu_s,omitempty"`
	ServerCPUPerOpUS  float64 `json:"server_cpu_per_op_us,omitempty"`
	RatePerServerCore float64 `json:"rate_per_server_core,omitempty"`
	ServerCPUError    string  `json:"server_cpu_error,omitempty"`
	ClientCPUSeconds  float64 `json:"client_cpu_s"`
	ClientCPUPerOpUS  float64 `json:"client_cpu_per_op_us"`
}

// Latency percentiles in microseconds, from the start of the operation (the
// TCP connect for a handshake, the write of the query) to its completion.
type Latency struct {
	Samples uint64  `json:"samples"`
	MinUS   float64 `json:"min_us"`
	MeanUS  float64 `json:"mean_us"`
	P50US   float64 `json:"p50_us"`
	P90US   float64 `json:"p90_us"`
	P99US   float64 `json:"p99_us"`
	MaxUS   float64 `json:"max_us"`
}

// Machine describes where the run happened; client and server usually share it.
type Machine struct {
	NProc     int    `json:"nproc"`
	CPUModel  string `json:"cpu_model"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	Hostname  string `json:"hostname,omitempty"`
}

// CurrentMachine reads the machine description from the runtime and /proc/cpuinfo.
func CurrentMachine() Machine {
	m := Machine{
		NProc:     runtime.NumCPU(),
		GoVersion: runtime.Version(),
		OS:        runtime.GOOS,
		Arch:      runtime.GOARCH,
	}
	m.Hostname, _ = os.Hostname()
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

func newReport(kind, target, version, label string, started time.Time, p Params, r Results) *Report {
	return &Report{
		Schema:  Schema,
		Tool:    "dnsfront bench",
		Version: version,
		Kind:    kind,
		Label:   label,
		Target:  target,
		Started: started.UTC(),
		Params:  p,
		Results: r,
		Machine: CurrentMachine(),
	}
}

// WriteJSON writes the report to path, indented, replacing the file whole.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// ReadReport loads a report written by WriteJSON and checks its schema.
func ReadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("bench: %s: %w", path, err)
	}
	if r.Schema != Schema {
		return nil, fmt.Errorf("bench: %s: schema %q, want %q", path, r.Schema, Schema)
	}
	return &r, nil
}

// Name is how the report is shown in tables and charts: its label, or what
// was run against which target.
func (r *Report) Name() string {
	if r.Label != "" {
		return r.Label
	}
	if r.Kind == "handshake" {
		s := fmt.Sprintf("handshake %s", r.Params.TLSVersion)
		if r.Params.Resume {
			s += " resumed"
		}
		return s + " " + r.Target
	}
	return fmt.Sprintf("query %s %s", r.Params.Protocol, r.Target)
}

// WriteTable prints the report for a human.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	res := &r.Results
	unit := "queries"
	if r.Kind == "handshake" {
		unit = "handshakes"
	}
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, a...)...) }
	row("target", "%s", r.Target)
	if m := res.Memory; m != nil {
		row("protocol", "%s connections=%d concurrency=%d", r.Params.Protocol, r.Params.Connections, r.Params.Concurrency)
		row("open", "%d of %d after %.1f s ramp and %.1f s idle", m.Open, r.Params.Connections, m.RampS, m.SettleS)
		row("server RSS", "before %s  peak %s  steady %s", fmtBytes(float64(m.RSSBefore)), fmtBytes(float64(m.RSSPeak)), fmtBytes(float64(m.RSSSteady)))
		row("RSS per conn", "peak %s  steady %s", fmtBytes(m.PeakPerConn), fmtBytes(m.SteadyPerConn))
		row("machine", "%d CPUs, %s, %s", r.Machine.NProc, r.Machine.CPUModel, r.Machine.GoVersion)
		return tw.Flush()
	}
	switch r.Kind {
	case "handshake":
		row("tls", "%s resume=%v curves=%s sni=%s concurrency=%d", r.Params.TLSVersion, r.Params.Resume,
			orDefault(strings.Join(r.Params.Curves, ","), "default"), r.Params.SNI, r.Params.Concurrency)
	default:
		row("protocol", "%s connections=%d inflight=%d names=%d", r.Params.Protocol, r.Params.Connections, r.Params.Inflight, r.Params.Names)
	}
	row("elapsed", "%.2f s", res.ElapsedS)
	if r.Kind == "query" {
		row(unit, "%d ok, %d errors, %d sent", res.OK, res.Errors, res.Sent)
	} else {
		row(unit, "%d ok, %d errors", res.OK, res.Errors)
	}
	row("rate", "%.0f /s", res.Rate)
	row("latency", "p50 %s  p90 %s  p99 %s  max %s", fmtUS(res.Latency.P50US), fmtUS(res.Latency.P90US), fmtUS(res.Latency.P99US), fmtUS(res.Latency.MaxUS))
	if r.Kind == "handshake" {
		row("resumed", "%d of %d", res.Resumed, res.OK)
		row("staple", "%.3f valid (%d valid, %d invalid, %d missing of %d full handshakes)",
			res.StapleFrac, res.StapleValid, res.StapleInvalid, res.StapleMissing, res.FullHandshake)
		if res.StapleError != "" {
			row("staple error", "%s", res.StapleError)
		}
	} else if len(res.Rcodes) > 0 {
		row("rcodes", "%s", fmtCounts(res.Rcodes))
	}
	if r.Params.ServerPID > 0 {
		if res.ServerCPUError != "" {
			row("server cpu", "unavailable: %s", res.ServerCPUError)
		} else {
			row("server cpu", "%.2f s, %.1f µs per op, %.0f ops per server-CPU-second", res.ServerCPUSeconds, res.ServerCPUPerOpUS, res.RatePerServerCore)
		}
	}
	row("client cpu", "%.2f s, %.1f µs per op", res.ClientCPUSeconds, res.ClientCPUPerOpUS)
	if len(res.ErrorsByKind) > 0 {
		row("errors", "%s", fmtCounts(res.ErrorsByKind))
	}
	row("machine", "%d CPUs, %s, %s", r.Machine.NProc, r.Machine.CPUModel, r.Machine.GoVersion)
	return tw.Flush()
}

// fmtBytes prints a byte count in kB or MB (powers of 1000, as operators
// read dashboards), with one decimal.
func fmtBytes(b float64) string {
	switch {
	case b >= 1e6:
		return fmt.Sprintf("%.1f MB", b/1e6)
	case b >= 1e3:
		return fmt.Sprintf("%.1f kB", b/1e3)
	}
	return fmt.Sprintf("%.0f B", b)
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func fmtUS(us float64) string {
	switch {
	case us >= 1e6:
		return fmt.Sprintf("%.2fs", us/1e6)
	case us >= 1e3:
		return fmt.Sprintf("%.2fms", us/1e3)
	default:
		return fmt.Sprintf("%.0fµs", us)
	}
}

func fmtCounts(m map[string]uint64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}
