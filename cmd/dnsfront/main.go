// Command dnsfront is a high-performance DNS frontend: Do53, DoT and DoH on event loops,
// with OCSP stapling managed end to end, in front of DNS resolvers.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "dnsfront:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "dnsfront",
		Short:         "A high-performance DNS frontend (Do53, DoT, DoH) with managed OCSP stapling",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCmd(), newCheckConfigCmd(), newVersionCmd(), newReloadCmd(), newUpgradeCmd())
	for _, c := range extraCommands() {
		root.AddCommand(c)
	}
	return root
}
