// Package ref is the plain-Go reference implementation of package kernels:
// straightforward loops, float64 accumulation where it is cheap, no
// parallelism. It is slow and obviously right; it is the oracle the fast
// implementations are tested against.
package ref

import (
	"math"
	"sync"

	"github.com/pigment-sd/pigment/kernels"
	"github.com/pigment-sd/pigment/parallel"
	"github.com/pigment-sd/pigment/weights"
)

// Kernels is the reference implementation. The zero value is ready to use.
type Kernels struct {
	once sync.Once
	pool *parallel.Pool
}

// New returns the reference kernels.
func New() *Kernels { return &Kernels{} }

var _ kernels.Kernels = (*Kernels)(nil)

// Pool implements kernels.Kernels: the reference kernels compute on the
// caller's goroutine alone, and so does their pool.
func (k *Kernels) Pool() *parallel.Pool {
	k.once.Do(func() { k.pool = parallel.New(1) })
	return k.pool
}

// Name implements kernels.Kernels.
func (*Kernels) Name() string { return "ref" }

// Linear implements kernels.Kernels.
func (*Kernels) Linear(dst, x []float32, M, K int, w weights.Tensor, bias []float32) {
	N := w.Shape()[0]
	wt := weights.ReadAll(w)
	for m := 0; m < M; m++ {
		xr := x[m*K : m*K+K]
		for n := 0; n < N; n++ {
			wr := wt[n*K : n*K+K]
			var s float64
			for k, v := range xr {
				s += float64(v) * float64(wr[k])
			}
			if bias != nil {
				s += float64(bias[n])
			}
			dst[m*N+n] = float32(s)
		}
	}
}

// MatMul implements kernels.Kernels.
func (*Kernels) MatMul(dst, a, b []float32, M, N, K int, transB bool) {
	for m := 0; m < M; m++ {
		for n := 0; n < N; n++ {
			var s float64
			for k := 0; k < K; k++ {
				var bv float32
				if transB {
					bv = b[n*K+k]
				} else {
					bv = b[k*N+n]
				}
				s += float64(a[m*K+k]) * float64(bv)
			}
			dst[m*N+n] = float32(s)
		}
	}
}

// Conv2D implements kernels.Kernels.
func (*Kernels) Conv2D(dst, x []float32, p kernels.Conv2D, w weights.Tensor, bias []float32) {
	wt := weights.ReadAll(w)
	oh, ow := p.OutH(), p.OutW()
	for n := 0; n < p.N; n++ {
		for oc := 0; oc < p.OutC; oc++ {
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					var s float64
					if bias != nil {
						s = float64(bias[oc])
					}
					for c := 0; c < p.C; c++ {
						for ky := 0; ky < p.KH; ky++ {
							iy := oy*p.StrideH - p.PadTop + ky
							if iy < 0 || iy >= p.H {
								continue
							}
							for kx := 0; kx < p.KW; kx++ {
								ix := ox*p.StrideW - p.PadLeft + kx
								if ix < 0 || ix >= p.W {
									continue
								}
								wv := wt[((oc*p.C+c)*p.KH+ky)*p.KW+kx]
								s += float64(wv) * float64(x[((n*p.C+c)*p.H+iy)*p.W+ix])
							}
						}
					}
					dst[((n*p.OutC+oc)*oh+oy)*ow+ox] = float32(s)
				}
			}
		}
	}
}

// GroupNorm implements kernels.Kernels.
func (*Kernels) GroupNorm(dst, x []float32, N, C, HW, groups int, eps float32, gamma, beta []float32, silu bool) {
	cpg := C / groups
	for n := 0; n < N; n++ {
		for g := 0; g < groups; g++ {
			off := (n*C + g*cpg) * HW
			seg := x[off : off+cpg*HW]
			var sum float64
			for _, v := range seg {
				sum += float64(v)
			}
			mean := sum / float64(len(seg))
			var sq float64
			for _, v := range seg {
				d := float64(v) - mean
				sq += d * d
			}
			inv := 1 / math.Sqrt(sq/float64(len(seg))+float64(eps))
			for c := 0; c < cpg; c++ {
				ch := g*cpg + c
				for i := 0; i < HW; i++ {
					k := off + c*HW + i
					v := float32((float64(x[k])-mean)*inv)*gamma[ch] + beta[ch]
					if silu {
						v = siLU(v)
					}
					dst[k] = v
				}
			}
		}
	}
}

