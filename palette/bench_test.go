package palette

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pigment-sd/pigment/tensor"
)

// benchHalf returns n float16 bit patterns of N(0, std²) values.
func benchHalf(n int, std float64) []uint16 {
	r := rand.New(rand.NewPCG(1, 1))
	h := make([]uint16, n)
	for i := range h {
		h[i] = tensor.Float32ToFloat16(float32(r.NormFloat64() * std))
	}
	return h
}

// BenchmarkPalettizeLargest palettizes a tensor the size of SD 1.5's
// largest (1280x2560x3x3 = 29.5M values) at 6 bits with one table.
func BenchmarkPalettizeLargest(b *testing.B) {
	shape := []int{1280, 2560, 3, 3}
	h := benchHalf(tensor.NumElements(shape), 0.02)
	b.SetBytes(int64(2 * len(h)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := PalettizeF16("w", h, shape, Options{Bits: 6}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPalettizeLargestF32 is the same tensor given as float32.
func BenchmarkPalettizeLargestF32(b *testing.B) {
	shape := []int{1280, 2560, 3, 3}
	h := benchHalf(tensor.NumElements(shape), 0.02)
	v := make([]float32, len(h))
	for i, x := range h {
		v[i] = tensor.Float16ToFloat32(x)
	}
	b.SetBytes(int64(4 * len(v)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := Palettize("w", v, shape, Options{Bits: 6}); err != nil {
			b.Fatal(err)
		}
	}
}

// benchPoints returns about m sorted distinct normal values with counts.
func benchPoints(m int) (xs, ws []float64) {
	r := rand.New(rand.NewPCG(2, 2))
	set := map[float64]float64{}
	for len(set) < m {
		set[float64(r.NormFloat64())] += float64(1 + r.IntN(3000))
	}
	for x := range set {
		xs = append(xs, x)
	}
	slices.Sort(xs)
	for _, x := range xs {
		ws = append(ws, set[x])
	}
	return xs, ws
}

// BenchmarkKMeansDP runs the exact 1-D k-means programme on 20k weighted
// distinct values, for the table sizes of 4, 6 and 8 bits.
func BenchmarkKMeansDP(b *testing.B) {
	xs, ws := benchPoints(20000)
	for _, k := range []int{16, 64, 256} {
		b.Run(fmt.Sprintf("m=20000/k=%d", k), func(b *testing.B) {
			var s solver
			for b.Loop() {
				s.partition(xs, ws, k)
			}
		})
	}
}

// BenchmarkReadRows expands 16-row blocks (184 KB of float32, a tile that
// stays in L2) of a 1280x2880 tensor and
// reports ns per value.
func BenchmarkReadRows(b *testing.B) {
	rows, cols := 1280, 2880
	h := benchHalf(rows*cols, 0.02)
	for _, n := range []int{8, 6, 4, 3, 2, 1} {
		p, err := PalettizeF16("w", h, []int{rows, cols}, Options{Bits: n, Mode: Uniform, GroupSize: 32})
		if err != nil {
			b.Fatal(err)
		}
		dst := make([]float32, 16*cols)
		b.Run(fmt.Sprintf("bits=%d", n), func(b *testing.B) {
			b.SetBytes(int64(4 * len(dst)))
			i := 0
			for b.Loop() {
				lo := (i * 16) % rows
				p.ReadRows(dst, lo, lo+16)
				i++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(dst)), "ns/value")
		})
	}
}

// BenchmarkKMeansDivideAndConquer times the O(k m log m) variant (the test
// oracle) on the same input as BenchmarkKMeansDP, for comparison.
func BenchmarkKMeansDivideAndConquer(b *testing.B) {
	xs, ws := benchPoints(20000)
	for b.Loop() {
		dcPartition(xs, ws, 64)
	}
}

// sd15UNetShapes lists the shapes of the Stable Diffusion 1.5 UNet weights
// that are palettized by default (Linear and Conv weights with at least
// 2048 elements): 282 tensors, 859M values.
func sd15UNetShapes() [][]int {
	var out [][]int
	add := func(s ...int) {
		if tensor.NumElements(s) >= 2048 {
			out = append(out, s)
		}
	}
	resnet := func(in, outC int) {
		add(outC, in, 3, 3)
		add(outC, 1280)
		add(outC, outC, 3, 3)
		if in != outC {
			add(outC, in, 1, 1)
		}
	}
	attention := func(c int) {
		add(c, c, 1, 1) // proj_in
		for range 4 {
			add(c, c) // attn1 q, k, v, out
		}
		add(c, c)       // attn2 q
		add(c, 768)     // attn2 k
		add(c, 768)     // attn2 v
		add(c, c)       // attn2 out
		add(8*c, c)     // ff.net.0.proj (GEGLU)
		add(c, 4*c)     // ff.net.2
		add(c, c, 1, 1) // proj_out
	}
	add(320, 4, 3, 3)
	add(1280, 320)
	add(1280, 1280)
	chans := []int{320, 640, 1280, 1280}
	in := 320
	skips := []int{320}
	for b, c := range chans {
		for range 2 {
			resnet(in, c)
			if b < 3 {
				attention(c)
			}
			in = c
			skips = append(skips, c)
		}
		if b < 3 {
			add(c, c, 3, 3)
			skips = append(skips, c)
		}
	}
	resnet(1280, 1280)
	attention(1280)
	resnet(1280, 1280)
	for b := range 4 {
		c := chans[3-b]
		for range 3 {
			skip := skips[len(skips)-1]
			skips = skips[:len(skips)-1]
			resnet(in+skip, c)
			if b > 0 {
				attention(c)
			}
			in = c
		}
		if b < 3 {
			add(c, c, 3, 3)
		}
	}
	add(4, 320, 3, 3)
	return out
}

// BenchmarkPalettizeSD15UNet palettizes random float16 tensors of every
// SD 1.5 UNet weight shape at 6 bits, two tensors at a time (one per core
// here), as a converter would. The random values are drawn outside the
// timed section. It takes about a minute per iteration: run it with
// -benchtime 1x.
func BenchmarkPalettizeSD15UNet(b *testing.B) {
	shapes := sd15UNetShapes()
	total := 0
	for _, s := range shapes {
		total += tensor.NumElements(s)
	}
	b.Logf("%d tensors, %d values", len(shapes), total)
	for b.Loop() {
		var (
			mu   sync.Mutex
			busy time.Duration
			wg   sync.WaitGroup
		)
		next := make(chan []int)
		for w := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(w), 3))
				for s := range next {
					h := make([]uint16, tensor.NumElements(s))
					std := 1 / math.Sqrt(float64(len(h)/s[0]))
					for i := range h {
						h[i] = tensor.Float32ToFloat16(float32(r.NormFloat64() * std))
					}
					t0 := time.Now()
					if _, err := PalettizeF16("w", h, s, Options{Bits: 6}); err != nil {
						b.Error(err)
					}
					d := time.Since(t0)
					mu.Lock()
					busy += d
					mu.Unlock()
				}
			}()
		}
		for _, s := range shapes {
			next <- s
		}
		close(next)
		wg.Wait()
		b.ReportMetric(busy.Seconds()/2, "palettize-s/core")
	}
}
