package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pigment-sd/pigment/checkpoint"
	"github.com/pigment-sd/pigment/component"
	"github.com/pigment-sd/pigment/kernels"
	"github.com/pigment-sd/pigment/kernels/cpu"
	"github.com/pigment-sd/pigment/kernels/ref"
	"github.com/pigment-sd/pigment/parallel"
)

// engineFlags are the flags every command that runs a network takes.
type engineFlags struct {
	threads   int
	kernels   string
	attention string
	chunk     int
}

func (f *engineFlags) register(cmd *cobra.Command) {
	cmd.Flags().IntVar(&f.threads, "threads", 0, "worker threads of the one compute pool (0: $"+parallel.EnvThreads+", else one per CPU)")
	cmd.Flags().StringVar(&f.kernels, "kernels", "cpu", "kernel implementation: cpu (fast) or ref (plain reference, slow)")
	cmd.Flags().StringVar(&f.attention, "attention", "chunked", "attention implementation: chunked or original")
	cmd.Flags().IntVar(&f.chunk, "attention-chunk", kernels.DefaultChunk, "query chunk size of chunked attention")
}

// build returns the kernels and attention mode the flags ask for, and a
// function releasing the kernels' workers.
func (f *engineFlags) build() (kernels.Kernels, kernels.AttentionMode, func(), error) {
	var mode kernels.AttentionMode
	switch strings.ToLower(f.attention) {
	case "chunked", "split-einsum-v2":
		mode = kernels.AttentionChunked
	case "original":
		mode = kernels.AttentionOriginal
	default:
		return nil, 0, nil, fmt.Errorf("--attention %q: want chunked or original", f.attention)
	}
	if f.chunk < 1 {
		return nil, 0, nil, fmt.Errorf("--attention-chunk must be at least 1, got %d", f.chunk)
	}
	if f.threads < 0 {
		return nil, 0, nil, fmt.Errorf("--threads must not be negative")
	}
	switch f.kernels {
	case "cpu":
		pool := parallel.New(f.threads)
		return cpu.NewWithPool(pool), mode, pool.Close, nil
	case "ref":
		return ref.New(), mode, func() {}, nil
	}
	return nil, 0, nil, fmt.Errorf("--kernels %q: want cpu or ref", f.kernels)
}

// errNoModel is the error of a command that needs --model without one.
var errNoModel = errors.New("no model given (--model)")

// modelFlags select and open a model.
type modelFlags struct {
	model      string
	variant    string
	prediction string
}

func (f *modelFlags) register(cmd *cobra.Command, required bool) {
	usage := "model: a diffusers folder, a single-file .safetensors/.ckpt checkpoint, a pigment package or a Hub repo id (owner/name[@revision])"
	cmd.Flags().StringVar(&f.model, "model", "", usage)
	if required {
		_ = cmd.MarkFlagRequired("model")
	}
	cmd.Flags().StringVar(&f.variant, "variant", "", `weight-file variant of diffusers folders to prefer, such as "fp16"`)
	cmd.Flags().StringVar(&f.prediction, "prediction-type", "", "override the prediction type of a single-file SD 2.x model: epsilon or v_prediction")
}

func (f *modelFlags) open(cmd *cobra.Command, components []component.Name) (*checkpoint.Model, error) {
	path, err := resolveModel(cmd, f.model, f.variant)
	if err != nil {
		return nil, err
	}
	return checkpoint.Open(path, checkpoint.Options{Variant: f.variant, Components: components, PredictionType: f.prediction})
}
