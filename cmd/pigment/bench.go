package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/pigment-sd/pigment/component"
	"github.com/pigment-sd/pigment/internal/memstat"
	"github.com/pigment-sd/pigment/internal/randmodel"
	"github.com/pigment-sd/pigment/kernels/profile"
	"github.com/pigment-sd/pigment/model/clip"
	"github.com/pigment-sd/pigment/model/unet"
	"github.com/pigment-sd/pigment/model/vae"
	"github.com/pigment-sd/pigment/nn"
	"github.com/pigment-sd/pigment/palette"
	"github.com/pigment-sd/pigment/parallel"
	"github.com/pigment-sd/pigment/tensor"
	"github.com/pigment-sd/pigment/weights"
)

type benchFlags struct {
	model      string
	size       int
	batch      int
	weights    string
	iterations int
	warmup     int
	seed       uint64
	asJSON     bool
}

// benchReport is what `pigment bench` prints (and writes as JSON).
type benchReport struct {
	Component   string             `json:"component"`
	Model       string             `json:"model"`
	Size        int                `json:"size"`
	Batch       int                `json:"batch"`
	Weights     string             `json:"weights"`
	WeightBytes int64              `json:"weight_bytes"`
	Iterations  int                `json:"iterations"`
	Seconds     []float64          `json:"seconds"`
	Median      float64            `json:"median_seconds"`
	GFLOP       float64            `json:"gflop"`
	GFLOPS      float64            `json:"gflops"`
	Shares      map[string]float64 `json:"time_shares"`
	ExpandShare float64            `json:"weight_expansion_share"`
	PeakRSS     int64              `json:"peak_rss_bytes"`
	PeakRSSRun  int64              `json:"peak_rss_during_run_bytes"`
	ArenaPeak   int64              `json:"activation_peak_bytes"`
	Kernels     string             `json:"kernels"`
	Threads     int                `json:"threads"`
	CPU         string             `json:"cpu"`
	GOOS        string             `json:"goos"`
	GOARCH      string             `json:"goarch"`
	GoVersion   string             `json:"go_version"`
	Env         map[string]string  `json:"env,omitempty"`
	Attention   string             `json:"attention"`
	Date        string             `json:"date"`
}

func newBenchCmd() *cobra.Command {
	var bf benchFlags
	var ef engineFlags
	cmd := &cobra.Command{
		Use:   "bench unet|vae-decoder|vae-encoder|text-encoder",
		Short: "Benchmark a full-size network with random weights built in memory (no download)",
		Long: `Build a full-size network from an official config (SD 1.5 by default) with
deterministic random weights generated in memory, run it, and report seconds
per run, GFLOP/s achieved (model FLOPs / time), the share of time in GEMMs,
convolutions, attention, norms and weight expansion, and peak RSS.

--weights f16 (as checkpoints ship), f32, bf16, or palN for N-bit k-means
palettized weights (pal6 is pigment's default).`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"unet", "vae-decoder", "vae-encoder", "text-encoder"},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBench(cmd, args[0], &bf, &ef)
		},
	}
	f := cmd.Flags()
	ef.register(cmd)
	f.StringVar(&bf.model, "config", "sd15", "official config: "+randmodel.ConfigNames)
	f.IntVar(&bf.size, "size", 512, "image size in pixels (latents are size/8)")
	f.IntVar(&bf.batch, "batch", 2, "batch (2 = one step with classifier-free guidance); the VAE and text encoder use 1")
	f.StringVar(&bf.weights, "weights", "f16", "weight storage: f16, f32, bf16 or palN (N in "+palette.WidthsText+")")
	f.IntVar(&bf.iterations, "iterations", 1, "timed runs")
	f.IntVar(&bf.warmup, "warmup", 0, "untimed runs first")
	f.Uint64Var(&bf.seed, "seed", 1, "seed of the random weights and inputs")
	f.BoolVar(&bf.asJSON, "json", false, "print JSON")
	return cmd
}

