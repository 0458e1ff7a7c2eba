package main

import (
	"bytes"

	"github.com/spf13/cobra"
)

// runCmd executes cmd with args and returns what it printed (stdout and
// stderr together) and its error.
func runCmd(cmd *cobra.Command, args ...string) (string, error) {
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}
