package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dnsfront/dnsfront/engine/rules"
)

// newBlocksCmd is `dnsfront blocks`: the dynamic blocks in force, through the admin API
// (GET, POST and DELETE /api/v1/blocks).
func newBlocksCmd() *cobra.Command {
	var admin, apiKey string
	cmd := &cobra.Command{
		Use:   "blocks",
		Short: "List, add and remove dynamic blocks (admin API /api/v1/blocks)",
	}
	cmd.PersistentFlags().StringVar(&admin, "admin", "http://127.0.0.1:10080", "admin API base URL")
	cmd.PersistentFlags().StringVar(&apiKey, "api-key", "", "admin API key (sent as X-API-Key)")
	call := func(ctx context.Context, method, query string, body any) ([]byte, error) {
		u := strings.TrimSuffix(admin, "/") + "/api/v1/blocks" + query
		var r io.Reader
		if body != nil {
			b, err := json.Marshal(body)
			if err != nil {
				return nil, err
			}
			r = bytes.NewReader(b)
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, method, u, r)
		if err != nil {
			return nil, err
		}
		if apiKey != "" {
			req.Header.Set("X-API-Key", apiKey)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", u, err)
		}
		if resp.StatusCode/100 != 2 {
			return nil, fmt.Errorf("%s %s: %s: %s", method, u, resp.Status, strings.TrimSpace(string(out)))
		}
		return out, nil
	}

	var asJSON bool
	list := &cobra.Command{
		Use:          "list",
		Short:        "Show the blocks in force",
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body, err := call(cmd.Context(), http.MethodGet, "", nil)
			if err != nil {
				return fmt.Errorf("blocks list: %w", err)
			}
			var bs []rules.BlockInfo
			if err := json.Unmarshal(body, &bs); err != nil {
				return fmt.Errorf("blocks list: %w", err)
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(bs)
			}
			printBlocks(cmd.OutOrStdout(), bs)
			return nil
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print the JSON instead of a table")

	var req rules.BlockRequest
	var dur time.Duration
	add := &cobra.Command{
		Use:          "add (--network PREFIX | --suffix NAME) [--action A] [--duration D] [--reason R]",
		Short:        "Block a network or a domain for a while",
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req.Duration = dur
			if _, err := call(cmd.Context(), http.MethodPost, "", req); err != nil {
				return fmt.Errorf("blocks add: %w", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "added")
			return nil
		},
	}
	add.Flags().StringVar(&req.Network, "network", "", "an address or a prefix")
	add.Flags().StringVar(&req.Suffix, "suffix", "", "a domain: every name under it")
	add.Flags().StringVar(&req.Action, "action", "Drop", "Drop, Refused, NXDomain, Truncate, NoRecurse, SetTag or NoOp")
	add.Flags().DurationVar(&dur, "duration", time.Minute, "how long the block lasts")
	add.Flags().StringVar(&req.Reason, "reason", "added by dnsfront blocks add", "why, for the logs and the list")
	add.Flags().StringVar(&req.TagName, "tag-name", "", "SetTag: the tag")
	add.Flags().StringVar(&req.TagValue, "tag-value", "", "SetTag: its value")

	remove := &cobra.Command{
		Use:          "remove KEY",
		Short:        "Lift a block (KEY as listed: a network, or suffix:<name>)",
		Args:         cobra.ExactArgs(1),
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := call(cmd.Context(), http.MethodDelete, "?key="+url.QueryEscape(args[0]), nil); err != nil {
				return fmt.Errorf("blocks remove: %w", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "removed")
			return nil
		},
	}
	cmd.AddCommand(list, add, remove)
	return cmd
}

func printBlocks(w io.Writer, bs []rules.BlockInfo) {
	if len(bs) == 0 {
		fmt.Fprintln(w, "no block in force")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tACTION\tREMAINING\tHITS\tGROUP/RULE\tREASON")
	for _, b := range bs {
		kind := b.Action
		if b.Warning {
			kind += " (warning)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s/%s\t%s\n", b.Key, kind, b.Remaining.Round(time.Second), b.Hits, b.Group, b.Rule, b.Reason)
	}
	_ = tw.Flush()
}
