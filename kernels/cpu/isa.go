package cpu

import (
	"fmt"
	"runtime"
)

// microKernel computes one mr x nr tile of C from packed panels:
//
//	for i < mr, j < nr: c[i*ldc+j] (+)= Σ_k a[k*mr+i] · b[k*bs+j]
//
// where bs is the panel stride the kernel was built for (nr, or nr/2 for
// the narrow kernel). With acc false the tile is overwritten, with acc true
// it is added to.
type microKernel func(kc int, a, b, c []float32, ldc int, acc bool)

// isa is one instruction-set level: the GEMM micro-kernels and the vector
// routines the other operations use. Exactly one is chosen in New.
type isa struct {
	name   string
	mr, nr int
	kern   microKernel // mr x nr tile, b panels of stride nr
	narrow microKernel // mr x nr/2 tile, b panels of stride nr/2; may be nil
	// packRows packs rows of a row-major matrix into a panel, see
	// packRowsGo.
	packRows func(dst, src []float32, ld, rows, k0, kc, stride int)
	// packHalf packs rows of float16 (bfloat16 with bf16) bytes, see
	// packHalfGo; nil when the level has no faster way than ReadRows.
	packHalf func(dst []float32, src []byte, bf16 bool, ld, rows, k0, kc, stride int)
	vec      vecOps
}

// vecOps are the vector routines behind the non-GEMM operations. Each has
// a portable Go version (vec_generic.go) and may have an assembly twin.
type vecOps struct {
	// max returns the largest element of x (len(x) > 0).
	max func(x []float32) float32
	// expSub replaces x[i] by exp(x[i]-m) and returns the sum of the new
	// values, accumulated in float64.
	expSub func(x []float32, m float32) float64
	// scale: dst[i] = x[i]·s. dst may equal x.
	scale func(dst, x []float32, s float32)
	// sigmoidMul: dst[i] = x[i] / (1 + exp(-alpha·x[i])) (SiLU with alpha 1,
	// QuickGELU with alpha 1.702).
	sigmoidMul func(dst, x []float32, alpha float32)
	// sum returns Σ x[i] in float64.
	sum func(x []float32) float64
	// sqDev returns Σ (x[i]-mean)² in float64.
	sqDev func(x []float32, mean float64) float64
	// normScalar: dst[i] = float32((x[i]-mean)·inv)·g + b.
	normScalar func(dst, x []float32, mean, inv float64, g, b float32)
	// normVec: dst[i] = float32((x[i]-mean)·inv)·g[i] + b[i].
	normVec func(dst, x []float32, mean, inv float64, g, b []float32)
	// gelu: dst[i] = x[i]·(1+erf(x[i]/√2))/2.
	gelu func(dst, x []float32)
	// geglu: dst[i] = val[i]·GELU(gate[i]).
	geglu func(dst, val, gate []float32)
	// add: dst = a + b.
	add func(dst, a, b []float32)
	// colMax scales the rows x nr block s by sc in place and folds it into
	// m (nr running column maxima).
	colMax func(s []float32, rows, nr int, sc float32, m []float32)
	// colExp replaces s[r*nr+j] by exp(s[r*nr+j]-m[j]) and adds the new
	// values to sum[j].
	colExp func(s []float32, rows, nr int, m []float32, sum []float64)
}

// isaGo is the portable level. Its tile shape suits the architecture's
// register count: 4x2 on amd64 and 386 (16 or 8 vector registers), 4x4
// elsewhere (arm64, ppc64le, riscv64 and s390x have 32).
func isaGo() *isa {
	if runtime.GOARCH == "amd64" || runtime.GOARCH == "386" {
		return isaGoShape(4, 2)
	}
	return isaGoShape(4, 4)
}

func isaGoShape(mr, nr int) *isa {
	kern := kernGo4x4
	if nr == 2 {
		kern = kernGo4x2
	}
	return &isa{name: "go", mr: mr, nr: nr, kern: kern, packRows: packRowsGo, vec: vecGo()}
}

// isaFor picks the level for this CPU: the best accelerated one unless
// noasm is set, the portable one otherwise.
func isaFor(noasm bool) *isa {
	if !noasm {
		if levels := asmLevels(); len(levels) > 0 {
			return levels[0]
		}
	}
	return isaGo()
}

// allLevels lists every level this CPU can run, best first, ending with
// the portable ones (both tile shapes, whichever this architecture
// prefers first). Tests run the conformance suite on each.
func allLevels() []*isa {
	g := isaGo()
	other := isaGoShape(4, 6-g.nr)
	other.name = "go4x" + fmt.Sprint(other.nr)
	return append(asmLevels(), g, other)
}
