package vae

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pigment-sd/pigment/format/safetensors"
	"github.com/pigment-sd/pigment/internal/fixtures"
	"github.com/pigment-sd/pigment/internal/testmodel"
	"github.com/pigment-sd/pigment/kernels"
	"github.com/pigment-sd/pigment/kernels/ref"
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

// TestFixtures decodes and encodes with the tiny VAEs (tiny-sd21 at a
// non-square size) and compares outputs and every hooked activation with
// diffusers' float32 results within testmodel.Tolerance = 1e-4·max(1,
// std(ref)), the fixtures' margin (~20x above the float32-vs-float64 noise
// of 5.5e-6..6.1e-6·std). Both attention modes decode (the chunked one
// also encodes); the chunk of 16 splits the 96..256 positions of the
// mid-block attention.
func TestFixtures(t *testing.T) {
	for _, model := range []string{"tiny-sd15", "tiny-sd21"} {
		for _, kc := range testmodel.KernelCases() {
			mode := kc.Mode
			t.Run(model+"/"+kc.Name, func(t *testing.T) {
				cfg := readFile(t, fixtures.Path(t, model+"/vae/config.json"))
				src := testmodel.FileSource(t, fixtures.Path(t, model+"/vae/diffusion_pytorch_model.safetensors"))
				refs := testmodel.OpenFile(t, fixtures.Path(t, model+"/refs.safetensors"))

				acts := map[string]*tensor.Tensor{}
				v, err := New(cfg, src, kc.K, Options{Attention: mode, Chunk: 16,
					Hook: func(name string, x *tensor.Tensor) { acts[name] = x }})
				if err != nil {
					t.Fatal(err)
				}
				img, err := v.Decode(testmodel.Ref(t, refs, "vae.decode.latents"))
				if err != nil {
					t.Fatal(err)
				}
				testmodel.Compare(t, "decode.out", img, testmodel.Ref(t, refs, "vae.decode.out"))

				if mode == kernels.AttentionOriginal {
					checkActs(t, refs, acts, "decoder.")
					checkActs(t, refs, acts, "post_quant_conv")
					return // encoding adds nothing mode-specific
				}
				mean, logvar, err := v.Encode(testmodel.Ref(t, refs, "vae.encode.image"))
				if err != nil {
					t.Fatal(err)
				}
				testmodel.Compare(t, "encode.mean", mean, testmodel.Ref(t, refs, "vae.encode.mean"))
				testmodel.Compare(t, "encode.logvar", logvar, testmodel.Ref(t, refs, "vae.encode.logvar"))
				std := logvar.Clone()
				for i, lv := range std.Data {
					std.Data[i] = float32(math.Exp(0.5 * float64(lv)))
				}
				testmodel.Compare(t, "encode.std", std, testmodel.Ref(t, refs, "vae.encode.std"))

				checkActs(t, refs, acts, "")
			})
		}
	}
}

// checkActs compares the hooked activations whose names start with prefix
// with the references vae.act.*.
func checkActs(t *testing.T, refs *safetensors.File, acts map[string]*tensor.Tensor, prefix string) {
	t.Helper()
	for _, name := range refs.Names() {
		act, ok := strings.CutPrefix(name, "vae.act.")
		if !ok || !strings.HasPrefix(act, prefix) {
			continue
		}
		got, ok := acts[act]
		if !ok {
			t.Errorf("hook did not report %s", act)
			continue
		}
		testmodel.Compare(t, act, got, testmodel.Ref(t, refs, name))
	}
}

