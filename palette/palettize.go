package palette

import (
	"fmt"
	"math"
	"slices"

	"github.com/pigment-sd/pigment/parallel"
	"github.com/pigment-sd/pigment/tensor"
)

// Mode chooses how the table of a group is built.
type Mode string

// The palettization modes.
const (
	// KMeans uses the globally optimal 1-D k-means centroids of the
	// group's (float16-rounded) values. The empty Mode means KMeans.
	KMeans Mode = "kmeans"
	// Uniform uses 2^n evenly spaced levels from the group's minimum to
	// its maximum.
	Uniform Mode = "uniform"
	// Unique uses the group's distinct values themselves and fails when
	// there are more than 2^n of them: it is lossless.
	Unique Mode = "unique"
)

// Options configures Palettize.
type Options struct {
	// Bits is the index width n: 1, 2, 3, 4, 6 or 8 (2^n table entries).
	Bits int
	// Mode is KMeans (the default when empty), Uniform or Unique.
	Mode Mode
	// GroupSize is the number of consecutive output channels (rows along
	// axis 0) that share one table; 0 means one table for the whole
	// tensor. When it does not divide Shape[0], the last group is shorter.
	GroupSize int
	// TableF32 stores the tables as float32 instead of float16.
	TableF32 bool
	// Pool runs the work on its workers: the groups of a grouped tensor,
	// or the k-means programme of a single table. nil runs it on the
	// calling goroutine alone.
	Pool *parallel.Pool
}

// mode returns the mode, KMeans when empty, or an error if unknown.
func (o Options) mode() (Mode, error) {
	mode := o.Mode
	if mode == "" {
		mode = KMeans
	}
	switch mode {
	case KMeans, Uniform, Unique:
	default:
		return "", fmt.Errorf("unknown mode %q (kmeans, uniform or unique)", o.Mode)
	}
	return mode, nil // bits and group size are checked with the shape
}

// Palettize compresses the float32 weight values of the given shape.
// name is used in error messages only.
//
// KMeans and Uniform modes first round the values to float16, as Core ML
// does: the tables are built from, and the indices assigned to, the
// float16-rounded values. A value beyond the float16 range is an error.
// Unique mode works on the exact float32 values: with a float16 table
// (the default) every value must be a float16 value, otherwise set
// TableF32.
//
// A tensor holding NaN or Inf is refused. The result does not depend on
// the number of workers used (opt.Pool).
func Palettize(name string, values []float32, shape []int, opt Options) (*Tensor, error) {
	return palettize(name, source{f32: values}, len(values), shape, opt)
}

// PalettizeF16 is Palettize for weights stored as float16 bit patterns
// (as read from an F16 safetensors tensor), without converting the whole
// tensor to float32. Negative zero is treated as zero.
func PalettizeF16(name string, bits []uint16, shape []int, opt Options) (*Tensor, error) {
	return palettize(name, source{f16: bits, half: true}, len(bits), shape, opt)
}

// source is the tensor being compressed: float32 values or float16 bits.
type source struct {
	f32  []float32
	f16  []uint16
	half bool // f16 is the source
}

// chunk is the number of values converted at a time from float32.
const chunk = 4096

// halfBits returns the float16 bit patterns of values [lo, hi) of src,
// converting into buf (len chunk) when the source is float32; hi-lo <= chunk.
func (s source) halfBits(buf []uint16, lo, hi int) []uint16 {
	if s.half {
		return s.f16[lo:hi]
	}
	b := buf[:hi-lo]
	toHalfs(b, s.f32[lo:hi])
	return b
}

// toHalfs converts src to float16 bits as tensor.Float32ToFloat16 does
// (round to nearest even), with an inline fast path for values whose
// float16 is a normal number.
func toHalfs(dst []uint16, src []float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		u := math.Float32bits(v)
		abs := u & 0x7fffffff
		// 2^-14 (the least normal float16) <= |v| < 65520 (rounds to Inf).
		if abs-0x38800000 <= 0x477fefff-0x38800000 {
			x := abs - 0x38000000 // exponent bias 127 -> 15
			dst[i] = uint16(u>>16)&0x8000 | uint16((x+0xfff+(x>>13&1))>>13)
		} else {
			dst[i] = tensor.Float32ToFloat16(v)
		}
	}
}

func (s source) value(i int) float32 {
	if s.half {
		return tensor.Float16ToFloat32(s.f16[i])
	}
	return s.f32[i]
}

// edge is a group's part of a byte shared with the previous group, to be
// ORed into the packed indices once all groups are done.
type edge struct {
	at int
	b  byte
}

// job is one palettization: read-only inputs and per-group outputs.
type job struct {
	name     string
	src      source
	mode     Mode
	bits     int
	f16Table bool
	rowSize  int
	perGroup int
	rows     int
	groups   int
	lut      []float32
	indices  []byte
	edges    []edge
	errs     []error
}

