package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/pigment-sd/pigment/checkpoint"
	"github.com/pigment-sd/pigment/component"
	"github.com/pigment-sd/pigment/convert"
	"github.com/pigment-sd/pigment/internal/randmodel"
	"github.com/pigment-sd/pigment/palette"
)

type convertFlags struct {
	out         string
	bits        int
	mode        string
	granularity string
	groupSize   int
	components  string
	minSize     int
	check       bool
	threshold   float64
	recipe      string
	tableF32    bool
	force       bool
	noProgress  bool
	random      string
}

func newConvertCmd() *cobra.Command {
	var cf convertFlags
	var mf modelFlags
	var ef engineFlags
	cmd := &cobra.Command{
		Use:   "convert --model SRC -o OUT",
		Short: "Compress a model into a pigment package with palettized weights",
		Long: `Convert a float model (diffusers folder, single-file .safetensors/.ckpt, or Hub
repo id) into a pigment package: every Linear and Conv weight with at least
--min-size elements is clustered into a look-up table of 2^n values and stored
as n-bit indices; norms, biases and embeddings stay float. The package is
written atomically: it appears whole under OUT or not at all.

--check-output-correctness runs each converted network and its float original
on fixed sample inputs and prints the PSNR of the outputs; below the threshold
(35 dB by default, as apple/ml-stable-diffusion's check) the command fails.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runConvert(cmd, &cf, &mf, &ef) },
	}
	f := cmd.Flags()
	mf.register(cmd, false)
	ef.register(cmd)
	f.StringVarP(&cf.out, "output", "o", "", "output package folder")
	f.IntVar(&cf.bits, "quantize-nbits", convert.DefaultBits, "index width n: "+palette.WidthsText)
	f.StringVar(&cf.mode, "mode", "kmeans", "palettization mode: kmeans (exact 1-D k-means), uniform, or unique (lossless, fails if a tensor has more than 2^n values)")
	f.StringVar(&cf.granularity, "granularity", "per-tensor", "per-tensor (one table per tensor) or per-grouped-channel (one per --group-size output channels)")
	f.IntVar(&cf.groupSize, "group-size", 16, "output channels per table with --granularity per-grouped-channel")
	f.StringVar(&cf.components, "components", component.Join(component.Networks(), ","), "networks to compress (others are copied float)")
	f.IntVar(&cf.minSize, "min-size", convert.DefaultMinSize, "weights with fewer elements stay float")
	f.BoolVar(&cf.check, "check-output-correctness", false, "compare each converted network with its float original (PSNR)")
	f.Float64Var(&cf.threshold, "check-threshold", convert.DefaultThresholdDB, "PSNR in dB a network must reach to pass the check")
	f.StringVar(&cf.recipe, "recipe", "", "JSON file mapping tensor names or globs (unet/*attn1*) to bits (0 keeps float), for mixed-bit palettization")
	f.BoolVar(&cf.tableF32, "table-f32", false, "store look-up tables as float32 instead of float16")
	f.BoolVar(&cf.force, "force", false, "replace an existing pigment package at the output path")
	f.BoolVar(&cf.noProgress, "no-progress", false, "do not draw a progress bar")
	f.StringVar(&cf.random, "random-weights", "", "instead of --model, convert a full-size model of this official config (sd15, sd21-base, sd21) with random float16 weights built in memory, for benchmarks")
	_ = cmd.MarkFlagRequired("output")
	return cmd
}

// options validates the flags into convert options.
func (cf *convertFlags) options() (convert.Options, error) {
	opt := convert.Options{Bits: cf.bits, MinSize: cf.minSize, Check: cf.check, CheckThresholdDB: cf.threshold,
		TableF32: cf.tableF32, Force: cf.force}
	switch cf.mode {
	case "kmeans", "uniform", "unique":
		opt.Mode = palette.Mode(cf.mode)
	default:
		return opt, fmt.Errorf("--mode %q: want kmeans, uniform or unique", cf.mode)
	}
	switch cf.granularity {
	case "per-tensor":
	case "per-grouped-channel":
		if cf.groupSize < 1 {
			return opt, fmt.Errorf("--group-size must be at least 1, got %d", cf.groupSize)
		}
		opt.GroupSize = cf.groupSize
	default:
		return opt, fmt.Errorf("--granularity %q: want per-tensor or per-grouped-channel", cf.granularity)
	}
	if !palette.ValidBits(cf.bits) {
		return opt, fmt.Errorf("--quantize-nbits %d: want %s", cf.bits, palette.WidthsText)
	}
	for _, c := range strings.Split(cf.components, ",") {
		if c = strings.TrimSpace(c); c != "" {
			n, err := component.ParseNetwork(c)
			if err != nil {
				return opt, fmt.Errorf("--components: %w", err)
			}
			opt.Components = append(opt.Components, n)
		}
	}
	if cf.recipe != "" {
		b, err := os.ReadFile(cf.recipe)
		if err != nil {
			return opt, fmt.Errorf("--recipe: %w", err)
		}
		if opt.Recipe, err = convert.ParseRecipe(b); err != nil {
			return opt, fmt.Errorf("--recipe %s: %w", cf.recipe, err)
		}
	}
	return opt, nil
}

func runConvert(cmd *cobra.Command, cf *convertFlags, mf *modelFlags, ef *engineFlags) error {
	opt, err := cf.options()
	if err != nil {
		return err
	}
	k, _, done, err := ef.build()
	if err != nil {
		return err
	}
	defer done()
	opt.Kernels = k
	var m *checkpoint.Model
	switch {
	case cf.random != "" && mf.model != "":
		return fmt.Errorf("give either --model or --random-weights, not both")
	case cf.random != "":
		m, err = randmodel.Model(k.Pool(), cf.random, "f16", 1)
	case mf.model == "":
		return errNoModel
	default:
		m, err = mf.open(cmd, nil)
	}
	if err != nil {
		return err
	}
	defer m.Close()
	return convertModel(cmd, m, cf.out, opt, cf.noProgress)
}

// convertModel runs the conversion with a progress bar over tensors and
// prints the check results.
func convertModel(cmd *cobra.Command, m *checkpoint.Model, out string, opt convert.Options, quiet bool) error {
	stderr := cmd.ErrOrStderr()
	start := time.Now()
	progress, finish := convertProgress(cmd, quiet)
	opt.Progress = progress
	man, err := convert.Convert(cmd.Context(), m, out, opt)
	finish()
	var ce *convert.CheckError
	if err != nil && !errors.As(err, &ce) {
		return err
	}
	var stored, f16 int64
	for _, c := range man.Components {
		stored += c.StoredBytes
		f16 += c.FloatBytes
	}
	fmt.Fprintf(stderr, "wrote %s in %.1fs: %s (float16: %s, %.2fx smaller)\n", out, time.Since(start).Seconds(),
		byteSize(stored), byteSize(f16), float64(f16)/float64(max(stored, 1)))
	fmt.Fprintln(cmd.OutOrStdout(), out)
	return err
}

// convertProgress returns a conversion progress callback that draws a bar
// over tensors (unless quiet) and prints the check results, and a
// function that ends the bar.
func convertProgress(cmd *cobra.Command, quiet bool) (func(convert.Event), func()) {
	stderr := cmd.ErrOrStderr()
	var bar *progressbar.ProgressBar
	end := func() {
		if bar != nil {
			_ = bar.Finish()
			fmt.Fprintln(stderr)
			bar = nil
		}
	}
	return func(ev convert.Event) {
		switch ev.Kind {
		case convert.TensorDone:
			if quiet {
				return
			}
			if bar == nil {
				bar = progressbar.NewOptions(ev.Total, progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription("palettizing"),
					progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true), progressbar.OptionSetWidth(30),
					progressbar.OptionThrottle(100*time.Millisecond))
			}
			bar.Describe(fmt.Sprintf("%-12s", ev.Component))
			_ = bar.Set(ev.Index)
		case convert.CheckStarted:
			end()
			fmt.Fprintf(stderr, "checking %s...\n", ev.Component)
		case convert.CheckDone:
			fmt.Fprintf(stderr, "  %s: PSNR %.1f dB\n", ev.Component, ev.PSNR)
		}
	}, end
}
