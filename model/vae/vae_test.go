package vae

import (
	"context"
	"errors"
	"fmt"
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
			if got := randweights.NumParams(shapes); got != 83653863 {
				t.Errorf("parameters = %d, want 83653863", got)
			}
			if _, err := New(data, randweights.Zeros(shapes), ref.New()); err != nil {
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

// TestActivationMemory walks the full-size SD 1.5 VAE at 512x512 (decode
// from 64x64 latents, encode the image) with kernels that do no arithmetic
// and checks the arena's peak of live activations, each from an empty
// arena. The floor is two 128-channel full-resolution tensors (256 MiB, a
// resnet's input and conv1 output); the bound allows 40 MiB for the bands
// being processed and partly filled pieces (measured: 277 MiB decoding,
// 265 MiB encoding; the layer-by-layer passes needed 640 and 384 MiB). The
// arena may hold some more than the peak (buffers sized for lower
// resolutions), and repeating the calls must allocate nothing new.
func TestActivationMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("walks a full-size VAE; skipped in -short")
	}
	data := readFile(t, fixtures.Path(t, "configs/stable-diffusion-v1-5/vae/config.json"))
	cfg, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	v, err := New(data, randweights.Zeros(WeightShapes(cfg)), testmodel.NullKernels{})
	if err != nil {
		t.Fatal(err)
	}
	const mib = 1 << 20
	const bound = (256 + 40) * mib
	img, err := v.Decode(tensor.New(1, 4, 64, 64))
	if err != nil {
		t.Fatal(err)
	}
	if !tensor.SameShape(img.Shape, []int{1, 3, 512, 512}) {
		t.Fatalf("image shape %v", img.Shape)
	}
	dec := v.Arena().Stats()
	v.Arena().Release()
	v.Arena().ResetPeak()
	if _, _, err := v.Encode(img); err != nil {
		t.Fatal(err)
	}
	enc := v.Arena().Stats()
	t.Logf("decode 64x64 -> 512x512: peak %.1f MiB of live activations, arena holds %.1f MiB", float64(dec.Peak)/mib, float64(dec.Held)/mib)
	t.Logf("encode 512x512: peak %.1f MiB, arena holds %.1f MiB", float64(enc.Peak)/mib, float64(enc.Held)/mib)
	if dec.Peak > bound || enc.Peak > bound {
		t.Errorf("peak activations: decode %d, encode %d bytes, want at most %d", dec.Peak, enc.Peak, bound)
	}
	if dec.Held > dec.Peak*3/2 || enc.Held > enc.Peak*3/2 {
		t.Errorf("arena holds %d bytes after decoding, %d after encoding, for peaks of %d and %d", dec.Held, enc.Held, dec.Peak, enc.Peak)
	}

	// Steady state: a decode and an encode after both have run once
	// reuse the arena's buffers.
	if _, err := v.Decode(tensor.New(1, 4, 64, 64)); err != nil {
		t.Fatal(err)
	}
	allocs := v.Arena().Stats().Allocs
	if _, _, err := v.Encode(img); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Decode(tensor.New(1, 4, 64, 64)); err != nil {
		t.Fatal(err)
	}
	if st := v.Arena().Stats(); st.Allocs != allocs || st.InUse != 0 {
		t.Errorf("repeated passes: %d new buffers, %d bytes in use", st.Allocs-allocs, st.InUse)
	}
}

// TestBatch decodes and encodes a batch of two (one image at a time) and
// checks each result and the hooked activations, gathered per name for
// the whole batch, against single-image calls.
func TestBatch(t *testing.T) {
	cfg := readFile(t, fixtures.Path(t, "tiny-sd21/vae/config.json"))
	src := testmodel.FileSource(t, fixtures.Path(t, "tiny-sd21/vae/diffusion_pytorch_model.safetensors"))
	refs := testmodel.OpenFile(t, fixtures.Path(t, "tiny-sd21/refs.safetensors"))
	one := testmodel.Ref(t, refs, "vae.decode.latents")
	two := tensor.New(2, one.Shape[1], one.Shape[2], one.Shape[3])
	copy(two.Data, one.Data)
	for i := range one.Data {
		two.Data[len(one.Data)+i] = -one.Data[i]
	}
	k := testmodel.KernelCases()[1].K // deterministic: each image takes the same path alone as in a batch
	run := func(x *tensor.Tensor, encode bool) (*tensor.Tensor, map[string]*tensor.Tensor) {
		acts := map[string]*tensor.Tensor{}
		v, err := New(cfg, src, k, Options{Hook: func(name string, t *tensor.Tensor) { acts[name] = t }})
		if err != nil {
			t.Fatal(err)
		}
		if encode {
			mean, _, err := v.Encode(x)
			if err != nil {
				t.Fatal(err)
			}
			return mean, acts
		}
		y, err := v.Decode(x)
		if err != nil {
			t.Fatal(err)
		}
		return y, acts
	}
	images, acts := run(two, false)
	for n, x := range []*tensor.Tensor{one, neg(one)} {
		want, wantActs := run(x, false)
		checkSample(t, "decode", images, n, want)
		for name, a := range wantActs {
			checkSample(t, name, acts[name], n, a)
		}
	}
	mean, acts := run(images, true)
	for n := range 2 {
		x := tensor.New(1, images.Shape[1], images.Shape[2], images.Shape[3])
		copy(x.Data, images.Data[n*len(x.Data):])
		want, wantActs := run(x, true)
		checkSample(t, "encode", mean, n, want)
		for name, a := range wantActs {
			checkSample(t, name, acts[name], n, a)
		}
	}
}

