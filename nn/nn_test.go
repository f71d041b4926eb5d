package nn

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/pigment-sd/pigment/kernels"
	"github.com/pigment-sd/pigment/kernels/ref"
	"github.com/pigment-sd/pigment/tensor"
	"github.com/pigment-sd/pigment/weights"
)

func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

func newCtx() *Ctx { return NewCtx(ref.New(), Options{}) }

func closeTo(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if d := math.Abs(float64(got[i] - want[i])); !(d <= tol) {
			t.Fatalf("%s[%d] = %g, want %g", what, i, got[i], want[i])
		}
	}
}

func TestLinear(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	w, b, x := randSlice(r, 4*3), randSlice(r, 4), randSlice(r, 2*3)
	for _, tc := range []struct {
		name  string
		shape []int
		conv  bool
	}{
		{"linear weight", []int{4, 3}, false},
		{"1x1 conv weight", []int{4, 3, 1, 1}, false},
		{"conv1x1 layer, conv weight", []int{4, 3, 1, 1}, true},
		{"conv1x1 layer, linear weight", []int{4, 3}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := weights.Map{"l.weight": weights.NewDense(w, tc.shape...), "l.bias": weights.NewDense(b, 4)}
			newL := NewLinear
			if tc.conv {
				newL = NewConv1x1
			}
			l, err := newL(src, "l", 3, 4, true)
			if err != nil {
				t.Fatal(err)
			}
			c := newCtx()
			y := l.Forward(c, tensor.FromData(x, 2, 3))
			want := make([]float32, 8)
			for m := 0; m < 2; m++ {
				for n := 0; n < 4; n++ {
					s := b[n]
					for k := 0; k < 3; k++ {
						s += x[m*3+k] * w[n*3+k]
					}
					want[m*4+n] = s
				}
			}
			if !tensor.SameShape(y.Shape, []int{2, 4}) {
				t.Fatalf("shape %v", y.Shape)
			}
			closeTo(t, "y", y.Data, want, 1e-5)
		})
	}
}

