//go:build amd64 && !purego

package palette

import (
	"os"
	"strconv"

	"golang.org/x/sys/cpu"
)

// panelASM reports whether ReadPanel uses the AVX-512 expansion
// (panel_amd64.s): the CPU has AVX-512 F and BW and the environment
// variable PIGMENT_NOASM does not turn assembly off. It is fixed at start.
var panelASM = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && !noASM()

func noASM() bool {
	v, _ := strconv.ParseBool(os.Getenv("PIGMENT_NOASM"))
	return v
}

// panelConsts is what expandT16 needs besides the data; its layout is
// mirrored by the C_ offsets of panel_amd64.s (TestPanelConstsLayout).
type panelConsts struct {
	ctl   [64]byte   // byte shuffle: lane t gets the two bytes holding index t
	shift [16]uint32 // lane t: bit offset of index t in those bytes
	and   uint32     // (1 << bits) - 1
	bit5  uint32     // 32: selects the upper half of a 64-entry table
	kind  uint32     // table look-up: 0 permute (<= 16 entries), 1 two permutes (64), 2 gather (256)
	full  uint32     // byte mask of the index bytes of 16 columns
	tail  uint32     // byte mask of the index bytes of the last kc%16 columns
	step  uint32     // index bytes of 16 columns (2·bits)
	rows  uint32     // lane mask of the rows of the call
	_     [36]byte
	lut   [256]float32 // the table, zero-padded to at least 16 entries
}

//go:noescape
func expandT16(dst []float32, src []byte, rowBytes, rows, kc, stride int, c *panelConsts, scratch *[256]float32)

// setup fills the extraction constants for indices of the given width whose
// first index starts off bits into the first byte, and the byte masks for
// kc columns.
func (c *panelConsts) setup(bits, off, kc int) {
	for t := range 16 {
		o := off + t*bits
		b := o / 8
		c.ctl[4*t] = byte(b)
		c.ctl[4*t+1] = 0x80
		if b+1 < 16 {
			c.ctl[4*t+1] = byte(b + 1)
		}
		c.ctl[4*t+2], c.ctl[4*t+3] = 0x80, 0x80
		c.shift[t] = uint32(o % 8)
	}
	c.and = 1<<bits - 1
	c.bit5 = 32
	switch {
	case bits <= 4:
		c.kind = 0
	case bits <= 6:
		c.kind = 1
	default:
		c.kind = 2
	}
	c.full = 1<<((off+16*bits+7)/8) - 1
	c.tail = 1<<((off+kc%16*bits+7)/8) - 1
	c.step = uint32(2 * bits)
}

// readPanelFast is ReadPanel's expansion on AVX-512 (lanes rows..stride-1
// are left to the caller). It reports false, having written nothing, when
// the CPU lacks AVX-512 or the rows do not all start at the same bit
// offset within a byte.
func (p *Tensor) readPanelFast(dst []float32, lo, rows, k0, kc, stride int) bool {
	if !panelASM || (rows > 1 && p.rowSize*p.bits%8 != 0) {
		return false
	}
	var c panelConsts
	var scratch [256]float32
	bits := p.bits
	c.setup(bits, (lo*p.rowSize+k0)*bits%8, kc)
	rowBytes := p.rowSize * bits / 8
	k := 1 << bits
	group := -1
	for r := 0; r < rows; {
		g := (lo + r) / p.perGroup
		n := min(16, rows-r, (g+1)*p.perGroup-(lo+r))
		if g != group {
			copy(c.lut[:], p.lut[g*k:(g+1)*k])
			group = g
		}
		start := ((lo+r)*p.rowSize + k0) * bits / 8
		end := (((lo+r+n-1)*p.rowSize+k0+kc)*bits + 7) / 8
		c.rows = 1<<n - 1
		// The slicing checks every element and byte the assembly touches.
		expandT16(dst[r:(kc-1)*stride+r+n], p.indices[start:end], rowBytes, n, kc, stride, &c, &scratch)
		r += n
	}
	return true
}
