package convert

import (
	"context"
	"encoding/json"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pigment-sd/pigment/checkpoint"
	"github.com/pigment-sd/pigment/component"
	"github.com/pigment-sd/pigment/format/pigmentpkg"
	"github.com/pigment-sd/pigment/format/safetensors"
	"github.com/pigment-sd/pigment/internal/fixtures"
	"github.com/pigment-sd/pigment/internal/testmodel"
	"github.com/pigment-sd/pigment/kernels"
	"github.com/pigment-sd/pigment/kernels/cpu"
	"github.com/pigment-sd/pigment/model/clip"
	"github.com/pigment-sd/pigment/model/unet"
	"github.com/pigment-sd/pigment/model/vae"
	"github.com/pigment-sd/pigment/palette"
	"github.com/pigment-sd/pigment/tensor"
)

// tinyDir is the folder of a tiny fixture model (tiny-sd15, tiny-sd21).
func tinyDir(t *testing.T, name string) string {
	t.Helper()
	return filepath.Dir(fixtures.Path(t, name+"/model_index.json"))
}

// openModel opens a model for the duration of the test.
func openModel(t *testing.T, path string, opt checkpoint.Options) *checkpoint.Model {
	t.Helper()
	m, err := checkpoint.Open(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m
}

// convertOK converts m into a new folder of the test's temporary folder
// and returns the package path and manifest.
func convertOK(t *testing.T, m *checkpoint.Model, opt Options) (string, *pigmentpkg.Manifest) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "pkg")
	man, err := Convert(context.Background(), m, out, opt)
	if err != nil {
		t.Fatal(err)
	}
	return out, man
}

// testKernels returns fast kernels for the duration of the test.
func testKernels(t *testing.T) kernels.Kernels {
	k := cpu.New(0)
	t.Cleanup(k.Close)
	return k
}

// weightFiles are the weight files of a diffusers fixture folder.
var weightFiles = map[string]string{
	string(component.TextEncoder): "model.safetensors",
	string(component.UNet):        "diffusion_pytorch_model.safetensors",
	string(component.VAE):         "diffusion_pytorch_model.safetensors",
}

// rewriteModel copies the diffusers fixture folder src into a new
// temporary folder, passing the float32 values of every tensor through
// edit (which may change them in place), and returns the new folder. The
// fp16 variant files are not copied.
func rewriteModel(t *testing.T, src string, edit func(folder, name string, shape []int, v []float32)) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "model")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if strings.HasSuffix(rel, ".safetensors") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	for folder, file := range weightFiles {
		f := testmodel.OpenFile(t, filepath.Join(src, folder, file))
		var out []safetensors.Tensor
		for _, name := range f.Names() {
			v, shape, err := f.Float32(name)
			if err != nil {
				t.Fatal(err)
			}
			edit(folder, name, shape, v)
			out = append(out, safetensors.F32(name, shape, v))
		}
		if err := safetensors.WriteFile(filepath.Join(dst, folder, file), out, nil); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// refOutputs runs the networks of model path on the inputs stored in the
// fixture refs file and returns each network's output with the reference
// output: text_encoder (last_hidden_state), unet (t = 981), vae_decoder
// (image) and vae_encoder (latent mean). unetRef names the reference
// output of the UNet.
func refOutputs(t *testing.T, path, refs, unetRef string, k kernels.Kernels) map[string][2][]float32 {
	t.Helper()
	m := openModel(t, path, checkpoint.Options{})
	f := testmodel.OpenFile(t, refs)
	ref := func(name string) *tensor.Tensor { return testmodel.Ref(t, f, name) }
	out := map[string][2][]float32{}

	te := m.Components[component.TextEncoder]
	enc, err := clip.New(te.Config, te.Weights, k)
	if err != nil {
		t.Fatal(err)
	}
	ids64, shape, err := f.Int64("text_encoder.input_ids")
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int, len(ids64))
	for i, v := range ids64 {
		ids[i] = int(v)
	}
	h, err := enc.Forward(ids, shape[0])
	if err != nil {
		t.Fatal(err)
	}
	out[string(component.TextEncoder)] = [2][]float32{h.Data, ref("text_encoder.last_hidden_state").Data}

	u := m.Components[component.UNet]
	net, err := unet.New(u.Config, u.Weights, k)
	if err != nil {
		t.Fatal(err)
	}
	ts, _, err := f.Int64("unet.timestep")
	if err != nil {
		t.Fatal(err)
	}
	y, err := net.Forward(ref("unet.sample"), float64(ts[0]), ref("unet.encoder_hidden_states"))
	if err != nil {
		t.Fatal(err)
	}
	out[string(component.UNet)] = [2][]float32{y.Data, ref(unetRef).Data}

	v := m.Components[component.VAE]
	ae, err := vae.New(v.Config, v.Weights, k)
	if err != nil {
		t.Fatal(err)
	}
	img, err := ae.Decode(ref("vae.decode.latents"))
	if err != nil {
		t.Fatal(err)
	}
	out[string(component.VAEDecoder)] = [2][]float32{img.Data, ref("vae.decode.out").Data}
	mean, _, err := ae.Encode(ref("vae.encode.image"))
	if err != nil {
		t.Fatal(err)
	}
	out[string(component.VAEEncoder)] = [2][]float32{mean.Data, ref("vae.encode.mean").Data}
	return out
}

// fixturePSNR is palette.PSNR of each network of the model at path against
// the fixture's float32 reference outputs.
func fixturePSNR(t *testing.T, path, refs, unetRef string, k kernels.Kernels) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for name, o := range refOutputs(t, path, refs, unetRef, k) {
		out[name] = palette.PSNR(o[1], o[0])
	}
	return out
}

// readManifest reads a package's pigment.json as written.
func readManifest(t *testing.T, dir string) *pigmentpkg.Manifest {
	t.Helper()
	m, err := pigmentpkg.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// readJSON decodes a JSON file into a generic value.
func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// siblings lists the entries of dir.
func siblings(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// quantize rounds v to n evenly spaced float16 levels between its minimum
// and maximum, so the tensor has at most n distinct values.
func quantize(v []float32, n int) {
	lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
	for _, x := range v {
		lo, hi = min(lo, x), max(hi, x)
	}
	if hi == lo {
		return
	}
	step := (hi - lo) / float32(n-1)
	for i, x := range v {
		l := float32(math.Round(float64((x - lo) / step)))
		v[i] = tensor.Float16ToFloat32(tensor.Float32ToFloat16(lo + l*step))
	}
}