// worker holds one goroutine's scratch buffers.
type worker struct {
	hist    [65536]uint32
	idx     [65536]uint8
	conv    [chunk]uint16
	small   [chunk]uint8
	keys    []uint16
	xs, ws  []float64
	assign  []uint8
	scratch []byte
	solver  solver
}

func palettize(name string, src source, n int, shape []int, opt Options) (*Tensor, error) {
	mode, err := opt.mode()
	if err != nil {
		return nil, fmt.Errorf("palettize %s: %w", name, err)
	}
	rows, rowSize, perGroup, groups, err := layout(shape, opt.Bits, opt.GroupSize)
	if err != nil {
		return nil, fmt.Errorf("palettize %s: %w", name, err)
	}
	if n != rows*rowSize {
		return nil, fmt.Errorf("palettize %s: %d values for shape %v", name, n, shape)
	}
	j := &job{
		name: name, src: src, mode: mode, bits: opt.Bits, f16Table: !opt.TableF32,
		rowSize: rowSize, perGroup: perGroup, rows: rows, groups: groups,
		lut:     make([]float32, groups<<opt.Bits),
		indices: make([]byte, PackedLen(n, opt.Bits)),
		edges:   make([]edge, groups),
		errs:    make([]error, groups),
	}
	if p := opt.Pool; p != nil && p.Size() > 1 && groups > 1 {
		workers := make([]*worker, p.Size())
		p.ForWorker(groups, func(w, g int) {
			if workers[w] == nil {
				workers[w] = new(worker)
			}
			j.errs[g] = j.group(workers[w], g)
		})
	} else {
		w := new(worker)
		w.solver.pool = opt.Pool
		for g := range groups {
			j.errs[g] = j.group(w, g)
		}
	}
	for _, err := range j.errs {
		if err != nil {
			return nil, err
		}
	}
	for _, e := range j.edges {
		j.indices[e.at] |= e.b
	}
	lutDType := tensor.F32
	if j.f16Table {
		lutDType = tensor.F16
	}
	return &Tensor{
		shape: append([]int(nil), shape...), bits: opt.Bits, groupSize: opt.GroupSize,
		rows: rows, rowSize: rowSize, perGroup: perGroup, groups: groups,
		lut: j.lut, lutDType: lutDType, indices: j.indices,
	}, nil
}

// group builds the table and packs the indices of group g.
func (j *job) group(w *worker, g int) error {
	lo := g * j.perGroup * j.rowSize
	hi := min(j.rows, (g+1)*j.perGroup) * j.rowSize
	k := 1 << j.bits
	lut := j.lut[g*k : (g+1)*k]
	bw, finish := j.writer(w, g, lo, hi)
	var err error
	if j.mode == Unique && !j.src.half {
		err = j.uniqueF32(w, lo, hi, lut, bw)
	} else {
		err = j.clustered(w, lo, hi, lut, bw)
	}
	if err != nil {
		return err
	}
	bw.flush()
	finish()
	return nil
}

// writer returns a bit writer for the indices [lo, hi) of group g, and a
// function to call once it is flushed. When the group starts inside a
// byte, that byte is shared with the previous group: the group is packed
// into scratch, its other bytes copied in place and the shared one
// recorded in j.edges[g], to be ORed in once every group is done. (The
// group's last byte may be shared with the next group too, but that group
// never stores to it.)
func (j *job) writer(w *worker, g, lo, hi int) (*bitWriter, func()) {
	n := j.bits
	startBit, endBit := lo*n, hi*n
	first, last := startBit/8, (endBit+7)/8
	shift := uint(startBit % 8)
	if shift == 0 {
		return &bitWriter{buf: j.indices[first:last], n: uint(n)}, func() {}
	}
	w.scratch = grow(w.scratch, last-first)
	clear(w.scratch)
	bw := &bitWriter{buf: w.scratch, n: uint(n)}
	bw.skip(shift)
	return bw, func() {
		j.edges[g] = edge{first, w.scratch[0]}
		copy(j.indices[first+1:last], w.scratch[1:])
	}
}