func TestLookupErrors(t *testing.T) {
	src := weights.Map{
		"a.weight": weights.NewDense(make([]float32, 12), 4, 3),
		"a.bias":   weights.NewDense(make([]float32, 3), 3),
		"c.weight": weights.NewDense(make([]float32, 12), 4, 3),
	}
	for _, tc := range []struct {
		name string
		err  func() error
		want string
	}{
		{"missing weight", func() error { _, err := NewLinear(src, "b", 3, 4, true); return err }, "weight b.weight: missing"},
		{"missing bias", func() error { _, err := NewLinear(src, "c", 3, 4, true); return err }, "weight c.bias: missing"},
		{"bad bias", func() error { _, err := NewLinear(src, "a", 3, 4, true); return err }, "weight a.bias: shape [3], want [4]"},
		{"bad weight", func() error { _, err := NewLinear(src, "a", 4, 3, false); return err },
			"weight a.weight: shape [4,3], want [3,4] or [3,4,1,1]"},
		{"conv", func() error { _, err := NewConv2d(src, "a", 3, 4, 3, 1, 1); return err },
			"weight a.weight: shape [4,3], want [4,3,3,3]"},
		{"norm", func() error { _, err := NewGroupNorm(src, "x", 1, 4, 1e-5); return err }, "weight x.weight: missing"},
	} {
		err := tc.err()
		var me *weights.MissingError
		if !errors.As(err, &me) || err.Error() != tc.want {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}

// naiveConv is PyTorch's Conv2d with padding (top, left, bottom, right).
func naiveConv(x []float32, n, c, h, w int, wt, b []float32, oc, k, stride, pt, pl, pb, pr int) ([]float32, int, int) {
	oh := (h+pt+pb-k)/stride + 1
	ow := (w+pl+pr-k)/stride + 1
	out := make([]float32, n*oc*oh*ow)
	for bi := 0; bi < n; bi++ {
		for o := 0; o < oc; o++ {
			for y := 0; y < oh; y++ {
				for xx := 0; xx < ow; xx++ {
					s := float64(b[o])
					for ci := 0; ci < c; ci++ {
						for ky := 0; ky < k; ky++ {
							for kx := 0; kx < k; kx++ {
								iy, ix := y*stride-pt+ky, xx*stride-pl+kx
								if iy >= 0 && iy < h && ix >= 0 && ix < w {
									s += float64(x[((bi*c+ci)*h+iy)*w+ix]) * float64(wt[((o*c+ci)*k+ky)*k+kx])
								}
							}
						}
					}
					out[((bi*oc+o)*oh+y)*ow+xx] = float32(s)
				}
			}
		}
	}
	return out, oh, ow
}

// TestDownsample checks both paddings: 1 on every side (UNet) and
// (0, 1, 0, 1) (VAE encoder), on even and odd sizes.
func TestDownsample(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const ch = 2
	wt, b := randSlice(r, ch*ch*9), randSlice(r, ch)
	src := weights.Map{"d.conv.weight": weights.NewDense(wt, ch, ch, 3, 3), "d.conv.bias": weights.NewDense(b, ch)}
	for _, tc := range []struct {
		padding, h, w, oh, ow int
	}{
		{1, 8, 6, 4, 3}, {1, 7, 5, 4, 3}, {0, 8, 6, 4, 3}, {0, 7, 5, 3, 2},
	} {
		d, err := NewDownsample2D(src, "d", ch, tc.padding)
		if err != nil {
			t.Fatal(err)
		}
		x := randSlice(r, 2*ch*tc.h*tc.w)
		c := newCtx()
		y := d.Forward(c, tensor.FromData(x, 2, ch, tc.h, tc.w))
		pb := 1
		pt := tc.padding
		want, oh, ow := naiveConv(x, 2, ch, tc.h, tc.w, wt, b, ch, 3, 2, pt, pt, pb, pb)
		if oh != tc.oh || ow != tc.ow || !tensor.SameShape(y.Shape, []int{2, ch, oh, ow}) {
			t.Fatalf("padding %d %dx%d: shape %v, want %dx%d", tc.padding, tc.h, tc.w, y.Shape, tc.oh, tc.ow)
		}
		closeTo(t, "downsample", y.Data, want, 1e-4)
	}
}

func TestConvAddBias(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	wt, b := randSlice(r, 3*2*9), randSlice(r, 3)
	src := weights.Map{"c.weight": weights.NewDense(wt, 3, 2, 3, 3), "c.bias": weights.NewDense(b, 3)}
	conv, err := NewConv2d(src, "c", 2, 3, 3, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	x := tensor.FromData(randSlice(r, 2*2*4*5), 2, 2, 4, 5)
	extra := randSlice(r, 2*3)
	c := newCtx()
	got := conv.ForwardAddBias(c, x, extra)
	want := conv.Forward(c, x)
	for i := range want.Data {
		want.Data[i] += extra[i/20]
	}
	closeTo(t, "conv+bias", got.Data, want.Data, 1e-5)
}

// TestNearestIndex checks PyTorch's interpolate(size=...) nearest rule
// (aten's nearest_idx: floor(i·(in/out)) in float32, clamped to in-1;
// exact halving for 2x), worked out by hand.
func TestNearestIndex(t *testing.T) {
	for _, tc := range []struct {
		in, out int
		want    []int
	}{
		{3, 6, []int{0, 0, 1, 1, 2, 2}},
		{3, 7, []int{0, 0, 0, 1, 1, 2, 2}},
		{4, 7, []int{0, 0, 1, 1, 2, 2, 3}},
		{5, 3, []int{0, 1, 3}},
		{4, 4, []int{0, 1, 2, 3}},
	} {
		got := nearestIndex(tc.in, tc.out)
		if !tensor.SameShape(got, tc.want) {
			t.Errorf("nearestIndex(%d, %d) = %v, want %v", tc.in, tc.out, got, tc.want)
		}
	}
	c := newCtx()
	x := tensor.FromData([]float32{1, 2, 3, 4, 5, 6}, 1, 1, 2, 3)
	y := ResizeNearest(c, x, 3, 7)
	want := []float32{1, 1, 1, 2, 2, 3, 3, 1, 1, 1, 2, 2, 3, 3, 4, 4, 4, 5, 5, 6, 6}
	closeTo(t, "resize", y.Data, want, 0)
	y = ResizeNearest(c, x, 4, 6)
	want = []float32{1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 4, 4, 5, 5, 6, 6}
	closeTo(t, "upsample2x", y.Data, want, 0)
}

func TestLayouts(t *testing.T) {
	c := newCtx()
	x := tensor.New(2, 3, 2, 2)
	for i := range x.Data {
		x.Data[i] = float32(i)
	}
	cl := ToChannelsLast(c, x)
	// [b=1, position 2 (y=1,x=0), channel 1] = x[1,1,1,0]
	if got, want := cl.Data[(1*4+2)*3+1], x.Data[((1*3+1)*2+1)*2+0]; got != want {
		t.Errorf("channels-last value %g, want %g", got, want)
	}
	back := ToChannelsFirst(c, cl, 2, 2)
	closeTo(t, "round trip", back.Data, x.Data, 0)

	a := tensor.FromData([]float32{1, 2, 3, 4}, 2, 1, 1, 2)
	b := tensor.FromData([]float32{5, 6, 7, 8, 9, 10, 11, 12}, 2, 2, 1, 2)
	cat := ConcatChannels(c, a, b)
	closeTo(t, "concat", cat.Data, []float32{1, 2, 5, 6, 7, 8, 3, 4, 9, 10, 11, 12}, 0)
}

// TestAttention compares the multi-head layer with a direct computation,
// in both modes and with a chunk that splits the queries.
func TestAttention(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const dq, dc, heads, hd, lq, lk, bsz = 6, 5, 2, 4, 7, 3, 2
	inner := heads * hd
	src := weights.Map{
		"a.to_q.weight":     weights.NewDense(randSlice(r, inner*dq), inner, dq),
		"a.to_k.weight":     weights.NewDense(randSlice(r, inner*dc), inner, dc),
		"a.to_v.weight":     weights.NewDense(randSlice(r, inner*dc), inner, dc),
		"a.to_out.0.weight": weights.NewDense(randSlice(r, dq*inner), dq, inner),
		"a.to_out.0.bias":   weights.NewDense(randSlice(r, dq), dq),
	}
	a, err := NewAttention(src, "a", dq, dc, heads, hd, false)
	if err != nil {
		t.Fatal(err)
	}
	x := tensor.FromData(randSlice(r, bsz*lq*dq), bsz, lq, dq)
	ctxT := tensor.FromData(randSlice(r, bsz*lk*dc), bsz, lk, dc)

	c := newCtx()
	q, k, v := a.Q.Forward(c, x), a.K.Forward(c, ctxT), a.V.Forward(c, ctxT)
	o := tensor.New(bsz, lq, inner)
	for b := 0; b < bsz; b++ {
		for h := 0; h < heads; h++ {
			for i := 0; i < lq; i++ {
				s := make([]float64, lk)
				var mx, sum float64 = math.Inf(-1), 0
				for j := range s {
					for d := 0; d < hd; d++ {
						s[j] += float64(q.Data[(b*lq+i)*inner+h*hd+d]) * float64(k.Data[(b*lk+j)*inner+h*hd+d])
					}
					s[j] /= math.Sqrt(hd)
					mx = math.Max(mx, s[j])
				}
				for j := range s {
					s[j] = math.Exp(s[j] - mx)
					sum += s[j]
				}
				for d := 0; d < hd; d++ {
					var acc float64
					for j := range s {
						acc += s[j] / sum * float64(v.Data[(b*lk+j)*inner+h*hd+d])
					}
					o.Data[(b*lq+i)*inner+h*hd+d] = float32(acc)
				}
			}
		}
	}
	want := a.Out.Forward(c, o)
	for _, mode := range []kernels.AttentionMode{kernels.AttentionChunked, kernels.AttentionOriginal} {
		c := NewCtx(ref.New(), Options{Attention: mode, Chunk: 3})
		got := a.Forward(c, x, ctxT)
		closeTo(t, mode.String(), got.Data, want.Data, 1e-5)
		c.Free(got)
		if st := c.Arena.Stats(); st.InUse != 0 {
			t.Errorf("%s: Forward left %d bytes in use besides its output", mode, st.InUse)
		}
	}
}

func TestArena(t *testing.T) {
	a := NewArena()
	x := a.Get(100)
	y := a.Get(100)
	if len(x) != 100 || &x[0] == &y[0] {
		t.Fatal("Get returned a bad or shared buffer")
	}
	a.Put(x)
	z := a.Get(60) // reuses x (100 <= 4·60)
	if &z[0] != &x[0] || len(z) != 60 {
		t.Error("Get(60) did not reuse the free buffer of 100")
	}
	w := a.Get(10) // 100 > 4·10: a new buffer
	st := a.Stats()
	if st.Allocs != 3 || st.InUse != 4*(100+100+10) || st.Peak != st.InUse || st.Held != 4*210 {
		t.Errorf("stats %+v", st)
	}
	a.Put(z)
	a.Put(y)
	a.Put(w)
	if st := a.Stats(); st.InUse != 0 || st.Held != 4*210 {
		t.Errorf("after Put: %+v", st)
	}
	a.Release()
	if st := a.Stats(); st.Held != 0 {
		t.Errorf("after Release: %+v", st)
	}
	if a.Get(0) != nil {
		t.Error("Get(0) != nil")
	}
	a.Put(nil)

	defer func() {
		if recover() == nil {
			t.Error("double Put did not panic")
		}
	}()
	b := a.Get(5)
	a.Put(b)
	a.Put(b)
}

func TestRecordShapes(t *testing.T) {
	shapes, err := RecordShapes(func(src weights.Source) error {
		if _, err := NewResnetBlock2D(src, "r", 32, 64, 128, 32, 1e-5); err != nil {
			return err
		}
		l, err := NewConv1x1(src, "p", 64, 64, true)
		if err != nil {
			return err
		}
		if got := weights.ReadAll(l.Weight); len(got) != 64*64 || got[7] != 0 {
			t.Errorf("recorded weight reads %d values", len(got))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]int{
		"r.norm1.weight": {32}, "r.norm1.bias": {32}, "r.conv1.weight": {64, 32, 3, 3}, "r.conv1.bias": {64},
		"r.time_emb_proj.weight": {64, 128}, "r.time_emb_proj.bias": {64},
		"r.norm2.weight": {64}, "r.norm2.bias": {64}, "r.conv2.weight": {64, 64, 3, 3}, "r.conv2.bias": {64},
		"r.conv_shortcut.weight": {64, 32, 1, 1}, "r.conv_shortcut.bias": {64},
		"p.weight": {64, 64, 1, 1}, "p.bias": {64},
	}
	if len(shapes) != len(want) {
		t.Errorf("%d shapes, want %d: %v", len(shapes), len(want), shapes)
	}
	for n, s := range want {
		if !tensor.SameShape(shapes[n], s) {
			t.Errorf("%s: %v, want %v", n, shapes[n], s)
		}
	}
}
