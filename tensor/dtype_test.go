package tensor

import (
	"math"
	"testing"
)

// Every half-precision bit pattern converts to float32 and back unchanged
// (NaNs stay NaN), which pins both directions on all 65,536 inputs.
func TestFloat16RoundTripExhaustive(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := Float16ToFloat32(uint16(h))
		back := Float32ToFloat16(f)
		if math.IsNaN(float64(f)) {
			if back&0x7c00 != 0x7c00 || back&0x3ff == 0 {
				t.Fatalf("NaN %#04x came back as %#04x", h, back)
			}
			continue
		}
		if back != uint16(h) {
			t.Fatalf("%#04x -> %v -> %#04x", h, f, back)
		}
	}
}

func TestFloat32ToFloat16Rounding(t *testing.T) {
	cases := []struct {
		in   float32
		want uint16
	}{
		{1, 0x3c00},
		{-2, 0xc000},
		{65504, 0x7bff},
		{65520, 0x7c00},                  // rounds up to infinity, as PyTorch does
		{1 + 1.0/2048, 0x3c00},           // exact tie, rounds to even (down)
		{1 + 3.0/2048, 0x3c02},           // exact tie, rounds to even (up)
		{5.960464477539063e-08, 0x0001},  // smallest subnormal
		{2.9802322387695312e-08, 0x0000}, // half of it: tie to even (0)
		{4.470348358154297e-08, 0x0001},  // 0.75 of it rounds up
		{6.103515625e-05, 0x0400},        // smallest normal
		{float32(math.Inf(-1)), 0xfc00},
		{0, 0},
	}
	for _, c := range cases {
		if got := Float32ToFloat16(c.in); got != c.want {
			t.Errorf("Float32ToFloat16(%v) = %#04x, want %#04x", c.in, got, c.want)
		}
	}
}

// Float32ToFloat16 agrees with rounding computed in float64 to the nearest
// representable half on a sweep of values.
func TestFloat32ToFloat16Nearest(t *testing.T) {
	for i := 0; i < 200000; i++ {
		f := float32(math.Sin(float64(i)) * math.Pow(2, float64(i%40-24)))
		h := Float32ToFloat16(f)
		got := float64(Float16ToFloat32(h))
		// neighbours of h must not be strictly closer
		for _, n := range []uint16{h - 1, h + 1} {
			if n&0x7c00 == 0x7c00 {
				continue
			}
			alt := float64(Float16ToFloat32(n))
			if math.Abs(alt-float64(f)) < math.Abs(got-float64(f)) {
				t.Fatalf("%v -> %v (%#04x) but %v (%#04x) is closer", f, got, h, alt, n)
			}
		}
	}
}

func TestBFloat16(t *testing.T) {
	for _, v := range []float32{0, 1, -3.5, 1e30, -1e-30} {
		b := Float32ToBFloat16(v)
		if got := BFloat16ToFloat32(b); math.Abs(float64(got-v)) > math.Abs(float64(v))/128 {
			t.Errorf("bf16 round trip %v -> %v", v, got)
		}
	}
	if got := Float32ToBFloat16(math.Float32frombits(0x3f808000)); got != 0x3f80 { // tie to even
		t.Errorf("tie: %#x", got)
	}
	if got := BFloat16ToFloat32(Float32ToBFloat16(float32(math.NaN()))); !math.IsNaN(float64(got)) {
		t.Errorf("NaN lost: %v", got)
	}
}

func TestDecodeFloats(t *testing.T) {
	raw := []byte{0x00, 0x3c, 0x00, 0xc0} // 1, -2 in F16
	dst := make([]float32, 2)
	if err := DecodeFloats(dst, raw, F16); err != nil || dst[0] != 1 || dst[1] != -2 {
		t.Fatalf("got %v %v", dst, err)
	}
	if err := DecodeFloats(dst, raw[:3], F16); err == nil {
		t.Error("short input accepted")
	}
	if err := DecodeFloats(dst, raw, I64); err == nil {
		t.Error("int dtype accepted")
	}
}
