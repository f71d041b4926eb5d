package palette

import (
	"errors"
	"fmt"
	"math"

	"github.com/pigment-sd/pigment/tensor"
	"github.com/pigment-sd/pigment/weights"
)

// Tensor is a palettized weight: n-bit indices into look-up tables, one
// table per group of consecutive output channels (rows along axis 0). It
// implements weights.Tensor and weights.ByteSizer.
//
// A Tensor is immutable once built and safe for concurrent ReadRows.
type Tensor struct {
	shape     []int
	bits      int
	groupSize int // as given: 0 for one table for the whole tensor
	rows      int // Shape[0]
	rowSize   int // values per row
	perGroup  int // rows per group
	groups    int
	lut       []float32
	lutDType  tensor.DType
	indices   []byte
}

var (
	_ weights.Tensor      = (*Tensor)(nil)
	_ weights.ByteSizer   = (*Tensor)(nil)
	_ weights.PanelReader = (*Tensor)(nil)
)

// layout checks shape, bits and group size and returns rows, row size,
// rows per group and the number of groups.
func layout(shape []int, bits, groupSize int) (rows, rowSize, perGroup, groups int, err error) {
	if !ValidBits(bits) {
		return 0, 0, 0, 0, fmt.Errorf("%d bits is not supported (%s)", bits, WidthsText)
	}
	if len(shape) == 0 {
		return 0, 0, 0, 0, errors.New("a scalar cannot be palettized")
	}
	n := 1
	for _, d := range shape {
		if d <= 0 {
			return 0, 0, 0, 0, fmt.Errorf("shape %v is empty or invalid", shape)
		}
		if n > math.MaxInt32/d {
			return 0, 0, 0, 0, fmt.Errorf("shape %v has more than 2^31 elements", shape)
		}
		n *= d
	}
	if groupSize < 0 {
		return 0, 0, 0, 0, fmt.Errorf("group size %d is negative", groupSize)
	}
	rows = shape[0]
	rowSize = n / rows
	perGroup = rows
	if groupSize > 0 && groupSize < rows {
		perGroup = groupSize
	}
	groups = (rows + perGroup - 1) / perGroup
	return rows, rowSize, perGroup, groups, nil
}

// New builds a Tensor from stored parts, as a reader of a pigment package
// does. lut holds groups*2^bits entries (group-major), where groups is 1
// when groupSize is 0 and ceil(shape[0]/groupSize) otherwise; lutDType is
// the dtype the table is stored in (F16 or F32; with F16 every entry must be
// exactly a float16 value). indices holds PackedLen(elements, bits) packed
// bytes; padding bits are ignored. lut and indices are used in place, not
// copied, and must not change afterwards.
//
// Every size is checked, so ReadRows on the result stays in bounds whatever
// the stored bytes are.
func New(shape []int, bits, groupSize int, lut []float32, lutDType tensor.DType, indices []byte) (*Tensor, error) {
	rows, rowSize, perGroup, groups, err := layout(shape, bits, groupSize)
	if err != nil {
		return nil, fmt.Errorf("palette: %w", err)
	}
	if lutDType != tensor.F16 && lutDType != tensor.F32 {
		return nil, fmt.Errorf("palette: table dtype %s is not F16 or F32", lutDType)
	}
	if want := groups << bits; len(lut) != want {
		return nil, fmt.Errorf("palette: table has %d entries, want %d (%d groups of %d)", len(lut), want, groups, 1<<bits)
	}
	for i, v := range lut {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("palette: table entry %d is %v", i, v)
		}
		if lutDType == tensor.F16 && tensor.Float16ToFloat32(tensor.Float32ToFloat16(v)) != v {
			return nil, fmt.Errorf("palette: table entry %d (%v) is not a float16 value", i, v)
		}
	}
	if want := PackedLen(rows*rowSize, bits); len(indices) != want {
		return nil, fmt.Errorf("palette: %d index bytes for %d %d-bit indices, want %d", len(indices), rows*rowSize, bits, want)
	}
	return &Tensor{
		shape: append([]int(nil), shape...), bits: bits, groupSize: groupSize,
		rows: rows, rowSize: rowSize, perGroup: perGroup, groups: groups,
		lut: lut, lutDType: lutDType, indices: indices,
	}, nil
}

// Shape is the logical shape of the weight.
func (p *Tensor) Shape() []int { return p.shape }

