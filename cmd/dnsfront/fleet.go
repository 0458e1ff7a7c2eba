package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dnsfront/dnsfront/internal/fleet"
)

func newFleetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "Fleet mode: instances sharing ticket keys, staples and blocks through etcd",
	}
	cmd.AddCommand(newFleetStatusCmd())
	return cmd
}

func newFleetStatusCmd() *cobra.Command {
	var admin, apiKey string
	var asJSON bool
	cmd := &cobra.Command{
		Use:          "status [--admin URL] [--api-key KEY]",
		Short:        "Show this instance's view of its fleet (GET /api/v1/fleet)",
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			url := strings.TrimSuffix(admin, "/") + "/api/v1/fleet"
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return fmt.Errorf("fleet status: %w", err)
			}
			if apiKey != "" {
				req.Header.Set("X-API-Key", apiKey)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return fmt.Errorf("fleet status: %w", err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
			if err != nil {
				return fmt.Errorf("fleet status: %s: %w", url, err)
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("fleet status: %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
			}
			var st fleet.Status
			if err := json.Unmarshal(body, &st); err != nil {
				return fmt.Errorf("fleet status: %s: %w", url, err)
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printFleetStatus(cmd.OutOrStdout(), st, time.Now())
			return nil
		},
	}
	cmd.Flags().StringVar(&admin, "admin", "http://127.0.0.1:10080", "admin API base URL")
	cmd.Flags().StringVar(&apiKey, "api-key", "", "admin API key (sent as X-API-Key)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the JSON instead of tables")
	return cmd
}

func printFleetStatus(w io.Writer, st fleet.Status, now time.Time) {
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	fmt.Fprintf(w, "fleet %s, member %s: connected %s, leader %s%s\n", st.Name, st.Member, yes(st.Connected), dash(st.Leader),
		map[bool]string{true: " (this member)", false: ""}[st.IsLeader])
	fmt.Fprintf(w, "ticket keys: epoch %d, %s, %d installed, next key shared %s\n", st.KeyEpoch, st.KeySource, st.Keys, yes(st.NextKeyShared))
	fmt.Fprintf(w, "last sync %s, lag %.3fs, etcd sessions %d\n", relTime(st.LastSync, now), st.LagSeconds, st.Sessions)
	if st.LastError != "" {
		fmt.Fprintf(w, "last error: %s\n", st.LastError)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "\nMEMBER\tSINCE\tLEADER\n")
	for _, m := range st.Members {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", m.Name, fmtTime(m.Since), yes(m.Name == st.Leader))
	}
	fmt.Fprintf(tw, "\nSTAPLE (CERT SHA-256)\tBYTES\tORIGIN\tWRITTEN\n")
	for _, s := range st.Staples {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", s.CertSHA256, s.Bytes, dash(s.Origin), fmtTime(s.Written))
	}
	fmt.Fprintf(tw, "\nBLOCK\tUNTIL\tACTION\tREASON\tORIGIN\n")
	for _, b := range st.Blocks {
		until := b.Until
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", b.Prefix, relTime(&until, now), dash(b.Action), dash(b.Reason), dash(b.Origin))
	}
	tw.Flush()
}