func runBench(cmd *cobra.Command, arg string, bf *benchFlags, ef *engineFlags) error {
	stderr := cmd.ErrOrStderr()
	net, err := component.ParseNetwork(arg)
	if err != nil {
		return err
	}
	dir, err := randmodel.Config(bf.model)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	if bf.size <= 0 || bf.size%8 != 0 {
		return fmt.Errorf("--size must be a positive multiple of 8, got %d", bf.size)
	}
	if bf.batch < 1 || bf.iterations < 1 || bf.warmup < 0 {
		return fmt.Errorf("--batch and --iterations must be at least 1")
	}
	st, err := randmodel.ParseStorage(bf.weights)
	if err != nil {
		return err
	}
	k, mode, done, err := ef.build()
	if err != nil {
		return err
	}
	defer done()
	prof := profile.Wrap(k)
	opts := nn.Options{Attention: mode, Chunk: ef.chunk}

	fmt.Fprintf(stderr, "building %s %s with random %s weights...\n", dir, arg, bf.weights)
	t0 := time.Now()
	comp, err := randmodel.Component(k.Pool(), bf.model, net.Folder(), st, bf.seed)
	if err != nil {
		return err
	}
	cfg, src := comp.Config, comp.Weights
	timed := &expandTimer{}
	src = timed.wrap(src)
	var wbytes int64
	for _, n := range src.Names() {
		t, _ := src.Tensor(n)
		if b, ok := t.(weights.ByteSizer); ok {
			wbytes += b.StorageBytes()
		}
	}
	// Random weights live on the Go heap (a real model's are
	// memory-mapped): return what building them left behind, and keep the
	// collector from doubling the heap, so resident memory reflects what a
	// real model needs.
	debug.SetGCPercent(10)
	debug.FreeOSMemory()
	fmt.Fprintf(stderr, "built in %.1fs: %s of weights\n", time.Since(t0).Seconds(), byteSize(wbytes))

	rng := rand.New(rand.NewPCG(bf.seed, 7))
	randn := func(shape ...int) *tensor.Tensor {
		t := tensor.New(shape...)
		for i := range t.Data {
			t.Data[i] = float32(rng.NormFloat64())
		}
		return t
	}
	lat := bf.size / 8
	var run func() error
	var arena *nn.Arena
	batch := bf.batch
	switch net {
	case component.UNet:
		u, err := unet.New(cfg, src, prof, opts)
		if err != nil {
			return err
		}
		arena = u.Arena()
		uc := u.Config()
		sample := randn(batch, uc.InChannels, lat, lat)
		ctx := randn(batch, 77, uc.CrossAttentionDim[0])
		run = func() error { _, err := u.Forward(sample, 981, ctx); return err }
	case component.TextEncoder:
		te, err := clip.New(cfg, src, prof, opts)
		if err != nil {
			return err
		}
		arena = te.Arena()
		batch = 1
		ids := make([]int, 77)
		for i := range ids {
			ids[i] = 49407
		}
		ids[0] = 49406
		run = func() error { _, err := te.Forward(ids, 1); return err }
	default:
		v, err := vae.New(cfg, src, prof, opts)
		if err != nil {
			return err
		}
		arena = v.Arena()
		batch = 1
		if net == component.VAEDecoder {
			z := randn(1, v.Config().LatentChannels, lat, lat)
			run = func() error { _, err := v.Decode(z); return err }
		} else {
			img := randn(1, 3, bf.size, bf.size)
			run = func() error { _, _, err := v.Encode(img); return err }
		}
	}
	for i := 0; i < bf.warmup; i++ {
		if err := run(); err != nil {
			return err
		}
	}
	prof.Reset()
	timed.reset()
	arena.ResetPeak()
	memstat.ResetPeak()
	rssBefore := memstat.RSS()
	rep := benchReport{Component: arg, Model: dir, Size: bf.size, Batch: batch, Weights: bf.weights, WeightBytes: wbytes,
		Iterations: bf.iterations, Kernels: k.Name(), Threads: k.Pool().Size(), CPU: cpuName(), GOOS: runtime.GOOS,
		GOARCH: runtime.GOARCH, GoVersion: runtime.Version(), Attention: mode.String(), Date: time.Now().UTC().Format(time.RFC3339),
		Env: benchEnv()}
	var total time.Duration
	for i := 0; i < bf.iterations; i++ {
		if err := cmd.Context().Err(); err != nil {
			return err
		}
		t := time.Now()
		if err := run(); err != nil {
			return err
		}
		d := time.Since(t)
		total += d
		rep.Seconds = append(rep.Seconds, d.Seconds())
		fmt.Fprintf(stderr, "run %d: %.2fs\n", i+1, d.Seconds())
	}
	sorted := append([]float64(nil), rep.Seconds...)
	sort.Float64s(sorted)
	rep.Median = sorted[len(sorted)/2]
	tot := prof.Total()
	rep.GFLOP = tot.FLOPs / float64(bf.iterations) / 1e9
	rep.GFLOPS = tot.FLOPs / total.Seconds() / 1e9
	rep.Shares = map[string]float64{}
	for _, c := range prof.Categories() {
		rep.Shares[c] = prof.Stats[c].Time.Seconds() / total.Seconds()
	}
	// Expansion runs inside the GEMMs on every worker: its share is worker
	// time over (wall time x threads).
	rep.ExpandShare = timed.seconds() / (total.Seconds() * float64(rep.Threads))
	rep.PeakRSS = memstat.PeakRSS()
	rep.PeakRSSRun = rep.PeakRSS
	if rep.PeakRSS < rssBefore {
		rep.PeakRSSRun = rssBefore
	}
	rep.ArenaPeak = arena.Stats().Peak
	out := cmd.OutOrStdout()
	if bf.asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(out, "%s %s %dx%d batch %d, %s weights (%s), %s kernels, %d threads, %s attention\n",
		dir, arg, bf.size, bf.size, batch, bf.weights, byteSize(wbytes), rep.Kernels, rep.Threads, rep.Attention)
	fmt.Fprintf(out, "  %.2f s per run (median of %d), %.1f GFLOP, %.1f GFLOP/s\n", rep.Median, bf.iterations, rep.GFLOP, rep.GFLOPS)
	var parts []string
	for _, c := range prof.Categories() {
		parts = append(parts, fmt.Sprintf("%s %.1f%%", c, 100*rep.Shares[c]))
	}
	expand := "fused into packing (float weights)"
	if st.Bits > 0 {
		expand = fmt.Sprintf("%.1f%% of worker time (palette look-ups, inside gemm/conv)", 100*rep.ExpandShare)
	}
	fmt.Fprintf(out, "  time: %s; weight expansion %s\n", strings.Join(parts, ", "), expand)
	fmt.Fprintf(out, "  peak RSS %s (activations peak %s)\n", byteSize(rep.PeakRSS), byteSize(rep.ArenaPeak))
	fmt.Fprintf(out, "  cpu: %s, %s/%s, %s\n", rep.CPU, rep.GOOS, rep.GOARCH, rep.GoVersion)
	return nil
}

