package palette

import (
	"encoding/binary"
	"math"
	"slices"
	"testing"

	"github.com/pigment-sd/pigment/format/safetensors"
	"github.com/pigment-sd/pigment/internal/fixtures"
	"github.com/pigment-sd/pigment/tensor"
	"github.com/pigment-sd/pigment/weights"
)

// TestFixtureUNet palettizes the tiny SD 1.5 UNet's Linear and Conv
// weights (those with at least 2048 elements, the default selection) from
// both the float32 file and its float16 variant, which diffusers made with
// torch's .half().
func TestFixtureUNet(t *testing.T) {
	f32, err := safetensors.Open(fixtures.Path(t, "tiny-sd15/unet/diffusion_pytorch_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f32.Close()
	f16, err := safetensors.Open(fixtures.Path(t, "tiny-sd15/unet/diffusion_pytorch_model.fp16.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f16.Close()

	tested := 0
	for _, name := range f32.Names() {
		info, _ := f32.Info(name)
		if len(info.Shape) < 2 || info.NumElements() < 2048 {
			continue
		}
		tested++
		vals, shape, err := f32.Float32(name)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := f16.Data(name)
		if err != nil {
			t.Fatal(err)
		}
		if hi, _ := f16.Info(name); hi.DType != tensor.F16 {
			t.Fatalf("%s: fp16 variant holds %s", name, hi.DType)
		}
		bits := make([]uint16, len(raw)/2)
		for i := range bits {
			bits[i] = binary.LittleEndian.Uint16(raw[2*i:])
		}
		ref16 := make([]float32, len(bits))
		for i, b := range bits {
			ref16[i] = tensor.Float16ToFloat32(b)
		}

		for _, n := range []int{4, 6} {
			// Rounding to float16 here must agree with torch's .half(): the
			// float32 and float16 files give bit-identical results.
			// (Checked at 4 bits, where the clustering is cheapest.)
			opt := Options{Bits: n}
			a, err := Palettize(name, vals, shape, opt)
			if err != nil {
				t.Fatal(err)
			}
			if n == 4 {
				b, err := PalettizeF16(name, bits, shape, opt)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(a.LUT(), b.LUT()) || !slices.Equal(a.Indices(), b.Indices()) {
					t.Fatalf("%s n=%d: float32 and float16 files palettize differently", name, n)
				}
			}

			// The weights are PyTorch's default kaiming-uniform init, so
			// a uniform quantizer with K = 2^n levels reaches an SQNR of
			// about 20·log10(K-1) dB (signal a²/3, noise Δ²/12 with
			// Δ = 2a/(K-1)). The optimal k-means must do at least as well
			// less 1 dB (sampling: a tensor's extremes fall short of ±a).
			got := weights.ReadAll(a)
			km := SQNR(vals, got)
			if floor := 20*math.Log10(float64(int(1)<<n-1)) - 1; km < floor {
				t.Errorf("%s n=%d: k-means SQNR %.2f dB below %.2f", name, n, km, floor)
			}
			// The pass floor of the end-to-end check is 35 dB PSNR; 6 bits
			// clear it on every weight by itself.
			if p := PSNR(vals, got); n == 6 && p < 35 {
				t.Errorf("%s n=%d: PSNR %.2f dB below 35", name, n, p)
			}
			if n != 4 {
				continue
			}
			// Against the float16 values that were clustered, with exact
			// tables, k-means is never worse than the uniform mode (up to
			// float32 rounding of the tables), and more tables (8 output
			// channels each) never worse than one.
			u, err := PalettizeF16(name, bits, shape, Options{Bits: n, Mode: Uniform, TableF32: true})
			if err != nil {
				t.Fatal(err)
			}
			k32, err := PalettizeF16(name, bits, shape, Options{Bits: n, TableF32: true})
			if err != nil {
				t.Fatal(err)
			}
			g32, err := PalettizeF16(name, bits, shape, Options{Bits: n, TableF32: true, GroupSize: 8})
			if err != nil {
				t.Fatal(err)
			}
			su, sk := SQNR(ref16, weights.ReadAll(u)), SQNR(ref16, weights.ReadAll(k32))
			if sk < su-1e-4 {
				t.Errorf("%s n=%d: k-means SQNR %.4f below uniform %.4f", name, n, sk, su)
			}
			if sg := SQNR(ref16, weights.ReadAll(g32)); sg < sk-1e-4 {
				t.Errorf("%s n=%d: grouped SQNR %.4f below per-tensor %.4f", name, n, sg, sk)
			}
		}
	}
	if tested < 60 {
		t.Fatalf("only %d weights tested", tested)
	}
}
