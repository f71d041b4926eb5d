package main

import (
	"bytes"
	"fmt"
	"image"
	_ "image/jpeg" // init images may be JPEG
	_ "image/png"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/pigment-sd/pigment/catalog"
	"github.com/pigment-sd/pigment/checkpoint"
	"github.com/pigment-sd/pigment/format/pngmeta"
	"github.com/pigment-sd/pigment/internal/atomicfile"
	"github.com/pigment-sd/pigment/internal/randmodel"
	"github.com/pigment-sd/pigment/pipeline"
	"github.com/pigment-sd/pigment/rng"
	"github.com/pigment-sd/pigment/scheduler"
)

type generateFlags struct {
	prompt, negative string
	steps            int
	guidance         float64
	seed             string
	sched            string
	width, height    int
	count            int
	initImage        string
	strength         float64
	out, outDir      string
	noProgress       bool
	random           string
	randomWeights    string
}

func newGenerateCmd() *cobra.Command {
	var g generateFlags
	var mf modelFlags
	var ef engineFlags
	cmd := &cobra.Command{
		Use:   "generate --prompt TEXT [--model M] [-o out.png]",
		Short: "Generate images from a prompt (text to image), or from a prompt and an image (image to image)",
		Long: `Generate images with the same numbers as diffusers for the same model, prompt,
seed, scheduler and settings. Without --model, the default model
(` + catalog.DefaultRepo + `) is pulled from the Hugging Face Hub and converted once to a
6-bit pigment package kept beside the cache.

Schedulers: ` + strings.Join(scheduler.Names(), ", ") + `; without --scheduler the
model's own scheduler config is used. --guidance at or below 1 turns
classifier-free guidance off. The PNG files carry the generation parameters
in a "parameters" text chunk as AUTOMATIC1111's web UI writes them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runGenerate(cmd, &g, &mf, &ef) },
	}
	f := cmd.Flags()
	mf.register(cmd, false)
	ef.register(cmd)
	f.StringVarP(&g.prompt, "prompt", "p", "", "what to draw")
	f.StringVarP(&g.negative, "negative-prompt", "n", "", "what to steer away from (the unconditional branch of guidance)")
	f.IntVar(&g.steps, "steps", 25, "inference steps")
	f.Float64Var(&g.guidance, "guidance", 7.5, "classifier-free guidance scale (<= 1 turns guidance off)")
	f.StringVar(&g.seed, "seed", "", "random seed, a 64-bit integer (PyTorch uses its low 32 bits; default: random, printed)")
	f.StringVar(&g.sched, "scheduler", "", "scheduler name (default: the model's own)")
	f.IntVar(&g.width, "width", 0, "image width, a multiple of 8 (default: the model's native size, or the init image's)")
	f.IntVar(&g.height, "height", 0, "image height, a multiple of 8 (default: the model's native size, or the init image's)")
	f.IntVar(&g.count, "image-count", 1, "number of images, generated as one batch")
	f.StringVar(&g.initImage, "init-image", "", "PNG or JPEG to start from (image to image)")
	f.Float64Var(&g.strength, "strength", 0.75, "image to image: how much of the schedule to run (0..1; 1 ignores the image)")
	f.StringVarP(&g.out, "output", "o", "", "output PNG (default: pigment-SEED.png; with several images -1, -2, ... are appended)")
	f.StringVar(&g.outDir, "output-dir", "", "write numbered PNGs into this folder instead")
	f.BoolVar(&g.noProgress, "no-progress", false, "do not draw a progress bar")
	f.StringVar(&g.random, "random-weights", "", "instead of a model, build a full-size one of this official config (sd15, sd21-base, sd21) with random weights in memory, for benchmarks (the images are noise)")
	f.StringVar(&g.randomWeights, "random-weights-storage", "f16", "storage of --random-weights: f16, f32, bf16 or palN")
	_ = cmd.MarkFlagRequired("prompt")
	return cmd
}

// parseSeed reads --seed: empty is a random 32-bit seed.
func parseSeed(s string) (uint64, error) {
	if s == "" {
		return rng.RandomSeed()
	}
	seed, err := rng.ParseSeed(s)
	if err != nil {
		return 0, fmt.Errorf("--seed: %w", err)
	}
	return seed, nil
}

func runGenerate(cmd *cobra.Command, g *generateFlags, mf *modelFlags, ef *engineFlags) error {
	stderr := cmd.ErrOrStderr()
	seed, err := parseSeed(g.seed)
	if err != nil {
		return err
	}
	if !scheduler.IsDefault(g.sched) {
		if _, _, err := scheduler.ByName(g.sched); err != nil {
			return err
		}
	}
	if g.out != "" && g.outDir != "" {
		return fmt.Errorf("give either -o or --output-dir, not both")
	}
	if g.out != "" && !strings.EqualFold(filepath.Ext(g.out), ".png") {
		return fmt.Errorf("-o %s: the output is a PNG file (.png)", g.out)
	}
	var initImg image.Image
	if g.initImage != "" {
		f, err := os.Open(g.initImage)
		if err != nil {
			return fmt.Errorf("init image: %w", err)
		}
		initImg, _, err = image.Decode(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("init image %s: %w", g.initImage, err)
		}
	}
	k, mode, done, err := ef.build()
	if err != nil {
		return err
	}
	defer done()

	modelPath := mf.model
	var ck *checkpoint.Model
	switch {
	case g.random != "":
		if mf.model != "" {
			return fmt.Errorf("give either --model or --random-weights, not both")
		}
		fmt.Fprintf(stderr, "building a random-weight %s model (%s)...\n", g.random, g.randomWeights)
		if ck, err = randmodel.Model(k.Pool(), g.random, g.randomWeights, 1); err != nil {
			return err
		}
		// Random weights live on the Go heap (a real model's are
		// memory-mapped): keep the collector from doubling the heap so
		// resident memory reflects what a real model needs.
		debug.SetGCPercent(10)
		modelPath = ck.Path
	default:
		if modelPath == "" {
			if modelPath, err = defaultModel(cmd, k); err != nil {
				return err
			}
			mf.model = modelPath
		}
		if ck, err = mf.open(cmd, nil); err != nil {
			return err
		}
	}
	defer ck.Close()
	for _, n := range ck.Notes {
		fmt.Fprintln(stderr, "note:", n)
	}
	m, err := pipeline.Load(ck, pipeline.LoadOptions{Kernels: k, Attention: mode, Chunk: ef.chunk})
	if err != nil {
		return err
	}
	p := pipeline.Params{Prompt: g.prompt, NegativePrompt: g.negative, Steps: g.steps, Guidance: g.guidance, Seed: seed,
		Scheduler: g.sched, Width: g.width, Height: g.height, ImageCount: g.count, Strength: g.strength}
	if initImg != nil {
		resized, err := m.SetInitImage(&p, initImg)
		if err != nil {
			return err
		}
		if resized {
			b := initImg.Bounds()
			fmt.Fprintf(stderr, "note: init image %dx%d resized to %dx%d\n", b.Dx(), b.Dy(), p.Width, p.Height)
		}
	}
	m.SetDefaultSize(&p)
	p.OnPhase = func(pipeline.Phase) { debug.FreeOSMemory() }
	if err := m.Validate(&p); err != nil {
		return err
	}
	if g.outDir != "" {
		if err := os.MkdirAll(g.outDir, 0o755); err != nil {
			return err
		}
	}
	fmt.Fprintf(stderr, "seed %d, %dx%d, %d steps, guidance %g, %d image(s), model %s\n", seed, p.Width, p.Height, p.Steps, p.Guidance, p.ImageCount, modelPath)

	var bar *progressbar.ProgressBar
	start := time.Now()
	if !g.noProgress {
		p.Progress = func(done, total int) {
			if bar == nil {
				bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription("denoising"),
					progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("step"),
					progressbar.OptionSetPredictTime(true), progressbar.OptionSetWidth(30), progressbar.OptionThrottle(100*time.Millisecond))
			}
			_ = bar.Set(done)
		}
	}
	res, err := m.Generate(cmd.Context(), p)
	if bar != nil {
		_ = bar.Finish()
		fmt.Fprintln(stderr)
	}
	if err != nil {
		return err
	}
	if res.PromptTruncated {
		fmt.Fprintln(stderr, "note: the prompt is longer than 75 CLIP tokens; the rest was ignored")
	}
	paths, err := outputPaths(g, seed, len(res.Images))
	if err != nil {
		return err
	}
	for i, img := range res.Images {
		params := pipeline.Infotext(&p, res, modelPath, i)
		var buf bytes.Buffer
		if err := pngmeta.Encode(&buf, img, []pngmeta.Text{{Key: "parameters", Value: params}}); err != nil {
			return err
		}
		if err := atomicfile.Write(paths[i], 0o644, func(w io.Writer) error { _, err := w.Write(buf.Bytes()); return err }); err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), paths[i])
	}
	fmt.Fprintf(stderr, "done in %.1fs\n", time.Since(start).Seconds())
	return nil
}

var numbered = regexp.MustCompile(`^(\d{5})-`)

// outputPaths names the output files: -o as given (with -1, -2, ... for
// several images), or in --output-dir NNNNN-SEED.png numbered on from the
// highest number already there, in image order.
func outputPaths(g *generateFlags, seed uint64, n int) ([]string, error) {
	out := make([]string, n)
	if g.outDir != "" {
		entries, err := os.ReadDir(g.outDir)
		if err != nil {
			return nil, err
		}
		next := 0
		for _, e := range entries {
			if m := numbered.FindStringSubmatch(e.Name()); m != nil {
				if v, _ := strconv.Atoi(m[1]); v >= next {
					next = v + 1
				}
			}
		}
		for i := range out {
			out[i] = filepath.Join(g.outDir, fmt.Sprintf("%05d-%d.png", next+i, seed))
		}
		return out, nil
	}
	base := g.out
	if base == "" {
		base = fmt.Sprintf("pigment-%d.png", seed)
	}
	if n == 1 {
		out[0] = base
		return out, nil
	}
	stem := strings.TrimSuffix(base, filepath.Ext(base))
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d.png", stem, i+1)
	}
	return out, nil
}
