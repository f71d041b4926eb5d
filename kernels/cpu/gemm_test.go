package cpu

import (
	"testing"
)

// TestPlanSchedule checks which schedule SD 1.5 UNet shapes get on the
// AVX-512 tile shape with two threads: the deep levels (few pixels or
// tokens against large weights) stream, the high-resolution ones keep the
// W-range schedule, and the shared X buffer stays within its budget.
func TestPlanSchedule(t *testing.T) {
	is := &isa{name: "shape14x32", mr: 14, nr: 32}
	tests := []struct {
		name       string
		M, N, K    int
		wOnA       bool
		batch      int
		wantStream bool
	}{
		{"conv3x3_2560to1280_4x4", 1280, 16, 23040, true, 1, true},
		{"conv3x3_1280to1280_8x8_batch2", 1280, 64, 11520, true, 2, true},
		{"conv3x3_640to640_32x32_batch2", 640, 1024, 5760, true, 2, true},
		{"conv3x3_320to320_64x64_batch2", 320, 4096, 2880, true, 2, false},
		{"conv3x3_640to320_64x64", 320, 4096, 5760, true, 1, false},
		{"linear_M128_K1280_N1280", 128, 1280, 1280, false, 1, true},
		{"linear_M2_K1280_N1280", 2, 1280, 1280, false, 1, true},
		{"linear_M8192_K320_N320", 8192, 320, 320, false, 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j := &gemmJob{is: is, M: tc.M, N: tc.N, K: tc.K, wOnA: tc.wOnA, batch: tc.batch,
				tune: tuning{streamBudget: streamBudget, streamSlabMax: streamSlabMax}}
			j.a, j.b = operand{kind: opRows}, operand{kind: opF16}
			if tc.wOnA {
				j.a, j.b = operand{kind: opF16}, operand{kind: opIm2col}
			}
			j.plan(2)
			if j.stream != tc.wantStream {
				t.Fatalf("stream = %v, want %v", j.stream, tc.wantStream)
			}
			if !j.stream {
				return
			}
			if got := j.pcChunk * j.batch * j.slab; got > max(streamBudget, j.batch*j.slab) {
				t.Errorf("shared X of %d floats exceeds the budget %d", got, streamBudget)
			}
			if j.nW < 2 || j.nW > streamItems*2 {
				t.Errorf("%d W ranges for 2 threads", j.nW)
			}
		})
	}
}