// DType is weights.Palettized.
func (p *Tensor) DType() tensor.DType { return weights.Palettized }

// Bits is the index width n.
func (p *Tensor) Bits() int { return p.bits }

// GroupSize is the number of output channels sharing one table, or 0 when
// the whole tensor shares one table.
func (p *Tensor) GroupSize() int { return p.groupSize }

// Groups is the number of tables.
func (p *Tensor) Groups() int { return p.groups }

// LUT returns the tables, Groups() of 2^Bits() entries each, group-major,
// holding the values as stored (float16 values when LUTDType is F16). The
// slice is shared: do not modify it.
func (p *Tensor) LUT() []float32 { return p.lut }

// LUTDType is the storage dtype of the tables: F16 or F32.
func (p *Tensor) LUTDType() tensor.DType { return p.lutDType }

// Indices returns the packed indices (see the package doc for the bit
// order). The slice is shared: do not modify it.
func (p *Tensor) Indices() []byte { return p.indices }

// StorageBytes is the stored size: the packed indices plus the tables.
func (p *Tensor) StorageBytes() int64 {
	return int64(len(p.indices)) + int64(len(p.lut)*p.lutDType.Size())
}

// ReadRows writes rows [lo, hi) (output channels along axis 0), expanded
// through their group's table, as float32 into dst, which must hold
// (hi-lo)*RowSize values. It never allocates. It panics, like a slice
// expression, if 0 <= lo <= hi <= Shape()[0] does not hold or dst is too
// short.
func (p *Tensor) ReadRows(dst []float32, lo, hi int) {
	if lo < 0 || hi > p.rows || lo > hi || len(dst) < (hi-lo)*p.rowSize {
		panic(fmt.Sprintf("palette: ReadRows [%d, %d) of %d rows into %d values (row size %d)", lo, hi, p.rows, len(dst), p.rowSize))
	}
	k := 1 << p.bits
	out := 0
	for r := lo; r < hi; {
		g := r / p.perGroup
		end := min(hi, (g+1)*p.perGroup)
		n := (end - r) * p.rowSize
		decode(dst[out:out+n], p.indices, p.bits, r*p.rowSize, p.lut[g*k:(g+1)*k])
		out += n
		r = end
	}
}

// ReadPanel implements weights.PanelReader: it expands columns
// [k0, k0+kc) of rows [lo, lo+rows) through their groups' tables straight
// into the transposed layout dst[k*stride+r] and zeroes lanes
// rows..stride-1. It never allocates. It panics, like a slice expression,
// if the block is outside the tensor, rows > stride or dst is too short.
func (p *Tensor) ReadPanel(dst []float32, lo, rows, k0, kc, stride int) {
	if lo < 0 || rows < 0 || lo+rows > p.rows || k0 < 0 || kc < 0 || k0+kc > p.rowSize || rows > stride || len(dst) < kc*stride {
		panic(fmt.Sprintf("palette: ReadPanel of rows [%d, %d) columns [%d, %d) of a %dx%d tensor into %d values (stride %d)",
			lo, lo+rows, k0, k0+kc, p.rows, p.rowSize, len(dst), stride))
	}
	if kc == 0 {
		return
	}
	dst = dst[:kc*stride]
	if !p.readPanelFast(dst, lo, rows, k0, kc, stride) {
		p.readPanelGo(dst, lo, rows, k0, kc, stride)
	}
	if rows < stride {
		for c := 0; c < kc; c++ {
			clear(dst[c*stride+rows : c*stride+stride])
		}
	}
}

// readPanelGo is ReadPanel's portable expansion, without the zeroing of
// lanes rows..stride-1: rows are decoded a stretch at a time into a
// buffer on the stack and scattered into their lanes.
func (p *Tensor) readPanelGo(dst []float32, lo, rows, k0, kc, stride int) {
	k := 1 << p.bits
	var buf [256]float32
	for r := 0; r < rows; r++ {
		g := (lo + r) / p.perGroup
		lut := p.lut[g*k : (g+1)*k]
		start := (lo+r)*p.rowSize + k0
		for c := 0; c < kc; c += len(buf) {
			n := min(len(buf), kc-c)
			decode(buf[:n], p.indices, p.bits, start+c, lut)
			d := dst[c*stride+r:]
			for i, v := range buf[:n] {
				d[i*stride] = v
			}
		}
	}
}
