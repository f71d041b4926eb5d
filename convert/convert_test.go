package convert

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/pigment-sd/pigment/checkpoint"
	"github.com/pigment-sd/pigment/component"
	"github.com/pigment-sd/pigment/format/pigmentpkg"
	"github.com/pigment-sd/pigment/palette"
	"github.com/pigment-sd/pigment/tensor"
	"github.com/pigment-sd/pigment/weights"
)

// TestConvertTinySD15 converts the tiny SD 1.5 model at 8 bits (k-means,
// one table per tensor, every Linear and Conv weight since MinSize is 1)
// with the output check, then checks the package: its files, its
// manifest, that it reopens, and how close each network's output stays to
// float32.
func TestConvertTinySD15(t *testing.T) {
	src := tinyDir(t, "tiny-sd15")
	m := openModel(t, src, checkpoint.Options{})
	k := testKernels(t)
	var events []Event
	out, man := convertOK(t, m, Options{Bits: 8, MinSize: 1, Check: true, Kernels: k, Progress: func(e Event) { events = append(events, e) }})

	// Check results as Convert measured them on its own seeded inputs.
	// Measured (kernels/cpu and kernels/ref agree to 0.01 dB): text
	// encoder 69.7, unet 49.4, vae decoder 47.1, vae encoder 49.1 dB. The
	// floors sit 1.5 dB below.
	floors := map[component.Name]float64{component.TextEncoder: 68, component.UNet: 48, component.VAEDecoder: 45.5, component.VAEEncoder: 47.5}
	if man.Check == nil || man.Check.ThresholdDB != DefaultThresholdDB {
		t.Fatalf("check = %+v, want threshold %v", man.Check, DefaultThresholdDB)
	}
	for name, floor := range floors {
		r := man.Check.Results[string(name)]
		if r == nil {
			t.Errorf("check: no result for %s", name)
			continue
		}
		t.Logf("check %s: %.2f dB", name, r.PSNR)
		if r.PSNR < floor || !r.Pass {
			t.Errorf("check %s: %.2f dB (pass %v), want >= %.1f", name, r.PSNR, r.Pass, floor)
		}
	}

	// The same against the fixture's float32 reference outputs, with the
	// networks run from the reopened package. Measured: text encoder
	// 69.7, unet 49.8, vae decoder 49.5, vae encoder 52.3 dB; floors 1.5 dB
	// below. (Float32 weights give > 100 dB here.)
	got := fixturePSNR(t, out, fixturesRefs(t, "tiny-sd15"), "unet.out", k)
	refFloors := map[component.Name]float64{component.TextEncoder: 68.2, component.UNet: 48.3, component.VAEDecoder: 48, component.VAEEncoder: 50.8}
	for name, floor := range refFloors {
		t.Logf("package vs fixture %s: %.2f dB", name, got[string(name)])
		if got[string(name)] < floor {
			t.Errorf("package vs fixture %s: %.2f dB, want >= %.1f", name, got[string(name)], floor)
		}
	}

	// Files copied from the source.
	for _, f := range []string{"model_index.json", "scheduler/scheduler_config.json", "tokenizer/vocab.json", "tokenizer/merges.txt",
		"tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json", "unet/config.json", "text_encoder/config.json", "vae/config.json"} {
		want, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			t.Errorf("package: %v", err)
		} else if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the source", f)
		}
	}
	if ls := siblings(t, filepath.Dir(out)); !slices.Equal(ls, []string{"pkg"}) {
		t.Errorf("output folder holds %v, want only pkg", ls)
	}

	// The manifest on disk is the one returned.
	disk := readManifest(t, out)
	if !reflect.DeepEqual(disk, man) {
		t.Errorf("pigment.json differs from the returned manifest")
	}
	if disk.Source != (pigmentpkg.Source{Path: src, Kind: checkpoint.KindDiffusers, Family: checkpoint.FamilySD1}) {
		t.Errorf("source = %+v", disk.Source)
	}
	wantRecipe := pigmentpkg.Recipe{Bits: 8, Mode: "kmeans", Granularity: "per-tensor", TableDType: "F16", MinSize: 1}
	if !reflect.DeepEqual(disk.Recipe, wantRecipe) {
		t.Errorf("recipe = %+v, want %+v", disk.Recipe, wantRecipe)
	}

	// Every tensor is recorded; Linear and Conv weights are palettized,
	// the rest keeps its F32 dtype; the package reopens with the same
	// tensors.
	pkg := openModel(t, out, checkpoint.Options{})
	if pkg.Kind != checkpoint.KindPigment || pkg.Manifest == nil {
		t.Fatalf("reopened as %s", pkg.Kind)
	}
	for _, folder := range []string{string(component.TextEncoder), string(component.UNet), string(component.VAE)} {
		srcW := m.Components[component.Name(folder)].Weights
		pkgW := pkg.Components[component.Name(folder)].Weights
		rec := disk.Components[folder]
		if rec == nil {
			t.Fatalf("manifest has no %s", folder)
		}
		if !slices.Equal(srcW.Names(), pkgW.Names()) {
			t.Errorf("%s: package tensors differ from the source's", folder)
		}
		var params, stored int64
		npal := 0
		for _, name := range srcW.Names() {
			st, _ := srcW.Tensor(name)
			pt, ok := pkgW.Tensor(name)
			r := rec.Tensors[name]
			if !ok || r == nil {
				t.Errorf("%s/%s: missing from the package or manifest", folder, name)
				continue
			}
			params += int64(weights.NumElements(st))
			stored += r.Bytes
			if !slices.Equal(r.Shape, st.Shape()) || !slices.Equal(pt.Shape(), st.Shape()) {
				t.Errorf("%s/%s: shape %v / %v, want %v", folder, name, r.Shape, pt.Shape(), st.Shape())
			}
			want := len(st.Shape()) >= 2 && strings.HasSuffix(name, ".weight") && !strings.Contains(name, "embeddings")
			if want {
				npal++
				p, ok := pt.(*palette.Tensor)
				if !ok || r.Bits != 8 || r.Mode != "kmeans" || r.DType != "PAL" || p.Bits() != 8 || p.Groups() != 1 {
					t.Errorf("%s/%s: stored as %T, record %+v; want 8-bit palettized", folder, name, pt, r)
					continue
				}
				if r.Bytes != p.StorageBytes() {
					t.Errorf("%s/%s: %d bytes recorded, stored %d", folder, name, r.Bytes, p.StorageBytes())
				}
				// 8-bit k-means of these uniform-ish weights: 37 to 47 dB
				// measured, 72 dB for the 32- and 64-value quant convs.
				if r.SQNR < 35 || r.SQNR > 80 {
					t.Errorf("%s/%s: SQNR %.2f dB, want 35..80", folder, name, r.SQNR)
				}
			} else if r.Bits != 0 || r.DType != "F32" || pt.DType() != tensor.F32 || r.SQNR != 0 {
				t.Errorf("%s/%s: record %+v, stored %s; want float F32", folder, name, r, pt.DType())
			}
		}
		if npal == 0 {
			t.Errorf("%s: nothing palettized", folder)
		}
		if rec.Params != params || rec.FloatBytes != 2*params || rec.StoredBytes != stored {
			t.Errorf("%s: params %d float16 %d stored %d, want %d %d %d", folder, rec.Params, rec.FloatBytes, rec.StoredBytes, params, 2*params, stored)
		}
		st, err := os.Stat(filepath.Join(out, folder, pigmentpkg.WeightsFile))
		if err != nil {
			t.Fatal(err)
		}
		if header := st.Size() - rec.StoredBytes; header < 0 || header > 200_000 {
			t.Errorf("%s: file %d bytes for %d bytes of tensors", folder, st.Size(), rec.StoredBytes)
		}
	}

	// Progress: one event per tensor, counting to the total, then a start
	// and a result per check.
	var tensors int
	for _, c := range disk.Components {
		tensors += len(c.Tensors)
	}
	var checks []component.Name
	for i, e := range events {
		switch e.Kind {
		case TensorDone:
			if e.Index != i+1 || e.Total != tensors {
				t.Fatalf("event %d: %+v, want index %d of %d", i, e, i+1, tensors)
			}
		case CheckDone:
			checks = append(checks, e.Component)
			if e.PSNR != man.Check.Results[string(e.Component)].PSNR {
				t.Errorf("check event %+v disagrees with the manifest", e)
			}
		}
	}
	if want := component.Networks(); !slices.Equal(checks, want) {
		t.Errorf("checks reported %v, want %v", checks, want)
	}
}

// fixturesRefs is the refs.safetensors file of a tiny fixture model.
func fixturesRefs(t *testing.T, name string) string {
	return filepath.Join(tinyDir(t, name), "refs.safetensors")
}