func neg(x *tensor.Tensor) *tensor.Tensor {
	y := x.Clone()
	for i := range y.Data {
		y.Data[i] = -y.Data[i]
	}
	return y
}

// checkSample checks that sample n of the batch got equals want, one
// sample.
func checkSample(t *testing.T, name string, got *tensor.Tensor, n int, want *tensor.Tensor) {
	t.Helper()
	if got == nil || len(got.Shape) != 4 || got.Shape[0] != 2 || !tensor.SameShape(got.Shape[1:], want.Shape[1:]) {
		t.Fatalf("%s: batch shape %v, sample shape %v", name, got.Shape, want.Shape)
	}
	per := len(want.Data)
	if d := testmodel.MaxAbsDiff(got.Data[n*per:(n+1)*per], want.Data); d != 0 {
		t.Errorf("%s: sample %d differs from its single-image pass by %g", name, n, d)
	}
}

// layersDecode and layersEncode are the straightforward forward passes
// through the nn layers, a whole batch and whole tensors at a time: the
// reference the band-by-band passes must reproduce.
func layersDecode(v *VAE, latents *tensor.Tensor) *tensor.Tensor {
	c := v.ctx
	x := c.New(latents.Shape...)
	copy(x.Data, latents.Data)
	if v.postQuantConv != nil {
		y := v.postQuantConv.Forward(c, x)
		c.Free(x)
		x = y
	}
	d := &v.dec
	y := d.convIn.Forward(c, x)
	c.Free(x)
	x = layersMid(c, d, y)
	for _, b := range d.blocks {
		for _, r := range b.resnets {
			y := r.Forward(c, x, nil)
			c.Free(x)
			x = y
		}
		if b.upsample != nil {
			y := b.upsample.Forward(c, x, 2*x.Shape[2], 2*x.Shape[3])
			c.Free(x)
			x = y
		}
	}
	return c.Detach(layersOut(c, d, x))
}

func layersEncode(v *VAE, image *tensor.Tensor) *tensor.Tensor {
	c := v.ctx
	e := &v.enc
	x := e.convIn.Forward(c, image)
	for _, b := range e.blocks {
		for _, r := range b.resnets {
			y := r.Forward(c, x, nil)
			c.Free(x)
			x = y
		}
		if b.downsample != nil {
			y := b.downsample.Forward(c, x)
			c.Free(x)
			x = y
		}
	}
	x = layersOut(c, e, layersMid(c, e, x))
	if v.quantConv != nil {
		y := v.quantConv.Forward(c, x)
		c.Free(x)
		x = y
	}
	return c.Detach(x)
}

func layersMid(c *nn.Ctx, cd *coder, x *tensor.Tensor) *tensor.Tensor {
	y := cd.mid[0].Forward(c, x, nil)
	c.Free(x)
	if cd.attn != nil {
		z := cd.attn.Forward(c, y)
		c.Free(y)
		y = z
	}
	z := cd.mid[1].Forward(c, y, nil)
	c.Free(y)
	return z
}

func layersOut(c *nn.Ctx, cd *coder, x *tensor.Tensor) *tensor.Tensor {
	n := cd.normOut.Forward(c, x, true)
	c.Free(x)
	y := cd.convOut.Forward(c, n)
	c.Free(n)
	return y
}