// expandTimer measures the time spent turning stored weights into float32
// rows (float16 conversion or palette expansion), summed over workers.
type expandTimer struct{ ns atomic.Int64 }

func (e *expandTimer) reset()           { e.ns.Store(0) }
func (e *expandTimer) seconds() float64 { return float64(e.ns.Load()) / 1e9 }

func (e *expandTimer) wrap(src weights.Source) weights.Source {
	out := weights.Map{}
	for _, n := range src.Names() {
		t, _ := src.Tensor(n)
		if t.DType() != weights.Palettized {
			// Float weights are read in place (F32) or converted inside
			// the kernels' packing step (F16, BF16), which a wrapper
			// would bypass: they are not timed separately.
			out[n] = t
			continue
		}
		tt := &timedTensor{Tensor: t, e: e}
		if pr, ok := t.(weights.PanelReader); ok {
			out[n] = &timedPanel{timedTensor: tt, pr: pr}
			continue
		}
		out[n] = tt
	}
	return out
}

// timedPanel keeps the fused panel expansion of palettized weights visible
// to the kernels while timing it.
type timedPanel struct {
	*timedTensor
	pr weights.PanelReader
}

func (t *timedPanel) ReadPanel(dst []float32, lo, rows, k0, kc, stride int) {
	s := time.Now()
	t.pr.ReadPanel(dst, lo, rows, k0, kc, stride)
	t.e.ns.Add(int64(time.Since(s)))
}

type timedTensor struct {
	weights.Tensor
	e *expandTimer
}

func (t *timedTensor) ReadRows(dst []float32, lo, hi int) {
	s := time.Now()
	t.Tensor.ReadRows(dst, lo, hi)
	t.e.ns.Add(int64(time.Since(s)))
}

func (t *timedTensor) StorageBytes() int64 {
	if b, ok := t.Tensor.(weights.ByteSizer); ok {
		return b.StorageBytes()
	}
	return 0
}

func cpuName() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				if i := strings.IndexByte(line, ':'); i >= 0 {
					return fmt.Sprintf("%s (%d CPUs)", strings.TrimSpace(line[i+1:]), runtime.NumCPU())
				}
			}
		}
	}
	return fmt.Sprintf("%s (%d CPUs)", runtime.GOARCH, runtime.NumCPU())
}

func benchEnv() map[string]string {
	env := map[string]string{}
	for _, k := range []string{"GOMAXPROCS", parallel.EnvThreads, "PIGMENT_NOASM", "OPENBLAS_CORETYPE", "GOAMD64", "GOEXPERIMENT"} {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	return env
}
