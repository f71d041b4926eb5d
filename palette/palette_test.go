package palette

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/pigment-sd/pigment/parallel"
	"github.com/pigment-sd/pigment/tensor"
	"github.com/pigment-sd/pigment/weights"
)

func normal(r *rand.Rand, n int, std float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64() * std)
	}
	return v
}

func half(v []float32) []uint16 {
	h := make([]uint16, len(v))
	for i, x := range v {
		h[i] = tensor.Float32ToFloat16(x)
	}
	return h
}

func roundHalf(v []float32) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = tensor.Float16ToFloat32(tensor.Float32ToFloat16(x))
	}
	return out
}

func mustPalettize(t testing.TB, values []float32, shape []int, opt Options) *Tensor {
	t.Helper()
	p, err := Palettize("w", values, shape, opt)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// checkNearest verifies that every element's entry is a nearest table
// entry of its group, with the lowest index among equally near ones.
func checkNearest(t *testing.T, p *Tensor, vals []float32) {
	t.Helper()
	rowSize := len(vals) / p.Shape()[0]
	idx := make([]uint8, len(vals))
	Unpack(idx, p.Indices(), p.Bits(), 0, len(vals))
	k := 1 << p.Bits()
	per := p.Shape()[0]
	if p.GroupSize() > 0 {
		per = p.GroupSize()
	}
	for i, v := range vals {
		g := i / rowSize / per
		lut := p.LUT()[g*k : (g+1)*k]
		best := 0
		for j := range lut {
			if math.Abs(float64(lut[j])-float64(v)) < math.Abs(float64(lut[best])-float64(v)) {
				best = j
			}
		}
		if int(idx[i]) != best {
			t.Fatalf("element %d (%v, group %d): index %d (%v), nearest is %d (%v)", i, v, g, idx[i], lut[idx[i]], best, lut[best])
		}
	}
}

func TestPalettizeKMeansMatchesKMeans1D(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	vals := normal(r, 3000, 0.02)
	h := roundHalf(vals)
	for _, n := range widths {
		for _, f32 := range []bool{false, true} {
			p := mustPalettize(t, vals, []int{30, 100}, Options{Bits: n, TableF32: f32})
			xs := make([]float64, len(h))
			for i, v := range h {
				xs[i] = float64(v)
			}
			cs, _, err := KMeans1D(xs, nil, 1<<n)
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range cs {
				w := float32(want)
				if !f32 {
					w = tensor.Float16ToFloat32(tensor.Float32ToFloat16(w))
				}
				if p.LUT()[i] != w {
					t.Fatalf("n=%d f32=%v: entry %d = %v, KMeans1D says %v", n, f32, i, p.LUT()[i], w)
				}
			}
			checkNearest(t, p, h)
			wantDType := tensor.F16
			if f32 {
				wantDType = tensor.F32
			}
			if p.LUTDType() != wantDType {
				t.Errorf("table dtype %s, want %s", p.LUTDType(), wantDType)
			}
		}
	}
}

// TestKMeansAssignmentIsPartition checks that with exact (float32)
// centroids the indices are the contiguous clusters of the optimal
// partition: the cost of the expansion equals the optimal cost.
func TestKMeansAssignmentIsPartition(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, n := range []int{2, 3, 4} {
		vals := roundHalf(normal(r, 4096, 1))
		p := mustPalettize(t, vals, []int{64, 64}, Options{Bits: n, TableF32: true})
		got := weights.ReadAll(p)
		var sse float64
		for i := range vals {
			d := float64(vals[i]) - float64(got[i])
			sse += d * d
		}
		xs := make([]float64, len(vals))
		for i, v := range vals {
			xs[i] = float64(v)
		}
		_, opt, _ := KMeans1D(xs, nil, 1<<n)
		// The centroids are rounded to float32 (relative 6e-8), so the
		// cost can only grow by a relative ~1e-7.
		if math.Abs(sse-opt) > 1e-6*opt {
			t.Errorf("n=%d: expansion error %v, optimal cost %v", n, sse, opt)
		}
	}
}

func TestPalettizeF16EqualsF32(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	vals := normal(r, 6*7*3*3, 0.05)
	shape := []int{6, 7, 3, 3}
	for _, opt := range []Options{
		{Bits: 6}, {Bits: 3, GroupSize: 4}, {Bits: 4, Mode: Uniform, GroupSize: 1}, {Bits: 1, TableF32: true},
		{Bits: 8, Mode: Unique, GroupSize: 2},
	} {
		in := vals
		if opt.Mode == Unique { // exact on float32 values: give it float16 values
			in = roundHalf(vals)
		}
		a := mustPalettize(t, in, shape, opt)
		b, err := PalettizeF16("w", half(vals), shape, opt)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(a.LUT(), b.LUT()) || !slices.Equal(a.Indices(), b.Indices()) {
			t.Errorf("%+v: float32 and float16 inputs give different tensors", opt)
		}
	}
}

func TestUniformLevels(t *testing.T) {
	vals := []float32{-1, -0.5, 0, 0.2, 0.25, 3}
	for _, n := range widths {
		p := mustPalettize(t, vals, []int{2, 3}, Options{Bits: n, Mode: Uniform, TableF32: true})
		k := 1 << n
		for i, v := range p.LUT() {
			want := float32(-1 + 4*float64(i)/float64(k-1))
			if v != want {
				t.Fatalf("n=%d level %d = %v, want %v", n, i, v, want)
			}
		}
		checkNearest(t, p, vals)
	}
	// A constant tensor: every level is the constant, every index 0.
	p := mustPalettize(t, []float32{0.5, 0.5, 0.5}, []int{3}, Options{Bits: 2, Mode: Uniform})
	if got := weights.ReadAll(p); !slices.Equal(got, []float32{0.5, 0.5, 0.5}) {
		t.Errorf("constant tensor expands to %v", got)
	}
	if !slices.Equal(p.Indices(), []byte{0}) {
		t.Errorf("constant tensor indices %v", p.Indices())
	}
}

func TestUniqueLossless(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	levels := []float32{-0.75, -0.125, 0, 0.013671875, 0.5, 1.5, 2}
	vals := make([]float32, 8*33)
	for i := range vals {
		vals[i] = levels[r.IntN(len(levels))]
	}
	vals[5] = float32(math.Copysign(0, -1)) // negative zero counts as zero
	for _, n := range []int{3, 4, 8} {
		for _, gs := range []int{0, 3} {
			p := mustPalettize(t, vals, []int{8, 33}, Options{Bits: n, Mode: Unique, GroupSize: gs})
			if got := weights.ReadAll(p); !slices.Equal(got, vals) {
				t.Fatalf("n=%d gs=%d: unique mode is not lossless", n, gs)
			}
			q, err := PalettizeF16("w", half(vals), []int{8, 33}, Options{Bits: n, Mode: Unique, GroupSize: gs})
			if err != nil {
				t.Fatal(err)
			}
			if got := weights.ReadAll(q); !slices.Equal(got, vals) {
				t.Fatalf("n=%d gs=%d: unique mode on float16 input is not lossless", n, gs)
			}
		}
	}
	// float32 values that are not float16 values: exact with a float32
	// table, refused with a float16 one.
	f32 := []float32{0.1, 0.2, 0.3, 0.1, 0.30000001}
	p := mustPalettize(t, f32, []int{5}, Options{Bits: 2, Mode: Unique, TableF32: true})
	if got := weights.ReadAll(p); !slices.Equal(got, f32) {
		t.Errorf("float32 unique: got %v, want %v", got, f32)
	}
	if _, err := Palettize("w", f32, []int{5}, Options{Bits: 2, Mode: Unique}); err == nil || !strings.Contains(err.Error(), "float32 table") {
		t.Errorf("float16 table for float32 values: err = %v", err)
	}
	// Too many distinct values.
	if _, err := Palettize("w", f32, []int{5}, Options{Bits: 1, Mode: Unique, TableF32: true}); err == nil {
		t.Error("4 distinct values in a 1-bit unique table: no error")
	}
	if _, err := PalettizeF16("w", half(f32), []int{5}, Options{Bits: 1, Mode: Unique}); err == nil {
		t.Error("float16: 4 distinct values in a 1-bit unique table: no error")
	}
}

// TestKMeansFewValuesLossless: with at most 2^n distinct values, k-means
// gives every value its own centroid, exactly.
func TestKMeansFewValuesLossless(t *testing.T) {
	r := rand.New(rand.NewPCG(25, 26))
	levels := []float32{-3.5, -0.0001220703125, 5.960464477539063e-08, 0.013671875, 0.333251953125, 7}
	vals := make([]float32, 500)
	for i := range vals {
		vals[i] = levels[r.IntN(len(levels))]
	}
	for _, f32 := range []bool{false, true} {
		for _, n := range []int{3, 8} {
			p := mustPalettize(t, vals, []int{20, 25}, Options{Bits: n, TableF32: f32})
			if got := weights.ReadAll(p); !slices.Equal(got, vals) {
				t.Errorf("n=%d f32=%v: %d distinct values not kept exactly", n, f32, len(levels))
			}
		}
	}
}

func TestGroupedTables(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	// 10 rows of 7: with 3-bit indices no group starts or ends on a byte
	// boundary, and the last group (group size 3) has one row.
	rows, cols := 10, 7
	vals := normal(r, rows*cols, 1)
	for i := range vals {
		vals[i] += float32(i / cols) // each row at its own offset
	}
	for _, n := range []int{1, 3, 6} {
		for _, gs := range []int{1, 3, 4, 10, 11} {
			opt := Options{Bits: n, GroupSize: gs}
			p := mustPalettize(t, vals, []int{rows, cols}, opt)
			per := min(gs, rows)
			wantGroups := (rows + per - 1) / per
			if p.Groups() != wantGroups || len(p.LUT()) != wantGroups<<n {
				t.Fatalf("gs=%d: %d groups, %d entries", gs, p.Groups(), len(p.LUT()))
			}
			full := weights.ReadAll(p)
			for g := 0; g < wantGroups; g++ {
				r0, r1 := g*per, min(rows, (g+1)*per)
				alone := mustPalettize(t, vals[r0*cols:r1*cols], []int{r1 - r0, cols}, Options{Bits: n})
				if !slices.Equal(alone.LUT(), p.LUT()[g<<n:(g+1)<<n]) {
					t.Fatalf("n=%d gs=%d: group %d table differs from the group palettized alone", n, gs, g)
				}
				if got := weights.ReadAll(alone); !slices.Equal(got, full[r0*cols:r1*cols]) {
					t.Fatalf("n=%d gs=%d: group %d expands differently from the group palettized alone", n, gs, g)
				}
			}
			checkNearest(t, p, roundHalf(vals))
		}
	}
}

func TestReadRowsBlocks(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	for _, n := range widths {
		for _, shape := range [][]int{{9, 5}, {7, 3, 1, 1}, {13}, {6, 2, 3, 3}} {
			count := tensor.NumElements(shape)
			vals := normal(r, count, 1)
			for _, gs := range []int{0, 2, 5} {
				p := mustPalettize(t, vals, shape, Options{Bits: n, GroupSize: gs})
				full := weights.ReadAll(p)
				// The reference expansion: unpacked index through its table.
				idx := make([]uint8, count)
				Unpack(idx, p.Indices(), n, 0, count)
				rows := shape[0]
				rs := count / rows
				per := rows
				if gs > 0 {
					per = min(gs, rows)
				}
				for i := range full {
					g := i / rs / per
					if want := p.LUT()[g<<n+int(idx[i])]; full[i] != want {
						t.Fatalf("n=%d %v gs=%d: element %d = %v, want %v", n, shape, gs, i, full[i], want)
					}
				}
				for lo := 0; lo <= rows; lo++ {
					for hi := lo; hi <= rows; hi++ {
						dst := make([]float32, (hi-lo)*rs+1)
						dst[len(dst)-1] = 42
						p.ReadRows(dst, lo, hi)
						if !slices.Equal(dst[:len(dst)-1], full[lo*rs:hi*rs]) || dst[len(dst)-1] != 42 {
							t.Fatalf("n=%d %v gs=%d: ReadRows(%d, %d) differs from the full expansion", n, shape, gs, lo, hi)
						}
					}
				}
			}
		}
	}
}

func TestReadRowsNoAlloc(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 20))
	vals := normal(r, 64*96, 1)
	for _, n := range widths {
		p := mustPalettize(t, vals, []int{64, 96}, Options{Bits: n, GroupSize: 8})
		dst := make([]float32, 20*96)
		if a := testing.AllocsPerRun(10, func() { p.ReadRows(dst, 3, 23) }); a != 0 {
			t.Errorf("n=%d: ReadRows allocates %v times", n, a)
		}
	}
}

