//go:build amd64 && !purego

package cpu

import "golang.org/x/sys/cpu"

// The micro-kernels of gemm_amd64.s; see microKernel for the contract.
//
//go:noescape
func kern14x32(kc int, a, b, c []float32, ldc int, acc bool)

//go:noescape
func kern14x16(kc int, a, b, c []float32, ldc int, acc bool)

//go:noescape
func kern6x16(kc int, a, b, c []float32, ldc int, acc bool)

//go:noescape
func kern6x8(kc int, a, b, c []float32, ldc int, acc bool)

// asmLevels lists the accelerated levels this CPU supports, best first.
func asmLevels() []*isa {
	var levels []*isa
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512DQ {
		levels = append(levels, &isa{
			name: "avx512", mr: 14, nr: 32, kern: kern14x32, narrow: kern14x16,
			packRows: packRowsAVX512, packHalf: packHalfAVX512, vec: vecAVX512(),
		})
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		levels = append(levels, &isa{
			name: "avx2", mr: 6, nr: 16, kern: kern6x16, narrow: kern6x8,
			packRows: packRowsGo, vec: vecGo(),
		})
	}
	return levels
}

//go:noescape
func packT16(dst, src []float32, ld, rows, kc, stride int, mask uint16)

//go:noescape
func packT16h(dst []float32, src []byte, ld, rows, kc, stride int, mask uint16)

//go:noescape
func packT16b(dst []float32, src []byte, ld, rows, kc, stride int, mask uint16)

// packRowsAVX512 is packRowsGo with the transposition done 16x16 in
// registers.
func packRowsAVX512(dst, src []float32, ld, rows, k0, kc, stride int) {
	if kc == 0 || rows == 0 {
		packRowsGo(dst, src, ld, rows, k0, kc, stride)
		return
	}
	for r0 := 0; r0 < rows; r0 += 16 {
		n := min(16, rows-r0)
		// The slicing checks every element the assembly touches.
		s := src[r0*ld+k0 : (r0+n-1)*ld+k0+kc]
		d := dst[r0 : (kc-1)*stride+r0+n]
		packT16(d, s, ld, n, kc, stride, uint16(1)<<n-1)
	}
	clearLanes(dst, rows, kc, stride)
}

// clearLanes zeroes lanes rows..stride-1 of the kc columns of a panel.
func clearLanes(dst []float32, rows, kc, stride int) {
	if rows < stride {
		for k := 0; k < kc; k++ {
			clear(dst[k*stride+rows : k*stride+stride])
		}
	}
}

// packHalfAVX512 is packHalfGo with the conversion and transposition done
// 16x16 in registers.
func packHalfAVX512(dst []float32, src []byte, bf16 bool, ld, rows, k0, kc, stride int) {
	if kc == 0 || rows == 0 {
		packHalfGo(dst, src, bf16, ld, rows, k0, kc, stride)
		return
	}
	for r0 := 0; r0 < rows; r0 += 16 {
		n := min(16, rows-r0)
		s := src[2*(r0*ld+k0) : 2*((r0+n-1)*ld+k0+kc)]
		d := dst[r0 : (kc-1)*stride+r0+n]
		if bf16 {
			packT16b(d, s, ld, n, kc, stride, uint16(1)<<n-1)
		} else {
			packT16h(d, s, ld, n, kc, stride, uint16(1)<<n-1)
		}
	}
	clearLanes(dst, rows, kc, stride)
}
