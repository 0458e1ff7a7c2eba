package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/dnsfront/dnsfront/bench"
	"github.com/dnsfront/dnsfront/internal/server"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// newBenchCmd is `dnsfront bench`: load generators that measure any DNS
// server over the network (handshakes, queries) and tools to read their
// JSON reports (compare, summary).
func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure TLS handshakes and queries per second against any DNS server",
	}
	cmd.AddCommand(newBenchHandshakeCmd(), newBenchQueryCmd(), newBenchConnsCmd(), newBenchCompareCmd(), newBenchSummaryCmd())
	return cmd
}

// benchOutput holds the flags every load command shares.
type benchOutput struct {
	json, chart, label string
	serverPID          int
}

func (o *benchOutput) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.json, "json", "", "write the report as JSON to this file")
	cmd.Flags().StringVar(&o.chart, "chart", "", "write an SVG chart of the latencies to this file")
	cmd.Flags().StringVar(&o.label, "label", "", "name of this run in reports, comparisons and charts")
	cmd.Flags().IntVar(&o.serverPID, "server-pid", 0, "PID of the server, to report its CPU time per operation (Linux /proc)")
}

// runInfo is what the report records about this run.
func (o *benchOutput) runInfo(cmd *cobra.Command) bench.RunInfo {
	return bench.RunInfo{ServerPID: o.serverPID, Label: o.label, Version: server.Version, Progress: progressWriter(cmd)}
}

// run runs load until it ends or SIGINT, then prints the report and writes
// the files asked for. An interrupted run still writes its partial report.
func (o *benchOutput) run(cmd *cobra.Command, load func(context.Context) (*bench.Report, error)) error {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := signal.NotifyContext(ctx, os.Interrupt)
	defer cancel()
	r, runErr := load(ctx)
	if r == nil {
		return runErr
	}
	if err := r.WriteTable(cmd.OutOrStdout()); err != nil {
		return err
	}
	if o.json != "" {
		if err := r.WriteJSON(o.json); err != nil {
			return err
		}
	}
	if o.chart != "" {
		if err := bench.WriteReportChart(o.chart, r); err != nil {
			return err
		}
	}
	return runErr
}

