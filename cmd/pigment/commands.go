package main

import "github.com/spf13/cobra"

// subcommands lists every subcommand of the root command.
func subcommands() []*cobra.Command {
	return []*cobra.Command{
		newRunCmd(),
		newInspectCmd(),
		newTokenizeCmd(),
		newPullCmd(),
		newGenerateCmd(),
		newBenchCmd(),
		newConvertCmd(),
	}
}
