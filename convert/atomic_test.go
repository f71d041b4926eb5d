package convert

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pigment-sd/pigment/checkpoint"
	"github.com/pigment-sd/pigment/component"
	"github.com/pigment-sd/pigment/palette"
)

// fast converts quickly: uniform 4-bit tables.
var fast = Options{Bits: 4, Mode: palette.Uniform}

// TestCancel cancels the context at several points: before the start,
// after a few tensors, and during the check. Convert returns the
// context's error and leaves neither the package nor its temporary folder.
func TestCancel(t *testing.T) {
	m := openModel(t, tinyDir(t, "tiny-sd15"), checkpoint.Options{})
	k := testKernels(t)
	tests := []struct {
		name   string
		cancel func(Event) bool // cancel when it returns true
	}{
		{"before", nil},
		{"after 5 tensors", func(e Event) bool { return e.Kind == TensorDone && e.Index == 5 }},
		{"last tensor", func(e Event) bool { return e.Kind == TensorDone && e.Index == e.Total }},
		{"during check", func(e Event) bool { return e.Kind == CheckStarted && e.Component == component.UNet }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			opt := fast
			opt.Check, opt.Kernels = true, k
			if tc.cancel == nil {
				cancel()
			} else {
				opt.Progress = func(e Event) {
					if tc.cancel(e) {
						cancel()
					}
				}
			}
			parent := t.TempDir()
			out := filepath.Join(parent, "pkg")
			man, err := Convert(ctx, m, out, opt)
			if !errors.Is(err, context.Canceled) || man != nil {
				t.Fatalf("Convert = %v, %v; want context.Canceled", man, err)
			}
			if ls := siblings(t, parent); len(ls) != 0 {
				t.Errorf("left behind %v", ls)
			}
		})
	}
}