// LayerNorm implements kernels.Kernels.
func (*Kernels) LayerNorm(dst, x []float32, rows, cols int, eps float32, gamma, beta []float32) {
	for r := 0; r < rows; r++ {
		row := x[r*cols : r*cols+cols]
		var sum float64
		for _, v := range row {
			sum += float64(v)
		}
		mean := sum / float64(cols)
		var sq float64
		for _, v := range row {
			d := float64(v) - mean
			sq += d * d
		}
		inv := 1 / math.Sqrt(sq/float64(cols)+float64(eps))
		out := dst[r*cols : r*cols+cols]
		for i, v := range row {
			out[i] = float32((float64(v)-mean)*inv)*gamma[i] + beta[i]
		}
	}
}

// Softmax implements kernels.Kernels.
func (*Kernels) Softmax(x []float32, rows, cols int) {
	for r := 0; r < rows; r++ {
		softmaxRow(x[r*cols : r*cols+cols])
	}
}

func softmaxRow(row []float32) {
	mx := float32(math.Inf(-1))
	for _, v := range row {
		if v > mx {
			mx = v
		}
	}
	var sum float64
	for i, v := range row {
		e := math.Exp(float64(v - mx))
		row[i] = float32(e)
		sum += e
	}
	for i := range row {
		row[i] = float32(float64(row[i]) / sum)
	}
}

// Attention implements kernels.Kernels. Both modes compute the same
// per-query rows; the reference does one query row at a time, so the mode
// does not change its arithmetic.
func (*Kernels) Attention(dst, q, k, v []float32, p kernels.Attention) {
	inner := p.Heads * p.HeadDim
	scores := make([]float32, p.Lk)
	acc := make([]float64, p.HeadDim)
	for b := 0; b < p.B; b++ {
		for h := 0; h < p.Heads; h++ {
			for i := 0; i < p.Lq; i++ {
				qr := q[(b*p.Lq+i)*inner+h*p.HeadDim:][:p.HeadDim]
				n := p.Lk
				if p.Causal && i+1 < n {
					n = i + 1
				}
				for j := 0; j < n; j++ {
					kr := k[(b*p.Lk+j)*inner+h*p.HeadDim:][:p.HeadDim]
					var s float64
					for d, qv := range qr {
						s += float64(qv) * float64(kr[d])
					}
					scores[j] = float32(s) * p.Scale
				}
				softmaxRow(scores[:n])
				for d := range acc {
					acc[d] = 0
				}
				for j := 0; j < n; j++ {
					vr := v[(b*p.Lk+j)*inner+h*p.HeadDim:][:p.HeadDim]
					pj := float64(scores[j])
					for d, vv := range vr {
						acc[d] += pj * float64(vv)
					}
				}
				out := dst[(b*p.Lq+i)*inner+h*p.HeadDim:][:p.HeadDim]
				for d := range out {
					out[d] = float32(acc[d])
				}
			}
		}
	}
}

func siLU(v float32) float32 { return float32(float64(v) / (1 + math.Exp(-float64(v)))) }

func gelu(v float32) float32 {
	x := float64(v)
	return float32(0.5 * x * (1 + math.Erf(x/math.Sqrt2)))
}

// SiLU implements kernels.Kernels.
func (*Kernels) SiLU(dst, x []float32) {
	for i, v := range x {
		dst[i] = siLU(v)
	}
}

// GELU implements kernels.Kernels.
func (*Kernels) GELU(dst, x []float32) {
	for i, v := range x {
		dst[i] = gelu(v)
	}
}

// QuickGELU implements kernels.Kernels.
func (*Kernels) QuickGELU(dst, x []float32) {
	for i, v := range x {
		f := float64(v)
		dst[i] = float32(f / (1 + math.Exp(-1.702*f)))
	}
}

// GEGLU implements kernels.Kernels.
func (*Kernels) GEGLU(dst, x []float32, rows, cols int) {
	for r := 0; r < rows; r++ {
		in := x[r*2*cols:]
		out := dst[r*cols : r*cols+cols]
		for c := range out {
			out[c] = in[c] * gelu(in[cols+c])
		}
	}
}

// Upsample2x implements kernels.Kernels.
func (*Kernels) Upsample2x(dst, x []float32, NC, H, W int) {
	for c := 0; c < NC; c++ {
		for y := 0; y < 2*H; y++ {
			for xx := 0; xx < 2*W; xx++ {
				dst[(c*2*H+y)*2*W+xx] = x[(c*H+y/2)*W+xx/2]
			}
		}
	}
}

// Add implements kernels.Kernels.
func (*Kernels) Add(dst, a, b []float32) {
	for i := range dst {
		dst[i] = a[i] + b[i]
	}
}
