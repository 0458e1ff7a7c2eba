package main

import "github.com/spf13/cobra"

// extraCommands are the subcommands that live in their own files (ocsp, bench, migrate-dnsdist, fleet, blocks).
func extraCommands() []*cobra.Command {
	return []*cobra.Command{newOCSPCmd(), newBenchCmd(), newMigrateCmd(), newFleetCmd(), newBlocksCmd()}
}
