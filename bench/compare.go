package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// metric is one figure of a report that compare and summary print.
type metric struct {
	name   string
	better string // "higher" or "lower"
	get    func(*Results) float64
	format string
}

var metrics = []metric{
	{"rate /s", "higher", func(r *Results) float64 { return r.Rate }, "%.0f"},
	{"rate per server core /s", "higher", func(r *Results) float64 { return r.RatePerServerCore }, "%.0f"},
	{"server CPU per op µs", "lower", func(r *Results) float64 { return r.ServerCPUPerOpUS }, "%.1f"},
	{"client CPU per op µs", "lower", func(r *Results) float64 { return r.ClientCPUPerOpUS }, "%.1f"},
	{"latency p50 µs", "lower", func(r *Results) float64 { return r.Latency.P50US }, "%.0f"},
	{"latency p90 µs", "lower", func(r *Results) float64 { return r.Latency.P90US }, "%.0f"},
	{"latency p99 µs", "lower", func(r *Results) float64 { return r.Latency.P99US }, "%.0f"},
	{"staple fraction", "higher", func(r *Results) float64 { return r.StapleFrac }, "%.3f"},
	{"RSS per conn at peak B", "lower", func(r *Results) float64 { return memory(r).PeakPerConn }, "%.0f"},
	{"RSS per conn at steady state B", "lower", func(r *Results) float64 { return memory(r).SteadyPerConn }, "%.0f"},
	{"errors", "lower", func(r *Results) float64 { return float64(r.Errors) }, "%.0f"},
}

// memory returns a report's memory readings, zero for a run that has none.
func memory(r *Results) *ConnsResults {
	if r.Memory == nil {
		return &ConnsResults{}
	}
	return r.Memory
}

// MergeReports averages repeated runs of one case (the A A of an A B A B
// sequence) into one report: every compared figure becomes the mean over
// the runs. Params and machine are those of the first run.
func MergeReports(rs []*Report) (*Report, error) {
	if len(rs) == 0 {
		return nil, fmt.Errorf("bench: nothing to merge")
	}
	m := *rs[0]
	if len(rs) == 1 {
		return &m, nil
	}
	for _, r := range rs[1:] {
		if r.Kind != m.Kind || r.Params.Protocol != m.Params.Protocol {
			return nil, fmt.Errorf("bench: cannot merge a %s %s run with a %s %s run", m.Kind, m.Params.Protocol, r.Kind, r.Params.Protocol)
		}
	}
	n := float64(len(rs))
	var sum Results
	for _, r := range rs {
		x := &r.Results
		sum.ElapsedS += x.ElapsedS
		sum.OK += x.OK
		sum.Errors += x.Errors
		sum.Rate += x.Rate / n
		sum.RatePerServerCore += x.RatePerServerCore / n
		sum.ServerCPUPerOpUS += x.ServerCPUPerOpUS / n
		sum.ServerCPUSeconds += x.ServerCPUSeconds
		sum.ClientCPUPerOpUS += x.ClientCPUPerOpUS / n
		sum.ClientCPUSeconds += x.ClientCPUSeconds
		sum.Latency.P50US += x.Latency.P50US / n
		sum.Latency.P90US += x.Latency.P90US / n
		sum.Latency.P99US += x.Latency.P99US / n
		sum.Latency.MeanUS += x.Latency.MeanUS / n
		sum.Latency.MaxUS = max(sum.Latency.MaxUS, x.Latency.MaxUS)
		sum.Latency.Samples += x.Latency.Samples
		sum.StapleFrac += x.StapleFrac / n
		sum.FullHandshake += x.FullHandshake
		sum.Resumed += x.Resumed
		sum.StapleValid += x.StapleValid
		sum.StapleInvalid += x.StapleInvalid
		sum.StapleMissing += x.StapleMissing
		if x.Memory != nil {
			if sum.Memory == nil {
				sum.Memory = &ConnsResults{}
			}
			sum.Memory.PeakPerConn += x.Memory.PeakPerConn / n
			sum.Memory.SteadyPerConn += x.Memory.SteadyPerConn / n
			sum.Memory.RSSPeak = max(sum.Memory.RSSPeak, x.Memory.RSSPeak)
		}
		for k, v := range x.ErrorsByKind {
			if sum.ErrorsByKind == nil {
				sum.ErrorsByKind = make(map[string]uint64)
			}
			sum.ErrorsByKind[k] += v
		}
	}
	// Errors are compared per run, like the rates.
	sum.Errors = uint64(float64(sum.Errors)/n + 0.5)
	m.Results = sum
	return &m, nil
}

