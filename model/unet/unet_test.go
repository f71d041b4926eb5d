package unet

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pigment-sd/pigment/format/safetensors"
	"github.com/pigment-sd/pigment/internal/fixtures"
	"github.com/pigment-sd/pigment/internal/randweights"
	"github.com/pigment-sd/pigment/internal/testmodel"
	"github.com/pigment-sd/pigment/kernels"
	"github.com/pigment-sd/pigment/kernels/ref"
	"github.com/pigment-sd/pigment/nn"
	"github.com/pigment-sd/pigment/tensor"
	"github.com/pigment-sd/pigment/weights"
)

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func scalar(t *testing.T, f *safetensors.File, name string) float64 {
	t.Helper()
	v, _, err := f.Int64(name)
	if err != nil {
		t.Fatal(err)
	}
	return float64(v[0])
}

// TestFixtures runs the tiny UNets (SD 1.5 style: conv projections, 8
// heads; SD 2.1 style: linear projections, per-block head counts,
// non-square latents) at t=981 and t=1 and compares the outputs and every
// hooked activation with diffusers' float32 results, within
// testmodel.Tolerance = 1e-4·max(1, std(ref)): the fixtures' margin,
// ~30x above float32-vs-float64 noise (2.4e-6..3.7e-6·std), far below a
// real bug (t=981 vs t=1 moves the output by 0.08). Both attention modes
// run the t=981 call, with a chunk of 16 so chunking splits the 64..256
// queries.
func TestFixtures(t *testing.T) {
	for _, model := range []string{"tiny-sd15", "tiny-sd21"} {
		for _, kc := range testmodel.KernelCases() {
			mode := kc.Mode
			t.Run(model+"/"+kc.Name, func(t *testing.T) {
				cfg := readFile(t, fixtures.Path(t, model+"/unet/config.json"))
				src := testmodel.FileSource(t, fixtures.Path(t, model+"/unet/diffusion_pytorch_model.safetensors"))
				refs := testmodel.OpenFile(t, fixtures.Path(t, model+"/refs.safetensors"))

				acts := map[string]*tensor.Tensor{}
				u, err := New(cfg, src, kc.K, Options{Attention: mode, Chunk: 16,
					Hook: func(name string, x *tensor.Tensor) { acts[name] = x }})
				if err != nil {
					t.Fatal(err)
				}
				sample := testmodel.Ref(t, refs, "unet.sample")
				context := testmodel.Ref(t, refs, "unet.encoder_hidden_states")
				out, err := u.Forward(sample, scalar(t, refs, "unet.timestep"), context)
				if err != nil {
					t.Fatal(err)
				}
				testmodel.Compare(t, "out", out, testmodel.Ref(t, refs, "unet.out"))
				for _, name := range refs.Names() {
					act, ok := strings.CutPrefix(name, "unet.act.")
					if !ok {
						continue
					}
					got, ok := acts[act]
					if !ok {
						t.Errorf("hook did not report %s", act)
						continue
					}
					testmodel.Compare(t, act, got, testmodel.Ref(t, refs, name))
				}

				if mode == kernels.AttentionOriginal {
					return // the second call adds nothing mode-specific
				}
				out, err = u.Forward(sample, scalar(t, refs, "unet.t1.timestep"), context)
				if err != nil {
					t.Fatal(err)
				}
				testmodel.Compare(t, "t1.out", out, testmodel.Ref(t, refs, "unet.t1.out"))
			})
		}
	}
}

// TestFP16Weights loads the fp16 variant of the tiny SD 1.5 UNet: weights
// are widened to float32 as they are read, so the result must match
// diffusers' run on the same upcast weights within the same margin.
func TestFP16Weights(t *testing.T) {
	cfg := readFile(t, fixtures.Path(t, "tiny-sd15/unet/config.json"))
	src := testmodel.FileSource(t, fixtures.Path(t, "tiny-sd15/unet/diffusion_pytorch_model.fp16.safetensors"))
	if w, _ := src.Tensor("conv_in.weight"); w.DType() != tensor.F16 {
		t.Fatalf("fp16 file holds %s weights", w.DType())
	}
	refs := testmodel.OpenFile(t, fixtures.Path(t, "tiny-sd15/refs.safetensors"))
	u, err := New(cfg, src, ref.New())
	if err != nil {
		t.Fatal(err)
	}
	out, err := u.Forward(testmodel.Ref(t, refs, "unet.sample"), scalar(t, refs, "unet.timestep"),
		testmodel.Ref(t, refs, "unet.encoder_hidden_states"))
	if err != nil {
		t.Fatal(err)
	}
	testmodel.Compare(t, "fp16_weights.out", out, testmodel.Ref(t, refs, "unet.fp16_weights.out"))
}