func TestTensorInterface(t *testing.T) {
	vals := make([]float32, 4*6)
	for i := range vals {
		vals[i] = float32(i % 5)
	}
	p := mustPalettize(t, vals, []int{4, 6}, Options{Bits: 3, GroupSize: 3})
	var w weights.Tensor = p
	if w.DType() != weights.Palettized {
		t.Errorf("DType %s", w.DType())
	}
	if !slices.Equal(w.Shape(), []int{4, 6}) {
		t.Errorf("Shape %v", w.Shape())
	}
	// 24 3-bit indices = 9 bytes; 2 float16 tables of 8 entries = 32 bytes.
	if got := p.StorageBytes(); got != 9+32 {
		t.Errorf("StorageBytes = %d, want 41", got)
	}
	if got := weights.ReadAll(p); !slices.Equal(got, vals) {
		t.Errorf("5 distinct values in 3 bits should be exact: %v", got)
	}
}

func TestPalettizeErrors(t *testing.T) {
	good := []float32{1, 2, 3, 4}
	tests := []struct {
		name   string
		values []float32
		shape  []int
		opt    Options
		want   string
	}{
		{"nan", []float32{1, float32(math.NaN()), 3, 4}, []int{2, 2}, Options{Bits: 4}, `w: value 1 is NaN`},
		{"inf", []float32{1, 2, 3, float32(math.Inf(-1))}, []int{2, 2}, Options{Bits: 4, GroupSize: 1}, `w: value 3 is -Inf`},
		{"inf unique", []float32{float32(math.Inf(1)), 2, 3, 4}, []int{2, 2}, Options{Bits: 4, Mode: Unique}, `w: value 0 is +Inf`},
		{"beyond float16", []float32{1, 2, 70000, 4}, []int{2, 2}, Options{Bits: 4}, `outside the float16 range`},
		{"bits 5", good, []int{2, 2}, Options{Bits: 5}, `5 bits is not supported`},
		{"bits 0", good, []int{2, 2}, Options{}, `0 bits is not supported`},
		{"mode", good, []int{2, 2}, Options{Bits: 2, Mode: "lloyd"}, `unknown mode "lloyd"`},
		{"negative group", good, []int{2, 2}, Options{Bits: 2, GroupSize: -1}, `group size -1`},
		{"empty", nil, []int{0, 3}, Options{Bits: 2}, `empty`},
		{"scalar", []float32{1}, nil, Options{Bits: 2}, `scalar`},
		{"length", good, []int{2, 3}, Options{Bits: 2}, `4 values for shape [2 3]`},
		{"unique too many", good, []int{4}, Options{Bits: 1, Mode: Unique}, `more than 2`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Palettize("w", tc.values, tc.shape, tc.opt)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "w") {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	// float16 NaN and Inf patterns.
	for _, b := range []uint16{0x7c00, 0xfc00, 0x7e00, 0xfd01} {
		_, err := PalettizeF16("unet.w", []uint16{0x3c00, b}, []int{2}, Options{Bits: 2})
		if err == nil || !strings.Contains(err.Error(), "palettize unet.w: value 1") {
			t.Errorf("pattern %#x: err = %v", b, err)
		}
	}
}

func TestNewValidates(t *testing.T) {
	lut := make([]float32, 4)
	tests := []struct {
		name    string
		shape   []int
		bits    int
		gs      int
		lut     []float32
		dtype   tensor.DType
		indices []byte
	}{
		{"bits", []int{4}, 5, 0, make([]float32, 32), tensor.F32, make([]byte, 3)},
		{"dtype", []int{4}, 2, 0, lut, tensor.BF16, make([]byte, 1)},
		{"lut size", []int{4}, 2, 0, make([]float32, 3), tensor.F32, make([]byte, 1)},
		{"lut groups", []int{4}, 2, 2, lut, tensor.F32, make([]byte, 1)},
		{"indices short", []int{5}, 2, 0, lut, tensor.F32, make([]byte, 1)},
		{"indices long", []int{4}, 2, 0, lut, tensor.F32, make([]byte, 2)},
		{"nan entry", []int{4}, 2, 0, []float32{0, float32(math.NaN()), 0, 0}, tensor.F32, make([]byte, 1)},
		{"not float16", []int{4}, 2, 0, []float32{0, 0.1, 0, 0}, tensor.F16, make([]byte, 1)},
		{"zero dim", []int{4, 0}, 2, 0, lut, tensor.F32, nil},
		{"huge", []int{1 << 20, 1 << 20}, 2, 0, lut, tensor.F32, nil},
	}
	for _, tc := range tests {
		if _, err := New(tc.shape, tc.bits, tc.gs, tc.lut, tc.dtype, tc.indices); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	p, err := New([]int{4}, 2, 0, []float32{0, 0.5, 1, 2}, tensor.F16, []byte{0b11100100})
	if err != nil {
		t.Fatal(err)
	}
	if got := weights.ReadAll(p); !slices.Equal(got, []float32{0, 0.5, 1, 2}) {
		t.Errorf("ReadAll = %v", got)
	}
}

// TestDeterministic checks that the result does not depend on the pool:
// grouped tables (the groups spread over the workers) and one large table
// (its k-means layers split over two workers) come out the same on one,
// two and three workers.
func TestDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	grouped := normal(r, 40*50, 0.1)
	large := normal(r, 64*512, 0.1)
	for _, tc := range []struct {
		vals  []float32
		shape []int
		opt   Options
	}{
		{grouped, []int{40, 50}, Options{Bits: 3, GroupSize: 3}},
		{large, []int{64, 512}, Options{Bits: 8}},
	} {
		a := mustPalettize(t, tc.vals, tc.shape, tc.opt)
		for _, threads := range []int{2, 3} {
			pool := parallel.New(threads)
			opt := tc.opt
			opt.Pool = pool
			pool.ResetPeak()
			b := mustPalettize(t, tc.vals, tc.shape, opt)
			if !slices.Equal(a.LUT(), b.LUT()) || !slices.Equal(a.Indices(), b.Indices()) {
				t.Errorf("%v %d bits: result on %d workers differs from one worker's", tc.shape, tc.opt.Bits, threads)
			}
			if pool.Peak() > threads {
				t.Errorf("%v: peak of %d workers on a pool of %d", tc.shape, pool.Peak(), threads)
			}
			pool.Close()
		}
	}
}

func TestToHalfs(t *testing.T) {
	// A stride through all float32 patterns, and every pattern around the
	// fast path's edges and the rounding ties of a few binades.
	var bits []uint32
	for b := uint64(0); b < 1<<32; b += 4099 {
		bits = append(bits, uint32(b))
	}
	for _, edge := range []uint32{0x38800000, 0x477fefff, 0x477ff000, 0x3c000000, 0x33000000, 0} {
		for d := uint32(0); d < 1<<14; d++ {
			bits = append(bits, edge+d-1<<13, (edge+d-1<<13)|0x80000000)
		}
	}
	src := make([]float32, len(bits))
	for i, b := range bits {
		src[i] = math.Float32frombits(b)
	}
	got := make([]uint16, len(src))
	toHalfs(got, src)
	for i, f := range src {
		if want := tensor.Float32ToFloat16(f); got[i] != want {
			t.Fatalf("toHalfs(%#x = %v) = %#x, want %#x", bits[i], f, got[i], want)
		}
	}
}
