package main

import (
	"fmt"
	"os"

	"github.com/dnsfront/dnsfront/internal/migrate"
	"github.com/spf13/cobra"
)

// newMigrateCmd is `dnsfront migrate-dnsdist`: a dnsdist configuration in,
// the dnsfront one out, and what could not be carried over named.
func newMigrateCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "migrate-dnsdist FILE",
		Short: "Convert a dnsdist configuration (2.x YAML, or 1.x Lua directives) into dnsfront YAML",
		Long: "Convert a dnsdist configuration into dnsfront YAML: a dnsdist 2.x YAML file, or the\n" +
			"setLocal/addLocal/addTLSLocal/addDOHLocal/newServer/setACL/setServerPolicy/newPacketCache/\n" +
			"webserver lines of a Lua configuration. The YAML goes to standard output (or --out); every\n" +
			"setting that could not be carried over is named on standard error with its line, and in a\n" +
			"comment at the top of the YAML. Review the result, then `dnsfront check-config` it.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			r, err := migrate.Convert(args[0], data)
			if err != nil {
				return err
			}
			for _, n := range r.Notes {
				fmt.Fprintln(cmd.ErrOrStderr(), "not carried over:", n)
			}
			if out == "" {
				_, err = cmd.OutOrStdout().Write(r.YAML)
				return err
			}
			return os.WriteFile(out, r.YAML, 0o644)
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "write the YAML to this file instead of standard output")
	return cmd
}