// progressWriter returns stdout when it is a terminal: the progress line is
// for a person watching, never for a file or a pipe.
func progressWriter(cmd *cobra.Command) io.Writer {
	f, ok := cmd.OutOrStdout().(*os.File)
	if !ok {
		return nil
	}
	if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err != nil {
		return nil
	}
	return f
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func newBenchHandshakeCmd() *cobra.Command {
	var (
		o       bench.HandshakeOptions
		out     benchOutput
		curves  string
		alpn    string
		useQUIC bool
	)
	cmd := &cobra.Command{
		Use:   "handshake --target HOST:PORT [flags]",
		Short: "Full TLS handshakes per second, a new TCP connection (or QUIC connection with --proto quic) each, and the fraction with a valid OCSP staple",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.TLS.Curves = splitList(curves)
			if useQUIC {
				o.Proto = "quic"
			}
			if o.Proto != "quic" || cmd.Flags().Changed("alpn") {
				o.TLS.ALPN = splitList(alpn)
			}
			o.RunInfo = out.runInfo(cmd)
			return out.run(cmd, func(ctx context.Context) (*bench.Report, error) { return bench.RunHandshake(ctx, o) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Target, "target", "", "server address HOST:PORT (required)")
	f.StringVar(&o.Proto, "proto", "tls", "tls: TLS over TCP; quic: a QUIC connection per handshake (ALPN doq unless --alpn is given)")
	f.BoolVar(&useQUIC, "quic", false, "same as --proto quic")
	f.StringVar(&o.TLS.SNI, "sni", "", "server name to send and verify (default: the target's host)")
	f.StringVar(&o.TLS.CAFile, "ca", "", "PEM file of CA certificates: verify the server and find the staple's issuer (default: no verification)")
	f.StringVar(&o.TLS.Version, "tls", "1.3", "TLS version: 1.2 or 1.3")
	f.BoolVar(&o.Resume, "resume", false, "resume sessions (one shared session cache, primed before the run)")
	f.StringVar(&curves, "curves", "", "key exchange groups, comma-separated (X25519, X25519MLKEM768, P256, ...; default: Go's)")
	f.StringVar(&alpn, "alpn", "dot", "ALPN protocols offered, comma-separated (h2 for a DoH server)")
	f.IntVar(&o.Concurrency, "concurrency", 16, "handshakes in flight")
	f.DurationVar(&o.Duration, "duration", 10*time.Second, "length of the run")
	f.DurationVar(&o.Timeout, "timeout", 5*time.Second, "per-handshake timeout, connect included")
	f.StringVar(&o.Query, "query", "", "after each handshake, send one DoT (DoQ with --proto quic) query for this name (type A) and check the answer")
	out.flags(cmd)
	cmd.MarkFlagRequired("target")
	return cmd
}

func newBenchQueryCmd() *cobra.Command {
	var (
		o      bench.QueryOptions
		out    benchOutput
		names  string
		curves string
	)
	cmd := &cobra.Command{
		Use:   "query --target HOST:PORT --proto udp|tcp|dot|doh|doq|doh3 [flags]",
		Short: "Queries per second on warm connections, every answer checked",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if names != "" {
				qs, err := bench.LoadQuestions(names)
				if err != nil {
					return err
				}
				o.Questions = qs
			}
			o.TLS.Curves = splitList(curves)
			o.RunInfo = out.runInfo(cmd)
			return out.run(cmd, func(ctx context.Context) (*bench.Report, error) { return bench.RunQuery(ctx, o) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Target, "target", "", "server address HOST:PORT (required)")
	f.StringVar(&o.Proto, "proto", "udp", "protocol: udp, tcp, dot, doh, doq (RFC 9250) or doh3 (DoH over HTTP/3)")
	f.IntVar(&o.Connections, "connections", 4, "connections (UDP sockets for udp, QUIC connections for doq/doh3)")
	f.IntVar(&o.Inflight, "inflight", 16, "queries outstanding per connection (pipelined on tcp/dot, HTTP/2 streams on doh, QUIC streams on doq/doh3)")
	f.DurationVar(&o.Duration, "duration", 10*time.Second, "length of the run")
	f.DurationVar(&o.Timeout, "timeout", 2*time.Second, "a query unanswered after this counts as lost")
	f.StringVar(&names, "names", "", `file of "qname [qtype]" lines, dnsperf's format (default: names of the demo backend)`)
	f.StringVar(&o.TLS.SNI, "sni", "", "dot/doh/doq/doh3: server name to send and verify (default: the target's host)")
	f.StringVar(&o.TLS.CAFile, "ca", "", "dot/doh/doq/doh3: PEM file of CA certificates to verify the server (default: no verification)")
	f.StringVar(&o.TLS.Version, "tls", "", "dot/doh/doq/doh3: TLS version 1.2 or 1.3 (default: either)")
	f.StringVar(&curves, "curves", "", "dot/doh/doq/doh3: key exchange groups, comma-separated")
	f.StringVar(&o.Path, "path", "/dns-query", "doh/doh3: URL path")
	out.flags(cmd)
	cmd.MarkFlagRequired("target")
	return cmd
}

func newBenchConnsCmd() *cobra.Command {
	var (
		o   bench.ConnsOptions
		out benchOutput
	)
	cmd := &cobra.Command{
		Use:   "conns --target HOST:PORT --proto tcp|dot|doh --count N --server-pid PID [flags]",
		Short: "Open N idle connections and report the server's resident memory (RSS) per connection at the peak and at steady state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.RunInfo = out.runInfo(cmd)
			return out.run(cmd, func(ctx context.Context) (*bench.Report, error) { return bench.RunConns(ctx, o) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Target, "target", "", "server address HOST:PORT (required)")
	f.StringVar(&o.Proto, "proto", "dot", "protocol: tcp, dot or doh")
	f.IntVar(&o.Count, "count", 10000, "connections to open; each answers one query and then stays idle")
	f.IntVar(&o.Concurrency, "concurrency", 64, "connections being opened at once")
	f.DurationVar(&o.Settle, "settle", 30*time.Second, "how long the connections stay idle after the ramp; the last RSS reading is the steady state")
	f.DurationVar(&o.Timeout, "timeout", 10*time.Second, "per connection: connect, handshake and first answer")
	f.StringVar(&o.Query, "query", "", "name asked on each connection (default: the demo backend's www name)")
	f.StringVar(&o.TLS.SNI, "sni", "", "dot/doh/doq/doh3: server name to send and verify (default: the target's host)")
	f.StringVar(&o.TLS.CAFile, "ca", "", "dot/doh/doq/doh3: PEM file of CA certificates to verify the server (default: no verification)")
	f.StringVar(&o.TLS.Version, "tls", "", "dot/doh/doq/doh3: TLS version 1.2 or 1.3 (default: either)")
	f.StringVar(&o.Path, "path", "/dns-query", "doh/doh3: URL path")
	out.flags(cmd)
	cmd.MarkFlagRequired("target")
	return cmd
}

// loadMerged reads one argument of compare: a report file, or several
// comma-separated files of repeated runs, averaged.
func loadMerged(arg string) (*bench.Report, error) {
	var rs []*bench.Report
	for _, p := range splitList(arg) {
		r, err := bench.ReadReport(p)
		if err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	return bench.MergeReports(rs)
}

func newBenchCompareCmd() *cobra.Command {
	var markdown bool
	cmd := &cobra.Command{
		Use:   "compare A.json B.json [C.json...]",
		Short: "Print each metric of several reports and its ratio to the first (B/A, C/A, ...)",
		Long: "Print each metric of several reports and its ratio to the first (B/A, C/A, ...).\n" +
			"An argument may list several comma-separated files (repeated runs of one side, A B A B): their figures are averaged.",
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var rs []*bench.Report
			for _, a := range args {
				r, err := loadMerged(a)
				if err != nil {
					return err
				}
				rs = append(rs, r)
			}
			return bench.Compare(cmd.OutOrStdout(), rs, markdown)
		},
	}
	cmd.Flags().BoolVar(&markdown, "markdown", false, "print a markdown table")
	return cmd
}

func newBenchSummaryCmd() *cobra.Command {
	var (
		markdown     bool
		chart, title string
	)
	cmd := &cobra.Command{
		Use:   "summary REPORT.json...",
		Short: "One row per report (rate, rate per server core, latency, staple, errors), and a chart of the rates",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var rs []*bench.Report
			for _, a := range args {
				r, err := bench.ReadReport(a)
				if err != nil {
					return err
				}
				rs = append(rs, r)
			}
			if chart != "" {
				if err := bench.WriteSummaryChart(chart, title, rs); err != nil {
					return err
				}
			}
			return bench.WriteSummary(cmd.OutOrStdout(), rs, markdown)
		},
	}
	cmd.Flags().BoolVar(&markdown, "markdown", false, "print a markdown table")
	cmd.Flags().StringVar(&chart, "chart", "", "write an SVG bar chart of the rates to this file")
	cmd.Flags().StringVar(&title, "title", "dnsfront bench", "chart title")
	return cmd
}