// clustered handles KMeans, Uniform and Unique on float16-rounded values.
func (j *job) clustered(w *worker, lo, hi int, lut []float32, bw *bitWriter) error {
	h := &w.hist
	for c := lo; c < hi; c += chunk {
		for _, b := range j.src.halfBits(w.conv[:], c, min(hi, c+chunk)) {
			h[b]++
		}
	}
	h[0] += h[0x8000]
	h[0x8000] = 0
	if err := j.checkFinite(w, lo, hi); err != nil {
		return err
	}
	// Distinct values in ascending order: negative patterns from the most
	// negative (0xfbff) up to 0x8001, then 0x0000 to 0x7bff.
	keys, xs, ws := w.keys[:0], w.xs[:0], w.ws[:0]
	collect := func(b int) {
		if c := h[b]; c != 0 {
			keys = append(keys, uint16(b))
			xs = append(xs, float64(tensor.Float16ToFloat32(uint16(b))))
			ws = append(ws, float64(c))
			h[b] = 0
		}
	}
	for b := 0xfbff; b > 0x8000; b-- {
		collect(b)
	}
	for b := 0; b < 0x7c00; b++ {
		collect(b)
	}
	w.keys, w.xs, w.ws = keys, xs, ws
	k := len(lut)
	m := len(xs)
	switch j.mode {
	case KMeans:
		cs, _ := means(xs, ws, w.solver.partition(xs, ws, k))
		for i := range lut {
			lut[i] = j.round(cs[min(i, len(cs)-1)])
		}
	case Uniform:
		a, b := xs[0], xs[m-1]
		for i := range lut {
			lut[i] = j.round(a + (b-a)*float64(i)/float64(k-1))
		}
		lut[k-1] = j.round(b)
	case Unique:
		if m > k {
			return fmt.Errorf("palettize %s: %d distinct values (float16), more than the %d a %d-bit unique table holds", j.name, m, k, j.bits)
		}
		for i := range lut {
			lut[i] = float32(xs[min(i, m-1)])
		}
	}
	w.assign = nearest(w.assign, xs, lut)
	for i, b := range keys {
		w.idx[b] = w.assign[i]
	}
	w.idx[0x8000] = w.idx[0]
	for c := lo; c < hi; c += chunk {
		bw.putMapped(j.src.halfBits(w.conv[:], c, min(hi, c+chunk)), &w.idx)
	}
	return nil
}

// checkFinite reports the first non-finite value of [lo, hi) if the
// histogram has any NaN or Inf pattern.
func (j *job) checkFinite(w *worker, lo, hi int) error {
	bad := false
	for b := 0x7c00; b < 0x8000 && !bad; b++ {
		bad = w.hist[b] != 0 || w.hist[b|0x8000] != 0
	}
	if !bad {
		return nil
	}
	clear(w.hist[:])
	for i := lo; i < hi; i++ {
		v := j.src.value(i)
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("palettize %s: value %d is %v; a weight must be finite", j.name, i, v)
		}
		if !j.src.half && math.IsInf(float64(tensor.Float16ToFloat32(tensor.Float32ToFloat16(v))), 0) {
			return fmt.Errorf("palettize %s: value %d (%v) is outside the float16 range", j.name, i, v)
		}
	}
	return fmt.Errorf("palettize %s: non-finite value", j.name)
}

// round converts a table value to its stored precision.
func (j *job) round(v float64) float32 {
	f := float32(v)
	if j.f16Table {
		f = tensor.Float16ToFloat32(tensor.Float32ToFloat16(f))
	}
	return f
}

// nearest returns, for each value of the ascending xs, the index of the
// nearest entry of the non-decreasing table lut; a value halfway between
// two entries takes the lower index, and equal entries resolve to the
// first of them.
func nearest(dst []uint8, xs []float64, lut []float32) []uint8 {
	dst = grow(dst, len(xs))
	next := func(p int) int { // first entry after the run of entries equal to lut[p]
		q := p + 1
		for q < len(lut) && lut[q] == lut[p] {
			q++
		}
		return q
	}
	p := 0 // first index of the largest entry <= x (0 if none)
	for i, x := range xs {
		q := next(p)
		for q < len(lut) && float64(lut[q]) <= x {
			p, q = q, next(q)
		}
		best := p
		if q < len(lut) && float64(lut[q])-x < x-float64(lut[p]) {
			best = q
		}
		dst[i] = uint8(best)
	}
	return dst
}

// uniqueF32 handles Unique mode on float32 values: exact, no rounding.
func (j *job) uniqueF32(w *worker, lo, hi int, lut []float32, bw *bitWriter) error {
	k := len(lut)
	seen := make(map[float32]struct{}, k+1)
	vals := j.src.f32[lo:hi]
	for i, v := range vals {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("palettize %s: value %d is %v; a weight must be finite", j.name, lo+i, v)
		}
		if _, ok := seen[v]; !ok {
			if len(seen) == k {
				return fmt.Errorf("palettize %s: more than %d distinct values, too many for a %d-bit unique table", j.name, k, j.bits)
			}
			seen[v] = struct{}{}
		}
	}
	d := make([]float32, 0, len(seen))
	for v := range seen {
		d = append(d, v)
	}
	slices.Sort(d)
	for i := range lut {
		v := d[min(i, len(d)-1)]
		if j.f16Table && tensor.Float16ToFloat32(tensor.Float32ToFloat16(v)) != v {
			return fmt.Errorf("palettize %s: value %v is not a float16 value, so a float16 unique table would lose it; use a float32 table", j.name, v)
		}
		lut[i] = v
	}
	for c := 0; c < len(vals); c += chunk {
		part := vals[c:min(len(vals), c+chunk)]
		out := w.small[:len(part)]
		for i, v := range part {
			a, b := 0, len(d)-1
			for a < b {
				mid := (a + b) / 2
				if d[mid] < v {
					a = mid + 1
				} else {
					b = mid
				}
			}
			out[i] = uint8(a)
		}
		bw.put(out)
	}
	return nil
}
