package pipeline

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/pigment-sd/pigment/checkpoint"
	"github.com/pigment-sd/pigment/convert"
	"github.com/pigment-sd/pigment/internal/fixtures"
	"github.com/pigment-sd/pigment/palette"
)

// A palettized package generates as well as the float model: the same
// prompt and seed through 5 PNDM steps give nearly the same image. The
// floors are about 3 dB below what was measured on the decoded image
// (8 bits: 53.7 dB; 6 bits: 40.5 dB), and above the 35 dB that
// apple/ml-stable-diffusion's check asks of a single network.
func TestPalettizedGeneratesLikeFloat(t *testing.T) {
	dir := filepath.Dir(fixtures.Path(t, "tiny-sd15/model_index.json"))
	src, err := checkpoint.Open(dir, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	float, err := Load(src, LoadOptions{Kernels: testKernels()})
	if err != nil {
		t.Fatal(err)
	}
	p := Params{Prompt: "a photograph of an astronaut riding a horse", Steps: 5, Guidance: 7.5, Seed: 0, Width: 32, Height: 32, ImageCount: 1}
	want, err := float.Generate(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		bits  int
		floor float64
	}{{8, 50}, {6, 37}} {
		out := filepath.Join(t.TempDir(), "pkg")
		if _, err := convert.Convert(context.Background(), src, out, convert.Options{Bits: c.bits, MinSize: 1, Kernels: testKernels()}); err != nil {
			t.Fatal(err)
		}
		pkg, err := checkpoint.Open(out, checkpoint.Options{})
		if err != nil {
			t.Fatal(err)
		}
		pm, err := Load(pkg, LoadOptions{Kernels: testKernels()})
		if err != nil {
			t.Fatal(err)
		}
		got, err := pm.Generate(context.Background(), p)
		pkg.Close()
		if err != nil {
			t.Fatal(err)
		}
		psnr := palette.PSNR(want.Decoded.Data, got.Decoded.Data)
		t.Logf("%d bits: decoded image PSNR %.1f dB", c.bits, psnr)
		if psnr < c.floor {
			t.Errorf("%d bits: decoded image PSNR %.1f dB, want at least %.0f", c.bits, psnr, c.floor)
		}
	}
}
