package convert

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pigment-sd/pigment/checkpoint"
	"github.com/pigment-sd/pigment/component"
	"github.com/pigment-sd/pigment/format/pigmentpkg"
	"github.com/pigment-sd/pigment/internal/fixtures"
	"github.com/pigment-sd/pigment/palette"
	"github.com/pigment-sd/pigment/tensor"
	"github.com/pigment-sd/pigment/weights"
)

// TestUniqueLossless rewrites the tiny SD 1.5 model so that every Linear
// and Conv weight has at most 16 distinct (float16) values, converts it in
// unique mode at 4 bits, and requires every network's output to be
// bit-identical to the float model's: the tables hold the exact values and
// the kernels read the same float32 rows either way.
func TestUniqueLossless(t *testing.T) {
	dir := rewriteModel(t, tinyDir(t, "tiny-sd15"), func(folder, name string, shape []int, v []float32) {
		if len(shape) >= 2 && strings.HasSuffix(name, ".weight") && !strings.Contains(name, "embeddings") {
			quantize(v, 16)
		}
	})
	m := openModel(t, dir, checkpoint.Options{})
	k := testKernels(t)
	out, man := convertOK(t, m, Options{Bits: 4, Mode: palette.Unique, MinSize: 1, Check: true, Kernels: k})
	for folder, c := range man.Components {
		for name, r := range c.Tensors {
			if r.Bits != 0 && r.SQNR != LosslessSQNR {
				t.Errorf("%s/%s: SQNR %v, want %v (lossless)", folder, name, r.SQNR, float64(LosslessSQNR))
			}
		}
	}
	// The check's PSNR of identical outputs is 20·log10((peak+1e-5)/1e-10),
	// about 200 dB.
	for name, r := range man.Check.Results {
		if r.PSNR < 190 || !r.Pass {
			t.Errorf("check %s: %.2f dB (pass %v), want identical outputs (> 190 dB)", name, r.PSNR, r.Pass)
		}
	}
	pkg := openModel(t, out, checkpoint.Options{})
	for _, p := range component.Networks() {
		f := p.Folder()
		in, err := checkInputs(p, m.Components[f], m)
		if err != nil {
			t.Fatal(err)
		}
		want, err := runNetwork(p, m.Components[f], k, in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := runNetwork(p, pkg.Components[f], k, in)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: output differs from the float model (max |diff| %g)", p, maxAbsDiff(got, want))
		}
	}
}

func maxAbsDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = max(d, float64(abs32(a[i]-b[i])))
	}
	return d
}

func abs32(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}

// TestUniqueTooManyValues: unique mode on weights with more distinct values
// than the table holds is an error naming the folder and the tensor.
func TestUniqueTooManyValues(t *testing.T) {
	m := openModel(t, tinyDir(t, "tiny-sd15"), checkpoint.Options{})
	out := filepath.Join(t.TempDir(), "pkg")
	_, err := Convert(t.Context(), m, out, Options{Bits: 4, Mode: palette.Unique, Components: []component.Name{component.UNet}})
	if err == nil || !strings.Contains(err.Error(), "unet: palettize ") || !strings.Contains(err.Error(), "distinct values") {
		t.Fatalf("err = %v, want a unique-mode error naming unet and the tensor", err)
	}
	if ls := siblings(t, filepath.Dir(out)); len(ls) != 0 {
		t.Errorf("left behind %v", ls)
	}
}

