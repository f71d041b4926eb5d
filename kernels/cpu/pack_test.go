package cpu

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/pigment-sd/pigment/tensor"
)

// TestPack checks every level's packing routines against the portable
// ones, bit for bit, over row counts, depths (whole and partial blocks of
// 16 columns), offsets and strides.
func TestPack(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	const ld = 53
	src := make([]float32, 40*ld)
	half := make([]byte, 2*len(src))
	bf := make([]byte, 2*len(src))
	for i := range src {
		src[i] = r.Float32()*8 - 4
		h := tensor.Float32ToFloat16(src[i])
		half[2*i], half[2*i+1] = byte(h), byte(h>>8)
		b := tensor.Float32ToBFloat16(src[i])
		bf[2*i], bf[2*i+1] = byte(b), byte(b>>8)
	}
	for _, is := range allLevels() {
		for _, rows := range []int{1, 5, 14, 16, 17, 32, 33} {
			for _, kc := range []int{0, 1, 15, 16, 17, 31, 40} {
				for _, k0 := range []int{0, 3} {
					stride := max(rows, 14)
					name := fmt.Sprintf("%s/rows%d_kc%d_k0%d", is.name, rows, kc, k0)
					want := make([]float32, kc*stride)
					packRowsGo(want, src, ld, rows, k0, kc, stride)
					got := slices.Repeat([]float32{-1}, kc*stride)
					is.packRows(got, src, ld, rows, k0, kc, stride)
					if !slices.Equal(got, want) {
						t.Errorf("%s: packRows differs", name)
					}
					if is.packHalf == nil {
						continue
					}
					for _, bf16 := range []bool{false, true} {
						raw := half
						if bf16 {
							raw = bf
						}
						packHalfGo(want, raw, bf16, ld, rows, k0, kc, stride)
						got := slices.Repeat([]float32{-1}, kc*stride)
						is.packHalf(got, raw, bf16, ld, rows, k0, kc, stride)
						if !slices.Equal(got, want) {
							t.Errorf("%s: packHalf(bf16 %v) differs", name, bf16)
						}
					}
				}
			}
		}
	}
}