// TestRealConfigs parses the real SD VAE configs, checks the parameter
// count against the published AutoencoderKL (83,653,863) and builds each
// from zero-storage weights.
func TestRealConfigs(t *testing.T) {
	for _, model := range []string{"stable-diffusion-v1-5", "stable-diffusion-2-1-base", "stable-diffusion-2-1"} {
		t.Run(model, func(t *testing.T) {
			data := readFile(t, fixtures.Path(t, filepath.Join("configs", model, "vae", "config.json")))
			cfg, err := ParseConfig(data)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.ScalingFactor != 0.18215 || cfg.LatentChannels != 4 {
				t.Errorf("config: %+v", cfg)
			}
			shapes := WeightShapes(cfg)
			if got := testmodel.NumParams(shapes); got != 83653863 {
				t.Errorf("parameters = %d, want 83653863", got)
			}
			if _, err := New(data, testmodel.Zeros(shapes), ref.New()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestConvAttentionWeights builds the tiny VAE with the mid-block attention
// projections stored as 1x1 convolution weights [C, C, 1, 1] (as
// original-layout checkpoints hold them): the result must not change.
func TestConvAttentionWeights(t *testing.T) {
	cfg := readFile(t, fixtures.Path(t, "tiny-sd15/vae/config.json"))
	file := testmodel.FileSource(t, fixtures.Path(t, "tiny-sd15/vae/diffusion_pytorch_model.safetensors"))
	refs := testmodel.OpenFile(t, fixtures.Path(t, "tiny-sd15/refs.safetensors"))
	m := weights.Map{}
	for _, n := range file.Names() {
		w, _ := file.Tensor(n)
		if strings.Contains(n, "attentions.0.to_") && strings.HasSuffix(n, ".weight") {
			s := w.Shape()
			w = weights.NewDense(weights.ReadAll(w), s[0], s[1], 1, 1)
		}
		m[n] = w
	}
	v, err := New(cfg, m, ref.New())
	if err != nil {
		t.Fatal(err)
	}
	img, err := v.Decode(testmodel.Ref(t, refs, "vae.decode.latents"))
	if err != nil {
		t.Fatal(err)
	}
	testmodel.Compare(t, "decode.out", img, testmodel.Ref(t, refs, "vae.decode.out"))
}

// TestOddSizes runs the tiny VAE at odd sizes: the encoder's asymmetric
// padding rounds down, the decoder doubles whatever it gets.
func TestOddSizes(t *testing.T) {
	cfg := readFile(t, fixtures.Path(t, "tiny-sd21/vae/config.json"))
	src := testmodel.FileSource(t, fixtures.Path(t, "tiny-sd21/vae/diffusion_pytorch_model.safetensors"))
	v, err := New(cfg, src, ref.New())
	if err != nil {
		t.Fatal(err)
	}
	img := tensor.New(2, 3, 7, 5)
	mean, logvar, err := v.Encode(img)
	if err != nil {
		t.Fatal(err)
	}
	if !tensor.SameShape(mean.Shape, []int{2, 4, 3, 2}) || !tensor.SameShape(logvar.Shape, mean.Shape) {
		t.Errorf("encode shapes %v %v", mean.Shape, logvar.Shape)
	}
	out, err := v.Decode(tensor.New(1, 4, 3, 5))
	if err != nil {
		t.Fatal(err)
	}
	if !tensor.SameShape(out.Shape, []int{1, 3, 6, 10}) {
		t.Errorf("decode shape %v", out.Shape)
	}
}

func TestErrors(t *testing.T) {
	data := readFile(t, fixtures.Path(t, "tiny-sd15/vae/config.json"))
	cfg, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	file := testmodel.FileSource(t, fixtures.Path(t, "tiny-sd15/vae/diffusion_pytorch_model.safetensors"))
	shapes := WeightShapes(cfg)
	if len(shapes) != len(file.Names()) {
		t.Errorf("WeightShapes has %d tensors, the file %d", len(shapes), len(file.Names()))
	}
	m := weights.Map{}
	for _, n := range file.Names() {
		w, _ := file.Tensor(n)
		if s, ok := shapes[n]; !ok || !tensor.SameShape(s, w.Shape()) {
			t.Errorf("%s: file shape %v, WeightShapes %v", n, w.Shape(), s)
		}
		m[n] = w
	}

	name := "decoder.mid_block.attentions.0.to_q.weight"
	orig := m[name]
	delete(m, name)
	_, err = New(data, m, ref.New())
	var me *weights.MissingError
	if !errors.As(err, &me) || err.Error() != "vae: weight "+name+": missing" {
		t.Errorf("missing: err = %v", err)
	}
	m[name] = weights.NewDense(make([]float32, 64*32), 64, 32)
	_, err = New(data, m, ref.New())
	if err == nil || err.Error() != "vae: weight "+name+": shape [64,32], want [64,64] or [64,64,1,1]" {
		t.Errorf("shape: err = %v", err)
	}
	m[name] = orig

	v, err := New(data, m, testmodel.NullKernels{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []*tensor.Tensor{nil, tensor.New(1, 3, 8, 8), tensor.New(4, 8, 8), tensor.New(0, 4, 8, 8)} {
		if _, err := v.Decode(tc); err == nil {
			t.Errorf("Decode(%v): no error", tc)
		}
	}
	for _, tc := range []*tensor.Tensor{nil, tensor.New(1, 4, 8, 8), {Shape: []int{1, 3, 8, 8}}} {
		if _, _, err := v.Encode(tc); err == nil {
			t.Errorf("Encode(%v): no error", tc)
		}
	}
}

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		json string
		want string
	}{
		{`{}`, ""},
		{`{"mid_block_add_attention": false, "use_quant_conv": false}`, ""},
		{`{"block_out_channels": [128, 256], "down_block_types": ["DownEncoderBlock2D"]}`, "differ in length"},
		{`{"down_block_types": ["DownBlock2D"]}`, "DownBlock2D"},
		{`{"up_block_types": ["AttnUpDecoderBlock2D"]}`, "AttnUpDecoderBlock2D"},
		{`{"block_out_channels": [100]}`, "multiple of norm_num_groups"},
		{`{"layers_per_block": 0}`, "layers_per_block"},
		{`{"act_fn": "relu"}`, "act_fn"},
		{`{"latent_channels": -4}`, "latent_channels"},
		{`{"block_out_channels": "x"}`, "cannot unmarshal"},
	} {
		_, err := ParseConfig([]byte(tc.json))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("ParseConfig(%s): %v", tc.json, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("ParseConfig(%s): err = %v, want %q", tc.json, err, tc.want)
		}
	}
	// Turning off the mid-block attention and the quant convs drops their
	// weights.
	cfg, _ := ParseConfig([]byte(`{"mid_block_add_attention": false, "use_quant_conv": false, "use_post_quant_conv": false}`))
	for n := range WeightShapes(cfg) {
		if strings.Contains(n, "attentions") || strings.Contains(n, "quant_conv") {
			t.Errorf("unexpected weight %s", n)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"block_out_channels": [128, 256, 512, 512], "layers_per_block": 2,
		"down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
		"up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			return
		}
		if len(cfg.BlockOutChannels) <= 4 && cfg.LayersPerBlock <= 4 && WeightShapes(cfg) == nil {
			t.Fatalf("valid config %+v has no weight shapes", cfg)
		}
	})
}

// TestActivationMemory walks the full-size SD VAE at 512x512 (decode from
// 64x64 latents, encode the image) with kernels that do no arithmetic and
// reports the arena's peak of live activations; a second pass must
// allocate no new buffers.
func TestActivationMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("walks a full-size VAE; skipped in -short")
	}
	data := readFile(t, fixtures.Path(t, "configs/stable-diffusion-v1-5/vae/config.json"))
	cfg, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	v, err := New(data, testmodel.Zeros(WeightShapes(cfg)), testmodel.NullKernels{})
	if err != nil {
		t.Fatal(err)
	}
	var allocs []int64
	for pass := 0; pass < 3; pass++ {
		img, err := v.Decode(tensor.New(1, 4, 64, 64))
		if err != nil {
			t.Fatal(err)
		}
		if !tensor.SameShape(img.Shape, []int{1, 3, 512, 512}) {
			t.Fatalf("image shape %v", img.Shape)
		}
		if pass == 0 {
			t.Logf("decode 64x64 -> 512x512: peak live activations %.1f MB", float64(v.Arena().Stats().Peak)/1e6)
			v.Arena().ResetPeak()
		}
		if _, _, err := v.Encode(img); err != nil {
			t.Fatal(err)
		}
		if pass == 0 {
			t.Logf("encode 512x512: peak live activations %.1f MB", float64(v.Arena().Stats().Peak)/1e6)
		}
		allocs = append(allocs, v.Arena().Stats().Allocs)
	}
	st := v.Arena().Stats()
	t.Logf("arena holds %.1f MB in %d buffers", float64(st.Held)/1e6, st.Allocs)
	if allocs[2] != allocs[1] || st.InUse != 0 {
		t.Errorf("third pass: %d new buffers, %d bytes in use", allocs[2]-allocs[1], st.InUse)
	}
}
