// Command pigment runs Stable Diffusion text-to-image and image-to-image on
// the CPU with palettized weights. Its subcommands generate images, convert
// models to compressed pigment packages, download models from the Hugging
// Face Hub, inspect models, run single components on tensors for
// comparison with a reference, and benchmark.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	if err := root.ExecuteContext(ctx); err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "pigment: interrupted")
			os.Exit(130)
		}
		fmt.Fprintln(os.Stderr, "pigment:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "pigment",
		Short:         "Stable Diffusion on the CPU with palettized weights",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(subcommands()...)
	return root
}