// TestBandsMatchLayers decodes and encodes the tiny VAEs band by band,
// with bands of 1, 2, 3 and 5 rows (so every pipeline runs over many bands,
// with partial last bands, on both models' heights) and with the default
// bands (one per tensor at these sizes), and compares the results with the
// whole-tensor layer passes. Both use the same kernels on the same values
// in the same order, except that the GroupNorm statistics are summed band
// by band here: the float64 sums can differ in their last bits, which
// would move a normalized value by one float32 rounding step in rare
// cases. The results are in fact bit-identical with both kernel sets
// (kernels/ref, slow, on fewer band sizes); the test allows
// 2e-6·max(1, std), 50x below the fixtures' margin.
func TestBandsMatchLayers(t *testing.T) {
	const tol = 2e-6
	kcs := testmodel.KernelCases()
	for _, tc := range []struct {
		model string
		kc    testmodel.KernelCase
		rows  []int
	}{
		{"tiny-sd15", kcs[0], []int{2}},
		{"tiny-sd21", kcs[0], []int{1, 3}},
		{"tiny-sd15", kcs[1], []int{1, 2, 3, 5, 0}},
		{"tiny-sd21", kcs[1], []int{1, 2, 3, 5, 0}},
	} {
		cfg := readFile(t, fixtures.Path(t, tc.model+"/vae/config.json"))
		src := testmodel.FileSource(t, fixtures.Path(t, tc.model+"/vae/diffusion_pytorch_model.safetensors"))
		refs := testmodel.OpenFile(t, fixtures.Path(t, tc.model+"/refs.safetensors"))
		latents := testmodel.Ref(t, refs, "vae.decode.latents")
		image := testmodel.Ref(t, refs, "vae.encode.image")
		v, err := New(cfg, src, tc.kc.K)
		if err != nil {
			t.Fatal(err)
		}
		wantImg := layersDecode(v, latents)
		wantMoments := layersEncode(v, image)
		for _, rows := range tc.rows {
			t.Run(fmt.Sprintf("%s/%s/rows%d", tc.model, tc.kc.Name, rows), func(t *testing.T) {
				v.tune.bandRows = rows
				img, err := v.Decode(latents)
				if err != nil {
					t.Fatal(err)
				}
				compareTight(t, "decode", img, wantImg, tol)
				mean, logvar, err := v.Encode(image)
				if err != nil {
					t.Fatal(err)
				}
				moments := tensor.New(wantMoments.Shape...)
				copy(moments.Data, mean.Data)
				copy(moments.Data[len(mean.Data):], logvar.Data)
				// The layer pass leaves the log-variance unclamped; the
				// tiny models' values lie well inside [-30, 20].
				compareTight(t, "encode", moments, wantMoments, tol)
				if st := v.Arena().Stats(); st.InUse != 0 {
					t.Errorf("%d bytes of activations still in use", st.InUse)
				}
			})
		}
	}
}

func compareTight(t *testing.T, name string, got, want *tensor.Tensor, tol float64) {
	t.Helper()
	if !tensor.SameShape(got.Shape, want.Shape) {
		t.Fatalf("%s: shape %v, want %v", name, got.Shape, want.Shape)
	}
	scale := math.Max(1, testmodel.Std(want.Data))
	d := testmodel.MaxAbsDiff(got.Data, want.Data)
	t.Logf("%s: max diff %.3g·max(1, std)", name, d/scale)
	if d > tol*scale {
		t.Errorf("%s: max diff %.3g > %.3g·max(1, std %.3g)", name, d, tol, scale)
	}
}

// cancelAfter is a kernel set that cancels a context in the middle of its
// n-th convolution and counts the convolutions that run after that.
type cancelAfter struct {
	kernels.Kernels
	n, calls, after int
	cancel          func()
}

func (k *cancelAfter) Conv2D(dst, src []float32, p kernels.Conv2D, w weights.Tensor, bias []float32) {
	k.calls++
	if k.calls > k.n && k.n > 0 {
		k.after++
	}
	k.Kernels.Conv2D(dst, src, p, w, bias)
	if k.calls == k.n {
		k.cancel()
	}
}

// TestDecodeCancel cancels decoding and encoding part way, at several
// points, and checks that the call returns the context's error after at
// most one more band of work (a band of a resnet runs two convolutions:
// the shortcut's and conv1), that the arena holds no buffers of the
// abandoned pass, and that the next call gives the full result.
func TestDecodeCancel(t *testing.T) {
	cfg := readFile(t, fixtures.Path(t, "tiny-sd15/vae/config.json"))
	src := testmodel.FileSource(t, fixtures.Path(t, "tiny-sd15/vae/diffusion_pytorch_model.safetensors"))
	refs := testmodel.OpenFile(t, fixtures.Path(t, "tiny-sd15/refs.safetensors"))
	latents := testmodel.Ref(t, refs, "vae.decode.latents")
	image := testmodel.Ref(t, refs, "vae.encode.image")
	k := &cancelAfter{Kernels: testmodel.KernelCases()[1].K}
	v, err := New(cfg, src, k)
	if err != nil {
		t.Fatal(err)
	}
	v.tune.bandRows = 2 // many bands on the tiny model
	full, err := v.Decode(latents)
	if err != nil {
		t.Fatal(err)
	}
	totals := map[string]int{"decode": k.calls}
	k.calls = 0
	if _, _, err := v.Encode(image); err != nil {
		t.Fatal(err)
	}
	totals["encode"] = k.calls
	for _, op := range []string{"decode", "encode"} {
		total := totals[op]
		for _, n := range []int{1, total / 3, total - 1} {
			ctx, cancel := context.WithCancel(context.Background())
			k.n, k.calls, k.after, k.cancel = n, 0, 0, cancel
			if op == "decode" {
				_, err = v.DecodeContext(ctx, latents)
			} else {
				_, _, err = v.EncodeContext(ctx, image)
			}
			cancel()
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("%s cancelled in convolution %d: error %v, want context.Canceled", op, n, err)
			}
			if k.after > 2 {
				t.Errorf("%s cancelled in convolution %d: %d convolutions ran after it, want at most one band (2)", op, n, k.after)
			}
			if st := v.Arena().Stats(); st.InUse != 0 {
				t.Errorf("%s cancelled: arena has %d bytes in use", op, st.InUse)
			}
		}
	}
	k.n = 0
	again, err := v.Decode(latents)
	if err != nil {
		t.Fatal(err)
	}
	testmodel.Compare(t, "decode after cancel", again, full)
}