func realConfig(t testing.TB, model string) []byte {
	return readFile(t, fixtures.Path(t, filepath.Join("configs", model, "unet", "config.json")))
}

// TestRealConfigs parses the real SD UNet configs, checks the parameter
// count of the weights the network reads against the published models and
// builds each from zero-storage weights.
func TestRealConfigs(t *testing.T) {
	for _, tc := range []struct {
		model   string
		params  int64
		heads   []int
		linear  bool
		context int
	}{
		{"stable-diffusion-v1-5", 859520964, []int{8, 8, 8, 8}, false, 768},
		{"stable-diffusion-2-1-base", 865910724, []int{5, 10, 20, 20}, true, 1024},
		{"stable-diffusion-2-1", 865910724, []int{5, 10, 20, 20}, true, 1024},
	} {
		t.Run(tc.model, func(t *testing.T) {
			data := realConfig(t, tc.model)
			cfg, err := ParseConfig(data)
			if err != nil {
				t.Fatal(err)
			}
			if !equal(cfg.Heads, tc.heads) || cfg.UseLinearProjection != tc.linear || cfg.CrossAttentionDim[0] != tc.context {
				t.Errorf("config: heads %v linear %v context %d", cfg.Heads, cfg.UseLinearProjection, cfg.CrossAttentionDim[0])
			}
			shapes := WeightShapes(cfg)
			if got := randweights.NumParams(shapes); got != tc.params {
				t.Errorf("parameters = %d, want %d", got, tc.params)
			}
			// Head width 40/80/160 (SD 1.5) or 64 (SD 2.x) shows in the
			// attention projections only through the block widths; the
			// FF width is 4x the block width.
			if s := shapes["down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj.weight"]; !equal(s, []int{2560, 320}) {
				t.Errorf("GEGLU projection shape %v", s)
			}
			if _, err := New(data, randweights.Zeros(shapes), ref.New()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func equal(a, b []int) bool { return tensor.SameShape(a, b) }

// TestActivationMemory walks the full-size SD 1.5 UNet at 512x512 (64x64
// latents, batch 2) with kernels that do no arithmetic and zero-storage
// weights, and reports the arena's peak of live activations. From the third
// step on no new buffers may be allocated.
func TestActivationMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("walks a full-size UNet (moves ~1 GB of activations); skipped in -short")
	}
	data := realConfig(t, "stable-diffusion-v1-5")
	cfg, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	u, err := New(data, randweights.Zeros(WeightShapes(cfg)), testmodel.NullKernels{})
	if err != nil {
		t.Fatal(err)
	}
	sample := tensor.New(2, 4, 64, 64)
	context := tensor.New(2, 77, 768)
	var st []nn.ArenaStats
	for step := 0; step < 3; step++ {
		if _, err := u.Forward(sample, 999-float64(step), context); err != nil {
			t.Fatal(err)
		}
		st = append(st, u.Arena().Stats())
	}
	t.Logf("SD 1.5 UNet, batch 2, 64x64 latents: peak live activations %.1f MB; arena holds %.1f MB in %d buffers after step 1, %.1f MB in %d after step 3",
		float64(st[2].Peak)/1e6, float64(st[0].Held)/1e6, st[0].Allocs, float64(st[2].Held)/1e6, st[2].Allocs)
	if st[2].Allocs != st[1].Allocs || st[2].InUse != 0 {
		t.Errorf("third step: %d new buffers, %d bytes still in use", st[2].Allocs-st[1].Allocs, st[2].InUse)
	}
	if st[2].Held > 2*st[2].Peak {
		t.Errorf("arena holds %d bytes for a peak of %d", st[2].Held, st[2].Peak)
	}
	if st[2].Peak > 500e6 {
		t.Errorf("peak activation memory %d bytes, want under 500 MB", st[2].Peak)
	}
}

// TestOddLatentSize runs the tiny UNet on latents whose size is not
// divisible by its downsampling (2): the upsampler then resizes to the
// skip connection's size, as diffusers does.
func TestOddLatentSize(t *testing.T) {
	cfg := readFile(t, fixtures.Path(t, "tiny-sd15/unet/config.json"))
	src := testmodel.FileSource(t, fixtures.Path(t, "tiny-sd15/unet/diffusion_pytorch_model.safetensors"))
	u, err := New(cfg, src, ref.New())
	if err != nil {
		t.Fatal(err)
	}
	sample := tensor.New(1, 4, 5, 7)
	for i := range sample.Data {
		sample.Data[i] = float32(math.Sin(float64(i)))
	}
	out, err := u.Forward(sample, 500.5, tensor.New(1, 77, 32))
	if err != nil {
		t.Fatal(err)
	}
	if !equal(out.Shape, []int{1, 4, 5, 7}) {
		t.Fatalf("out shape %v", out.Shape)
	}
	for _, v := range out.Data {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatal("non-finite output")
		}
	}
}

// TestTimestepEmbedding checks the sinusoidal embedding against values
// computed by hand: [cos(t·f_i), sin(t·f_i)] with f_i = 10000^(-i/half).
func TestTimestepEmbedding(t *testing.T) {
	for _, tc := range []struct {
		t     float64
		flip  bool
		shift float64
	}{{981, true, 0}, {1, true, 0}, {0.5, false, 1}, {999.75, true, 0}} {
		dst := make([]float32, 9)
		timestepEmbedding(dst, tc.t, tc.flip, tc.shift)
		half := 4
		for i := 0; i < half; i++ {
			arg := tc.t * math.Exp(-math.Log(10000)*float64(i)/(float64(half)-tc.shift))
			s, c := math.Sin(arg), math.Cos(arg)
			if !tc.flip {
				s, c = c, s
			}
			if math.Abs(float64(dst[i])-c) > 2e-4 || math.Abs(float64(dst[half+i])-s) > 2e-4 {
				t.Errorf("t=%g i=%d: got %g,%g want %g,%g", tc.t, i, dst[i], dst[half+i], c, s)
			}
		}
		if dst[8] != 0 {
			t.Errorf("odd width: last value %g, want 0", dst[8])
		}
	}
}

func tinyShapes(t *testing.T) (Config, []byte, weights.Map) {
	data := readFile(t, fixtures.Path(t, "tiny-sd15/unet/config.json"))
	cfg, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	m := weights.Map{}
	src := randweights.Zeros(WeightShapes(cfg))
	for _, n := range src.Names() {
		m[n], _ = src.Tensor(n)
	}
	return cfg, data, m
}

func TestWeightErrors(t *testing.T) {
	_, data, m := tinyShapes(t)
	// WeightShapes lists exactly the tensors of the diffusers file.
	file := testmodel.FileSource(t, fixtures.Path(t, "tiny-sd15/unet/diffusion_pytorch_model.safetensors"))
	if got, want := len(m), len(file.Names()); got != want {
		t.Errorf("WeightShapes has %d tensors, the file %d", got, want)
	}
	for _, n := range file.Names() {
		w, _ := file.Tensor(n)
		if s, ok := m[n]; !ok || !equal(s.Shape(), w.Shape()) {
			t.Errorf("%s: file shape %v, WeightShapes %v", n, w.Shape(), s)
		}
	}

	name := "down_blocks.0.resnets.0.conv1.weight"
	delete(m, name)
	_, err := New(data, m, ref.New())
	var me *weights.MissingError
	if !errors.As(err, &me) || err.Error() != "unet: weight "+name+": missing" {
		t.Errorf("missing: err = %v", err)
	}
	m[name] = weights.NewDense(make([]float32, 32*4*3*3), 32, 4, 3, 3)
	_, err = New(data, m, ref.New())
	if err == nil || err.Error() != "unet: weight "+name+": shape [32,4,3,3], want [32,32,3,3]" {
		t.Errorf("shape: err = %v", err)
	}
}

func TestInputErrors(t *testing.T) {
	_, data, m := tinyShapes(t)
	u, err := New(data, m, testmodel.NullKernels{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := tensor.New(2, 77, 32)
	for _, tc := range []struct {
		name    string
		sample  *tensor.Tensor
		t       float64
		context *tensor.Tensor
	}{
		{"nil sample", nil, 1, ctx},
		{"3-D sample", tensor.New(4, 8, 8), 1, ctx},
		{"channels", tensor.New(2, 3, 8, 8), 1, ctx},
		{"nil context", tensor.New(2, 4, 8, 8), 1, nil},
		{"context batch", tensor.New(1, 4, 8, 8), 1, ctx},
		{"context width", tensor.New(2, 4, 8, 8), 1, tensor.New(2, 77, 16)},
		{"NaN timestep", tensor.New(2, 4, 8, 8), math.NaN(), ctx},
		{"short data", &tensor.Tensor{Shape: []int{2, 4, 8, 8}, Data: make([]float32, 10)}, 1, ctx},
	} {
		if _, err := u.Forward(tc.sample, tc.t, tc.context); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		json string
		want string // "" for success, else a substring of the error
	}{
		{`{}`, ""},
		{`{"attention_head_dim": [5, 10, 20, 20], "use_linear_projection": true}`, ""},
		{`{"num_attention_heads": 4}`, ""},
		{`{"layers_per_block": [1, 2, 2, 1], "transformer_layers_per_block": [1, 2, 1, 1]}`, ""},
		{`{"mid_block_type": null}`, ""},
		{`{"attention_head_dim": [5, 10]}`, "2 entries for 4 blocks"},
		{`{"attention_head_dim": 7}`, "do not split into 7 heads"},
		{`{"down_block_types": ["CrossAttnDownBlock2D", "SimpleCrossAttnDownBlock2D", "DownBlock2D", "DownBlock2D"]}`, "SimpleCrossAttnDownBlock2D"},
		{`{"up_block_types": ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"]}`, "AttnUpBlock2D"},
		{`{"mid_block_type": "UNetMidBlock2DSimpleCrossAttn"}`, "mid_block_type"},
		{`{"block_out_channels": [320, 640]}`, "differ in length"},
		{`{"addition_embed_type": "text_time"}`, "addition_embed_type"},
		{`{"class_embed_type": "timestep"}`, "class_embed_type"},
		{`{"only_cross_attention": true}`, "only_cross_attention"},
		{`{"resnet_time_scale_shift": "scale_shift"}`, "resnet_time_scale_shift"},
		{`{"act_fn": "gelu"}`, "act_fn"},
		{`{"norm_num_groups": null}`, "norm_num_groups"},
		{`{"block_out_channels": [320, 640, 1280, 1000]}`, "multiple of norm_num_groups"},
		{`{"conv_in_kernel": 2}`, "conv_in_kernel"},
		{`{"layers_per_block": "two"}`, "layers_per_block"},
		{`{"in_channels": 0}`, "in_channels"},
		{`not json`, "invalid"},
	} {
		_, err := ParseConfig([]byte(tc.json))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("ParseConfig(%s): %v", tc.json, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("ParseConfig(%s): err = %v, want %q", tc.json, err, tc.want)
		}
	}
	cfg, _ := ParseConfig([]byte(`{}`))
	if !equal(cfg.BlockOutChannels, []int{320, 640, 1280, 1280}) || cfg.MidBlockType != "UNetMidBlock2DCrossAttn" ||
		!equal(cfg.Heads, []int{8, 8, 8, 8}) || cfg.CrossAttentionDim[0] != 1280 || cfg.NormEps != 1e-5 {
		t.Errorf("defaults: %+v", cfg)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"block_out_channels": [32, 64], "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
		"up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "attention_head_dim": [2, 4], "layers_per_block": 1}`))
	f.Add([]byte(`{"mid_block_type": null, "num_attention_heads": [1, 2, 4, 8]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			return
		}
		// Keep the fuzzer to small networks: listing shapes is cheap but
		// not free for thousands of transformer blocks.
		layers := 0
		for i, n := range cfg.LayersPerBlock {
			layers += (2*n + 1) * cfg.TransformerLayersPerBlock[i]
		}
		if layers <= 64 && WeightShapes(cfg) == nil {
			t.Fatalf("valid config %+v has no weight shapes", cfg)
		}
	})
}

// TestPerSampleTimesteps checks that one timestep per sample gives each
// sample the output it gets when the whole batch runs at its timestep.
func TestPerSampleTimesteps(t *testing.T) {
	cfg := readFile(t, fixtures.Path(t, "tiny-sd15/unet/config.json"))
	src := testmodel.FileSource(t, fixtures.Path(t, "tiny-sd15/unet/diffusion_pytorch_model.safetensors"))
	refs := testmodel.OpenFile(t, fixtures.Path(t, "tiny-sd15/refs.safetensors"))
	u, err := New(cfg, src, testmodel.KernelCases()[1].K)
	if err != nil {
		t.Fatal(err)
	}
	sample := testmodel.Ref(t, refs, "unet.sample")
	context := testmodel.Ref(t, refs, "unet.encoder_hidden_states")
	if sample.Shape[0] < 2 {
		t.Fatalf("sample batch %d, want at least 2", sample.Shape[0])
	}
	ts := []float64{981, 1.5}
	for sample.Shape[0] > len(ts) {
		ts = append(ts, float64(100*len(ts)))
	}
	got, err := u.ForwardCond(sample, Cond{Timesteps: ts, Context: context})
	if err != nil {
		t.Fatal(err)
	}
	per := got.Len() / sample.Shape[0]
	for b, tb := range ts {
		want, err := u.Forward(sample, tb, context)
		if err != nil {
			t.Fatal(err)
		}
		if d := testmodel.MaxAbsDiff(got.Data[b*per:(b+1)*per], want.Data[b*per:(b+1)*per]); d != 0 {
			t.Errorf("sample %d at timestep %g: differs by %g from the batch at that timestep", b, tb, d)
		}
	}
	if _, err := u.ForwardCond(sample, Cond{Timesteps: ts[:1], Context: context}); err == nil {
		t.Error("one timestep for a batch of two was accepted")
	}
}
