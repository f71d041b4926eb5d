package pigmentpkg

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pigment-sd/pigment/format/safetensors"
	"github.com/pigment-sd/pigment/palette"
	"github.com/pigment-sd/pigment/tensor"
	"github.com/pigment-sd/pigment/weights"
)

func randomValues(n int, seed uint32) []float32 {
	out := make([]float32, n)
	x := seed
	for i := range out {
		x = x*1664525 + 1013904223
		out[i] = float32(int32(x>>8)-(1<<23)) / (1 << 23) * 0.05
	}
	return out
}

func TestWeightsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	w1 := randomValues(64*72, 1)
	p, err := palette.Palettize("w1", w1, []int{64, 8, 3, 3}, palette.Options{Bits: 6})
	if err != nil {
		t.Fatal(err)
	}
	pg, err := palette.Palettize("w2", randomValues(48*20, 2), []int{48, 20}, palette.Options{Bits: 3, GroupSize: 16, TableF32: true})
	if err != nil {
		t.Fatal(err)
	}
	bias := weights.NewDense([]float32{1, 2, 3}, 3)
	half := make([]byte, 8)
	for i, v := range []float32{0.5, -1, 2, 4} {
		h := tensor.Float32ToFloat16(v)
		half[2*i], half[2*i+1] = byte(h), byte(h>>8)
	}
	raw, _ := weights.NewRaw(half, tensor.F16, []int{2, 2})
	path := filepath.Join(dir, WeightsFile)
	err = WriteWeights(path, []Entry{{Name: "conv.weight", Palettized: p}, {Name: "lin.weight", Palettized: pg}, {Name: "conv.bias", Float: bias}, {Name: "norm.weight", Float: raw}})
	if err != nil {
		t.Fatal(err)
	}
	w, err := OpenWeights(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if got := strings.Join(w.Names(), " "); got != "conv.bias conv.weight lin.weight norm.weight" {
		t.Fatalf("names %s", got)
	}
	for name, want := range map[string]*palette.Tensor{"conv.weight": p, "lin.weight": pg} {
		got, _ := w.Tensor(name)
		if got.DType() != weights.Palettized {
			t.Fatalf("%s dtype %s", name, got.DType())
		}
		a, b := weights.ReadAll(got), weights.ReadAll(want)
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("%s[%d] = %v, want %v", name, i, a[i], b[i])
			}
		}
	}
	nt, _ := w.Tensor("norm.weight")
	if nt.DType() != tensor.F16 || weights.ReadAll(nt)[3] != 4 {
		t.Fatalf("float16 tensor not kept as is: %s %v", nt.DType(), weights.ReadAll(nt))
	}
	if info, ok := w.Palette("lin.weight"); !ok || info.Bits != 3 || info.GroupSize != 16 {
		t.Fatalf("palette info %+v", info)
	}
}

func TestWeightsRejects(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, ts []safetensors.Tensor, meta map[string]string) string {
		p := filepath.Join(dir, name)
		if err := safetensors.WriteFile(p, ts, meta); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := map[string]string{metaFormat: FormatName, metaVersion: "1"}
	lut := safetensors.F32("w.lut", []int{1, 2}, []float32{0, 1})
	idx := safetensors.Tensor{Name: "w.indices", DType: tensor.U8, Shape: []int{1}, Data: []byte{0x5}}
	cases := []struct {
		name, want string
		ts         []safetensors.Tensor
		meta       map[string]string
	}{
		{"noformat", "not a pigment weights file", nil, map[string]string{}},
		{"version", "version \"2\" is not supported", nil, map[string]string{metaFormat: FormatName, metaVersion: "2"}},
		{"orphan", "has no palette metadata", []safetensors.Tensor{lut, idx}, good},
		{"missing", "missing w.indices", []safetensors.Tensor{lut}, merge(good, metaPalette+"w", `{"bits":1,"shape":[2,2],"axis":0,"group_size":0}`)},
		{"shortidx", "index bytes", []safetensors.Tensor{lut, idx}, merge(good, metaPalette+"w", `{"bits":1,"shape":[4,4],"axis":0,"group_size":0}`)},
		{"axis", "axis 1", []safetensors.Tensor{lut, idx}, merge(good, metaPalette+"w", `{"bits":1,"shape":[2,2],"axis":1,"group_size":0}`)},
		{"badjson", "bad palette metadata", []safetensors.Tensor{lut, idx}, merge(good, metaPalette+"w", `{`)},
	}
	for _, c := range cases {
		_, err := OpenWeights(write(c.name, c.ts, c.meta))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to mention %q", c.name, err, c.want)
		}
	}
}

func merge(m map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for a, b := range m {
		out[a] = b
	}
	return out
}

func TestManifest(t *testing.T) {
	dir := t.TempDir()
	m := &Manifest{Source: Source{Path: "x", Kind: "diffusers", Family: "sd1"}, Recipe: Recipe{Bits: 6, Mode: "kmeans"},
		Components: map[string]*Component{"unet": {Tensors: map[string]*TensorRecord{"a": {Shape: []int{2}, Bits: 6}}}}}
	if err := WriteManifest(dir, m); err != nil {
		t.Fatal(err)
	}
	got, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Recipe.Bits != 6 || got.Components["unet"].Tensors["a"].Bits != 6 || !IsPackage(dir) {
		t.Fatalf("got %+v", got)
	}
	for _, bad := range []string{`{`, `{"format":"x","version":1}`, `{"format":"pigment","version":9,"components":{"unet":{}}}`,
		`{"format":"pigment","version":1}`, `{"format":"pigment","version":1,"components":{"../x":{}}}`} {
		if _, err := ParseManifest([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
	if _, err := ReadManifest(filepath.Join(dir, "nope")); err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("missing manifest: %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func FuzzParseWeights(f *testing.F) {
	dir := f.TempDir()
	p, _ := palette.Palettize("w", randomValues(40, 3), []int{4, 10}, palette.Options{Bits: 2})
	path := filepath.Join(dir, "w.safetensors")
	if err := WriteWeights(path, []Entry{{Name: "w", Palettized: p}, {Name: "b", Float: weights.NewDense([]float32{1}, 1)}}); err != nil {
		f.Fatal(err)
	}
	seed, _ := os.ReadFile(path)
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := ParseWeights(b)
		if err != nil {
			return
		}
		for _, n := range w.Names() {
			tt, _ := w.Tensor(n)
			weights.ReadAll(tt) // must stay in bounds
		}
	})
}