// TestGroupedChannels converts at 4 bits with one table per 8 output
// channels and compares with one table per tensor: the package stores
// ceil(rows/8) tables per tensor and the weights come out closer to the
// source.
func TestGroupedChannels(t *testing.T) {
	m := openModel(t, tinyDir(t, "tiny-sd15"), checkpoint.Options{})
	k := testKernels(t)
	_, perTensor := convertOK(t, m, Options{Bits: 4, Components: []component.Name{component.UNet}, Check: true, CheckThresholdDB: 1, Kernels: k})
	out, grouped := convertOK(t, m, Options{Bits: 4, GroupSize: 8, Components: []component.Name{component.UNet}, Check: true, CheckThresholdDB: 1, Kernels: k})
	if r := grouped.Recipe; r.Granularity != "per-grouped-channel" || r.GroupSize != 8 {
		t.Errorf("recipe = %+v", r)
	}
	w, err := pigmentpkg.OpenWeights(filepath.Join(out, "unet", pigmentpkg.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	names := w.PalettizedNames()
	if len(names) == 0 {
		t.Fatal("nothing palettized")
	}
	var better, worse int
	for _, name := range names {
		info, _ := w.Palette(name)
		tt, _ := w.Tensor(name)
		p := tt.(*palette.Tensor)
		if info.GroupSize != 8 || p.Groups() != (info.Shape[0]+7)/8 {
			t.Errorf("%s: group size %d, %d tables, want 8 and ceil(%d/8)", name, info.GroupSize, p.Groups(), info.Shape[0])
		}
		g, pt := grouped.Components["unet"].Tensors[name], perTensor.Components["unet"].Tensors[name]
		if g.GroupSize != 8 || pt.GroupSize != 0 {
			t.Errorf("%s: recorded group sizes %d and %d", name, g.GroupSize, pt.GroupSize)
		}
		// Each group's optimal table is at least as good for that group
		// as the tensor's; only the float16 rounding of the table can
		// cost a little.
		if g.SQNR < pt.SQNR-0.05 {
			t.Errorf("%s: grouped SQNR %.3f dB below per-tensor %.3f dB", name, g.SQNR, pt.SQNR)
		}
		if g.SQNR > pt.SQNR {
			better++
		} else {
			worse++
		}
	}
	t.Logf("grouped better on %d tensors, not better on %d; unet check %.2f dB grouped, %.2f per tensor",
		better, worse, grouped.Check.Results[string(component.UNet)].PSNR, perTensor.Check.Results[string(component.UNet)].PSNR)
	if better < len(names)*9/10 {
		t.Errorf("grouped tables improved only %d of %d tensors", better, len(names))
	}
}

// TestComponentsSubset converts only the VAE decoder: the encoder half of
// the VAE and the other networks keep their float weights and are not
// checked.
func TestComponentsSubset(t *testing.T) {
	m := openModel(t, tinyDir(t, "tiny-sd15"), checkpoint.Options{})
	_, man := convertOK(t, m, Options{Bits: 4, Mode: palette.Uniform, Components: []component.Name{component.VAEDecoder}, Check: true, CheckThresholdDB: 1, Kernels: testKernels(t)})
	for folder, c := range man.Components {
		for name, r := range c.Tensors {
			want := folder == "vae" && (strings.HasPrefix(name, "decoder.") || strings.HasPrefix(name, "post_quant_conv.")) &&
				strings.HasSuffix(name, ".weight") && len(r.Shape) >= 2 && tensor.NumElements(r.Shape) >= DefaultMinSize
			if (r.Bits == 4) != want {
				t.Errorf("%s/%s: %d bits, want palettized %v", folder, name, r.Bits, want)
			}
		}
	}
	if len(man.Check.Results) != 1 || man.Check.Results[string(component.VAEDecoder)] == nil {
		t.Errorf("checked %v, want only vae_decoder", man.Check.Results)
	}
}

// TestFP16Source converts the fp16 variant of the tiny UNet: tensors are
// palettized from their float16 bits, float tensors stay F16, and the
// output stays close to the fixture's fp16-weights reference.
func TestFP16Source(t *testing.T) {
	m := openModel(t, tinyDir(t, "tiny-sd15"), checkpoint.Options{Variant: "fp16", Components: []component.Name{component.UNet}})
	out, man := convertOK(t, m, Options{Bits: 6, Check: true, Kernels: testKernels(t)})
	for name, r := range man.Components["unet"].Tensors {
		if r.Bits == 0 && r.DType != "F16" {
			t.Errorf("%s: float tensor stored as %s, want F16", name, r.DType)
		}
	}
	w, err := pigmentpkg.OpenWeights(filepath.Join(out, "unet", pigmentpkg.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// Palettizing the float16 bits directly gives what palettizing their
	// float32 values gives.
	src := m.Components["unet"].Weights
	for _, name := range w.PalettizedNames()[:5] {
		st, _ := src.Tensor(name)
		pt, _ := w.Tensor(name)
		want, err := palette.Palettize(name, weights.ReadAll(st), st.Shape(), palette.Options{Bits: 6})
		if err != nil {
			t.Fatal(err)
		}
		got := pt.(*palette.Tensor)
		if !slices.Equal(got.LUT(), want.LUT()) || !bytes.Equal(got.Indices(), want.Indices()) {
			t.Errorf("%s: palettized from float16 bits differs from palettized from float32", name)
		}
	}
	// Measured: 38.3 dB at 6 bits with the default MinSize (2048); the
	// floor sits 1.5 dB below.
	r := man.Check.Results[string(component.UNet)]
	t.Logf("fp16 unet at 6 bits: check %.2f dB", r.PSNR)
	if r.PSNR < 36.8 {
		t.Errorf("check unet: %.2f dB, want >= 36.8", r.PSNR)
	}
}

// TestSingleFile converts the single-file tiny SD 1.5 checkpoint: the
// weights come out byte-identical to the diffusers folder's conversion, a
// minimal model_index.json is written, and there is no tokenizer folder.
func TestSingleFile(t *testing.T) {
	file := fixtures.Path(t, "tiny-sd15.safetensors")
	single := openModel(t, file, checkpoint.Options{})
	folder := openModel(t, tinyDir(t, "tiny-sd15"), checkpoint.Options{})
	opt := Options{Bits: 4, Mode: palette.Uniform}
	a, am := convertOK(t, single, opt)
	b, _ := convertOK(t, folder, opt)
	for _, c := range []string{"unet", "text_encoder", "vae"} {
		x, err := os.ReadFile(filepath.Join(a, c, pigmentpkg.WeightsFile))
		if err != nil {
			t.Fatal(err)
		}
		y, err := os.ReadFile(filepath.Join(b, c, pigmentpkg.WeightsFile))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s: weights differ between the single-file and the folder conversions", c)
		}
	}
	if am.Source.Kind != checkpoint.KindSingleFile || am.Source.Path != file {
		t.Errorf("source = %+v", am.Source)
	}
	idx := readJSON(t, filepath.Join(a, "model_index.json"))
	want := map[string]any{
		"_class_name":  "StableDiffusionPipeline",
		"text_encoder": []any{"transformers", "CLIPTextModel"},
		"unet":         []any{"diffusers", "UNet2DConditionModel"},
		"vae":          []any{"diffusers", "AutoencoderKL"},
		"scheduler":    []any{"diffusers", "PNDMScheduler"},
	}
	if !equalJSON(idx, want) {
		t.Errorf("model_index.json = %v, want %v", idx, want)
	}
	if _, err := os.Stat(filepath.Join(a, "tokenizer")); !os.IsNotExist(err) {
		t.Errorf("tokenizer folder written for a source without one (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(a, "scheduler", "scheduler_config.json")); err != nil {
		t.Error(err)
	}
	// The package opens and falls back to the bundled tokenizer.
	pkg := openModel(t, a, checkpoint.Options{})
	if pkg.TokenizerDir != "" || pkg.Family != checkpoint.FamilySD1 {
		t.Errorf("reopened: tokenizer %q, family %s", pkg.TokenizerDir, pkg.Family)
	}
}

// TestTinySD21 converts the SD 2.x-style tiny model (OpenCLIP-style text
// encoder, linear projections, v-prediction) at 8 bits, uniform tables.
func TestTinySD21(t *testing.T) {
	name := "tiny-sd21"
	m := openModel(t, tinyDir(t, name), checkpoint.Options{})
	k := testKernels(t)
	out, man := convertOK(t, m, Options{Bits: 8, Mode: palette.Uniform, MinSize: 1, Check: true, Kernels: k})
	// Measured on the fixture's inputs against its float32 outputs: text
	// encoder 68.4, unet 47.8, vae decoder 48.0, vae encoder 49.7 dB;
	// floors 1.5 dB below. Convert's own check is logged (68.4, 48.7,
	// 50.2, 51.1 dB).
	got := fixturePSNR(t, out, fixturesRefs(t, name), "unet.out", k)
	floors := map[component.Name]float64{component.TextEncoder: 66.9, component.UNet: 46.3, component.VAEDecoder: 46.5, component.VAEEncoder: 48.2}
	for p, floor := range floors {
		t.Logf("%s: package vs fixture %.2f dB, check %.2f dB", p, got[string(p)], man.Check.Results[string(p)].PSNR)
		if got[string(p)] < floor {
			t.Errorf("%s: %.2f dB, want >= %.1f", p, got[string(p)], floor)
		}
	}
	if man.Source.Family != checkpoint.FamilySD2 {
		t.Errorf("family %s, want sd2", man.Source.Family)
	}
}

func equalJSON(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok {
			return false
		}
		va, oka := v.([]any)
		vb, okb := w.([]any)
		if oka && okb {
			if !slices.Equal(va, vb) {
				return false
			}
		} else if v != w {
			return false
		}
	}
	return true
}