// table is printed aligned for a terminal, or as GitHub markdown.
type table struct {
	header []string
	rows   [][]string
}

func (t *table) write(w io.Writer, markdown bool) error {
	if markdown {
		line := func(cells []string) { fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | ")) }
		line(t.header)
		seps := make([]string, len(t.header))
		for i := range seps {
			seps[i] = "---"
			if i > 0 {
				seps[i] = "---:"
			}
		}
		line(seps)
		for _, r := range t.rows {
			line(r)
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, r := range append([][]string{t.header}, t.rows...) {
		fmt.Fprintf(tw, "%s\t\n", strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// Compare prints, for each metric, the value of every report and its ratio
// to the first one (the baseline): B/A, C/A and so on. Ratios above 1 are
// better for rates, below 1 for costs and latencies.
func Compare(w io.Writer, rs []*Report, markdown bool) error {
	if len(rs) < 2 {
		return fmt.Errorf("bench: compare needs at least two reports")
	}
	for _, r := range rs[1:] {
		if r.Kind != rs[0].Kind || r.Params.Protocol != rs[0].Params.Protocol {
			return fmt.Errorf("bench: cannot compare %q (%s %s) with %q (%s %s)",
				rs[0].Name(), rs[0].Kind, rs[0].Params.Protocol, r.Name(), r.Kind, r.Params.Protocol)
		}
	}
	t := table{header: []string{"metric", "A: " + rs[0].Name()}}
	for i, r := range rs[1:] {
		l := string(rune('B' + i))
		t.header = append(t.header, l+": "+r.Name(), l+"/A")
	}
	for _, m := range metrics {
		base := m.get(&rs[0].Results)
		all0 := base == 0
		row := []string{m.name + " (" + m.better + " is better)", fmt.Sprintf(m.format, base)}
		for _, r := range rs[1:] {
			v := m.get(&r.Results)
			all0 = all0 && v == 0
			row = append(row, fmt.Sprintf(m.format, v), ratio(v, base))
		}
		if !all0 {
			t.rows = append(t.rows, row)
		}
	}
	return t.write(w, markdown)
}

func ratio(v, base float64) string {
	switch {
	case base == 0 && v == 0:
		return "1.00"
	case base == 0:
		return "∞"
	}
	return fmt.Sprintf("%.2f", v/base)
}

// WriteSummary prints one row per report: the table of a whole suite.
func WriteSummary(w io.Writer, rs []*Report, markdown bool) error {
	t := table{header: []string{"run", "rate /s", "per server core /s", "server µs/op", "p50", "p99", "staple", "errors"}}
	for _, r := range rs {
		x := &r.Results
		staple := "-"
		if r.Kind == "handshake" && x.FullHandshake > 0 {
			staple = fmt.Sprintf("%.3f", x.StapleFrac)
		}
		perCore, perOp := "-", "-"
		if x.RatePerServerCore > 0 {
			perCore = fmt.Sprintf("%.0f", x.RatePerServerCore)
			perOp = fmt.Sprintf("%.1f", x.ServerCPUPerOpUS)
		}
		t.rows = append(t.rows, []string{
			r.Name(), fmt.Sprintf("%.0f", x.Rate), perCore, perOp,
			fmtUS(x.Latency.P50US), fmtUS(x.Latency.P99US), staple, fmt.Sprintf("%d", x.Errors),
		})
	}
	return t.write(w, markdown)
}
