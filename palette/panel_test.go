package palette

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/pigment-sd/pigment/tensor"
	"github.com/pigment-sd/pigment/weights"
)

// randomTensor builds a palettized tensor with random indices and sorted
// random float32 tables.
func randomTensor(t testing.TB, r *rand.Rand, shape []int, bits, groupSize int) *Tensor {
	t.Helper()
	count := tensor.NumElements(shape)
	_, _, _, groups, err := layout(shape, bits, groupSize)
	if err != nil {
		t.Fatal(err)
	}
	lut := make([]float32, groups<<bits)
	for i := range lut {
		lut[i] = r.Float32()*4 - 2
	}
	for g := 0; g < groups; g++ {
		sort.Slice(lut[g<<bits:(g+1)<<bits], func(i, j int) bool { return lut[g<<bits+i] < lut[g<<bits+j] })
	}
	idx := make([]byte, PackedLen(count, bits))
	Pack(idx, randIdx(r, count, bits), bits)
	p, err := New(shape, bits, groupSize, lut, tensor.F32, idx)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestReadPanel checks ReadPanel, and both of its expansions separately,
// against ReadRows for every width, per-tensor and grouped tables (groups
// that 16-row blocks straddle), rows that start at every bit offset, and
// blocks of every position, height, depth (whole and partial blocks of 16
// columns) and stride, bit for bit.
func TestReadPanel(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	type block struct{ lo, rows, k0, kc int }
	var blocks []block
	for _, lr := range [][2]int{{0, 1}, {0, 16}, {3, 14}, {1, 7}, {16, 17}, {5, 32}, {0, 37}} {
		for _, kk := range [][2]int{{0, 0}, {0, 1}, {0, 16}, {1, 15}, {5, 17}, {3, 33}, {0, 36}} {
			blocks = append(blocks, block{lr[0], lr[1], kk[0], kk[1]})
		}
	}
	fast := 0
	for _, bits := range widths {
		for _, rowSize := range []int{36, 37, 40, 53} {
			for _, gs := range []int{0, 5, 16} {
				p := randomTensor(t, r, []int{40, rowSize}, bits, gs)
				full := weights.ReadAll(p)
				for _, b := range blocks {
					if b.k0+b.kc > rowSize {
						continue
					}
					for _, extra := range []int{0, 3} {
						stride := max(b.rows, 14) + extra
						name := fmt.Sprintf("bits%d_rowsize%d_gs%d_lo%d_rows%d_k0%d_kc%d_stride%d", bits, rowSize, gs, b.lo, b.rows, b.k0, b.kc, stride)
						want := make([]float32, b.kc*stride)
						for k := 0; k < b.kc; k++ {
							for i := 0; i < b.rows; i++ {
								want[k*stride+i] = full[(b.lo+i)*rowSize+b.k0+k]
							}
						}
						n := b.kc*stride + 5
						got := slices.Repeat([]float32{-7}, n)
						p.ReadPanel(got, b.lo, b.rows, b.k0, b.kc, stride)
						if !slices.Equal(got[:b.kc*stride], want) || !slices.Equal(got[b.kc*stride:], []float32{-7, -7, -7, -7, -7}) {
							t.Fatalf("%s: ReadPanel differs from ReadRows", name)
						}
						// Each expansion alone writes exactly the lanes of the rows.
						for _, path := range []string{"go", "fast"} {
							got := slices.Repeat([]float32{-7}, n)
							switch path {
							case "go":
								p.readPanelGo(got, b.lo, b.rows, b.k0, b.kc, stride)
							case "fast":
								if b.kc == 0 || !p.readPanelFast(got, b.lo, b.rows, b.k0, b.kc, stride) {
									continue
								}
								fast++
							}
							for k := 0; k < b.kc; k++ {
								for i := b.rows; i < stride; i++ {
									if got[k*stride+i] != -7 {
										t.Fatalf("%s: %s expansion wrote lane %d of column %d", name, path, i, k)
									}
									got[k*stride+i] = 0
								}
							}
							if !slices.Equal(got[:b.kc*stride], want) || got[b.kc*stride] != -7 {
								t.Fatalf("%s: %s expansion differs from ReadRows", name, path)
							}
						}
					}
				}
			}
		}
	}
	if panelASM && fast == 0 {
		t.Error("the accelerated expansion never ran")
	}
}

func TestReadPanelNoAlloc(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	for _, bits := range widths {
		p := randomTensor(t, r, []int{64, 96}, bits, 0)
		dst := make([]float32, 90*32)
		if a := testing.AllocsPerRun(10, func() { p.ReadPanel(dst, 30, 32, 3, 90, 32) }); a != 0 {
			t.Errorf("bits %d: ReadPanel allocates %v times", bits, a)
		}
	}
}

func TestReadPanelPanics(t *testing.T) {
	r := rand.New(rand.NewPCG(25, 26))
	p := randomTensor(t, r, []int{8, 10}, 4, 0)
	for _, c := range []struct{ lo, rows, k0, kc, stride, n int }{
		{-1, 2, 0, 4, 4, 16},
		{7, 2, 0, 4, 4, 16},
		{0, 2, 8, 3, 4, 16},
		{0, 2, -1, 3, 4, 16},
		{0, 5, 0, 4, 4, 16}, // rows > stride
		{0, 2, 0, 4, 4, 15}, // dst too short
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("ReadPanel%v did not panic", c)
				}
			}()
			p.ReadPanel(make([]float32, c.n), c.lo, c.rows, c.k0, c.kc, c.stride)
		}()
	}
}

var _ weights.PanelReader = (*Tensor)(nil)
