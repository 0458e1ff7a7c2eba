package bench

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"os"
)

// The charts are small hand-written SVG: horizontal bars with their values
// printed on them. gonum/plot would bring a dozen modules and a font stack
// for what is a few rectangles; SVG text is diffable, needs nothing to view
// but a browser, and renders the labels (long run names) without clipping.

// Bar is one bar of a chart.
type Bar struct {
	Label string
	Value float64
	Text  string // printed after the bar; empty: the value
}

// WriteBarChart draws bars horizontally, scaled to the largest value.
func WriteBarChart(w io.Writer, title, unit string, bars []Bar) error {
	const (
		labelW = 330
		barW   = 420
		textW  = 150
		rowH   = 26
		top    = 46
		left   = 10
	)
	width := left + labelW + barW + textW
	height := top + rowH*len(bars) + 30
	maxV := 0.0
	for _, b := range bars {
		maxV = math.Max(maxV, b.Value)
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="13">`+"\n", width, height, width, height)
	fmt.Fprintf(bw, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(bw, `<text x="%d" y="24" font-size="16" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(title))
	palette := []string{"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f"}
	for i, b := range bars {
		y := top + i*rowH
		l := 0.0
		if maxV > 0 && b.Value > 0 {
			l = b.Value / maxV * barW
		}
		text := b.Text
		if text == "" {
			text = fmt.Sprintf("%.4g %s", b.Value, unit)
		}
		fmt.Fprintf(bw, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", left+labelW-8, y+17, html.EscapeString(b.Label))
		fmt.Fprintf(bw, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", left+labelW, y+4, l, rowH-8, palette[i%len(palette)])
		fmt.Fprintf(bw, `<text x="%.1f" y="%d">%s</text>`+"\n", float64(left+labelW)+l+6, y+17, html.EscapeString(text))
	}
	fmt.Fprintf(bw, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`+"\n", left+labelW, top, left+labelW, top+rowH*len(bars))
	fmt.Fprintf(bw, "</svg>\n")
	return bw.Flush()
}

// WriteReportChart draws one run: its latency percentiles, with the rate in
// the title.
func WriteReportChart(path string, r *Report) error {
	l := r.Results.Latency
	title := fmt.Sprintf("%s: %.0f/s, %d errors", r.Name(), r.Results.Rate, r.Results.Errors)
	bars := []Bar{
		{Label: "p50", Value: l.P50US, Text: fmtUS(l.P50US)},
		{Label: "p90", Value: l.P90US, Text: fmtUS(l.P90US)},
		{Label: "p99", Value: l.P99US, Text: fmtUS(l.P99US)},
		{Label: "max", Value: l.MaxUS, Text: fmtUS(l.MaxUS)},
	}
	return writeChartFile(path, title, "µs", bars)
}

// WriteSummaryChart draws the rate of each run, and its rate per server
// core when it was measured.
func WriteSummaryChart(path, title string, rs []*Report) error {
	var bars []Bar
	for _, r := range rs {
		text := fmt.Sprintf("%.0f/s", r.Results.Rate)
		if r.Results.RatePerServerCore > 0 {
			text += fmt.Sprintf(" (%.0f/core-s)", r.Results.RatePerServerCore)
		}
		bars = append(bars, Bar{Label: r.Name(), Value: r.Results.Rate, Text: text})
	}
	return writeChartFile(path, title, "/s", bars)
}

func writeChartFile(path, title, unit string, bars []Bar) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: chart: %w", err)
	}
	if err := WriteBarChart(f, title, unit, bars); err != nil {
		f.Close()
		return fmt.Errorf("bench: chart %s: %w", path, err)
	}
	return f.Close()
}
