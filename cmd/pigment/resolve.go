package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/pigment-sd/pigment/catalog"
	"github.com/pigment-sd/pigment/hub"
	"github.com/pigment-sd/pigment/kernels"
)

// resolver returns a model resolver that draws download progress on the
// command's stderr.
func resolver(cmd *cobra.Command) *catalog.Resolver {
	r := catalog.New(nil)
	r.Pull = func(ctx context.Context, c *hub.Client, repoID, rev string, include []string) (string, error) {
		return pull(cmd, c, repoID, rev, include, nil, "")
	}
	r.Log = cmd.ErrOrStderr()
	return r
}

// resolveModel turns what the user typed into a local path (see
// catalog.Resolver.Resolve).
func resolveModel(cmd *cobra.Command, model, variant string) (string, error) {
	if model == "" {
		return "", errNoModel
	}
	return resolver(cmd).Resolve(cmd.Context(), model, variant)
}

// defaultModel returns the default model's pigment package, pulling and
// converting it the first time (see catalog.Resolver.Default).
func defaultModel(cmd *cobra.Command, k kernels.Kernels) (string, error) {
	progress, finish := convertProgress(cmd, false)
	defer finish()
	return resolver(cmd).Default(cmd.Context(), catalog.DefaultOptions{Kernels: k, Progress: progress})
}