// TestExistingOutput: an existing output is an error without Force; with
// Force a package (or an empty folder) is replaced and nothing is left
// beside it; other folders and files are never replaced.
func TestExistingOutput(t *testing.T) {
	m := openModel(t, tinyDir(t, "tiny-sd15"), checkpoint.Options{})
	out, _ := convertOK(t, m, fast)
	parent := filepath.Dir(out)
	before, err := os.ReadFile(filepath.Join(out, "pigment.json"))
	if err != nil {
		t.Fatal(err)
	}

	_, err = Convert(t.Context(), m, out, Options{Bits: 2, Mode: palette.Uniform})
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("err = %v, want already exists", err)
	}
	after, _ := os.ReadFile(filepath.Join(out, "pigment.json"))
	if string(after) != string(before) {
		t.Error("the existing package changed")
	}

	man, err := Convert(t.Context(), m, out, Options{Bits: 2, Mode: palette.Uniform, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if man.Recipe.Bits != 2 || readManifest(t, out).Recipe.Bits != 2 {
		t.Errorf("the package was not replaced")
	}
	if ls := siblings(t, parent); !slices.Equal(ls, []string{"pkg"}) {
		t.Errorf("output folder holds %v, want only pkg", ls)
	}

	empty := filepath.Join(parent, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Convert(t.Context(), m, empty, Options{Bits: 2, Mode: palette.Uniform, Force: true}); err != nil {
		t.Errorf("replacing an empty folder: %v", err)
	}

	other := filepath.Join(parent, "other")
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}
	keep := filepath.Join(other, "keep.txt")
	if err := os.WriteFile(keep, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(parent, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{other, file} {
		_, err := Convert(t.Context(), m, p, Options{Bits: 2, Mode: palette.Uniform, Force: true})
		if err == nil || !strings.Contains(err.Error(), "not replacing it") {
			t.Errorf("%s: err = %v, want a refusal", p, err)
		}
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("a non-package folder was touched: %v", err)
	}
	if ls := siblings(t, parent); !slices.Equal(ls, []string{"empty", "file", "other", "pkg"}) {
		t.Errorf("output folder holds %v", ls)
	}
}

// TestNaNWeight: a NaN (or Inf) in a weight that is palettized is an error
// naming its folder and tensor, and nothing is written.
func TestNaNWeight(t *testing.T) {
	tests := []struct {
		folder, tensor string
		value          float32
	}{
		{"unet", "down_blocks.0.resnets.1.conv2.weight", float32(math.NaN())},
		{"text_encoder", "text_model.encoder.layers.1.mlp.fc1.weight", float32(math.Inf(-1))},
		{"vae", "decoder.up_blocks.0.resnets.0.conv1.weight", float32(math.Inf(1))},
	}
	for _, tc := range tests {
		t.Run(tc.folder, func(t *testing.T) {
			dir := rewriteModel(t, tinyDir(t, "tiny-sd15"), func(folder, name string, shape []int, v []float32) {
				if folder == tc.folder && name == tc.tensor {
					v[len(v)/2] = tc.value
				}
			})
			m := openModel(t, dir, checkpoint.Options{})
			out := filepath.Join(t.TempDir(), "pkg")
			_, err := Convert(t.Context(), m, out, Options{Bits: 4, Mode: palette.Uniform, MinSize: 1})
			if err == nil || !strings.Contains(err.Error(), tc.folder+": ") || !strings.Contains(err.Error(), tc.tensor) {
				t.Fatalf("err = %v, want an error naming %s and %s", err, tc.folder, tc.tensor)
			}
			t.Log(err)
			if ls := siblings(t, filepath.Dir(out)); len(ls) != 0 {
				t.Errorf("left behind %v", ls)
			}
		})
	}
}

// TestBadOptions: invalid options are reported before anything is written.
func TestBadOptions(t *testing.T) {
	m := openModel(t, tinyDir(t, "tiny-sd15"), checkpoint.Options{Components: []component.Name{component.UNet}})
	tests := []struct {
		name string
		opt  Options
		want string
	}{
		{"bits 5", Options{Bits: 5}, "5 bits is not supported (1, 2, 3, 4, 6 or 8)"},
		{"bits 16", Options{Bits: 16}, "16 bits is not supported"},
		{"bits -1", Options{Bits: -1}, "-1 bits is not supported"},
		{"mode", Options{Mode: "median"}, `unknown mode "median"`},
		{"group size", Options{GroupSize: -2}, "group size -2 is negative"},
		{"min size", Options{MinSize: -1}, "minimum size -1 is negative"},
		{"component", Options{Components: []component.Name{"vae"}}, `unknown component "vae"`},
		{"absent component", Options{Components: []component.Name{component.TextEncoder}}, "component text_encoder is not in the model"},
		{"recipe bits", Options{Recipe: map[string]int{"unet/*": 5}}, "5 bits is not supported"},
		{"recipe no folder", Options{Recipe: map[string]int{"conv_in.weight": 4}}, "want folder/tensor"},
		{"recipe glob", Options{Recipe: map[string]int{"unet/[": 4}}, "syntax error in pattern"},
		{"threshold", Options{CheckThresholdDB: math.NaN()}, "threshold is NaN"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "pkg")
			_, err := Convert(t.Context(), m, out, tc.opt)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "convert: ") {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if ls := siblings(t, filepath.Dir(out)); len(ls) != 0 {
				t.Errorf("left behind %v", ls)
			}
		})
	}
}

// TestPigmentSource: a pigment package is not converted again.
func TestPigmentSource(t *testing.T) {
	m := openModel(t, tinyDir(t, "tiny-sd15"), checkpoint.Options{})
	out, _ := convertOK(t, m, fast)
	pkg := openModel(t, out, checkpoint.Options{})
	_, err := Convert(t.Context(), pkg, filepath.Join(t.TempDir(), "again"), fast)
	if err == nil || !strings.Contains(err.Error(), "already a pigment package") {
		t.Fatalf("err = %v", err)
	}
}

// TestCheckFails: with an unreachable threshold every network fails; the
// package is installed, its pigment.json records the results, and Convert
// returns the manifest with a *CheckError listing the networks.
func TestCheckFails(t *testing.T) {
	m := openModel(t, tinyDir(t, "tiny-sd15"), checkpoint.Options{})
	out := filepath.Join(t.TempDir(), "pkg")
	opt := fast
	opt.MinSize, opt.Check, opt.CheckThresholdDB = 1, true, 200
	man, err := Convert(t.Context(), m, out, opt)
	var ce *CheckError
	if !errors.As(err, &ce) || man == nil {
		t.Fatalf("Convert = %v, %v; want a manifest and a *CheckError", man, err)
	}
	t.Log(err)
	var failed []component.Name
	for _, f := range ce.Failed {
		failed = append(failed, f.Component)
		if f.PSNR != man.Check.Results[string(f.Component)].PSNR {
			t.Errorf("%s: error says %.2f dB, manifest %.2f", f.Component, f.PSNR, man.Check.Results[string(f.Component)].PSNR)
		}
	}
	if !slices.Equal(failed, component.Networks()) || ce.ThresholdDB != 200 {
		t.Errorf("failed %v at %v dB, want all four at 200", failed, ce.ThresholdDB)
	}
	disk := readManifest(t, out)
	if disk.Check == nil || disk.Check.ThresholdDB != 200 || len(disk.Check.Results) != 4 {
		t.Fatalf("pigment.json check = %+v", disk.Check)
	}
	for name, r := range disk.Check.Results {
		if r.Pass || r.PSNR <= 0 || r.PSNR >= 200 {
			t.Errorf("%s: recorded %+v", name, r)
		}
	}
	if _, err := checkpoint.Open(out, checkpoint.Options{}); err != nil {
		t.Errorf("the package does not open: %v", err)
	}
}
