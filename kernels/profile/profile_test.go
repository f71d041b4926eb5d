package profile

import (
	"testing"

	"github.com/pigment-sd/pigment/kernels"
	"github.com/pigment-sd/pigment/kernels/ref"
	"github.com/pigment-sd/pigment/weights"
)

func TestCounts(t *testing.T) {
	p := Wrap(ref.New())
	w := weights.NewDense(make([]float32, 6*4), 6, 4)
	p.Linear(make([]float32, 3*6), make([]float32, 3*4), 3, 4, w, nil)
	cw := weights.NewDense(make([]float32, 5*2*9), 5, 2, 3, 3)
	c := kernels.Conv2D{N: 1, C: 2, H: 4, W: 4, OutC: 5, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}
	p.Conv2D(make([]float32, 5*16), make([]float32, 2*16), c, cw, nil)
	a := kernels.Attention{B: 1, Heads: 2, Lq: 3, Lk: 5, HeadDim: 4, Scale: 0.5}
	p.Attention(make([]float32, 3*8), make([]float32, 3*8), make([]float32, 5*8), make([]float32, 5*8), a)
	p.SiLU(make([]float32, 4), make([]float32, 4))
	if got := p.Stats[GEMM].FLOPs; got != 2*3*4*6 {
		t.Errorf("linear flops %v", got)
	}
	if got := p.Stats[Conv].FLOPs; got != 2*5*16*18 {
		t.Errorf("conv flops %v", got)
	}
	if got := p.Stats[Attention].FLOPs; got != 4*2*3*5*4 {
		t.Errorf("attention flops %v", got)
	}
	if tot := p.Total(); tot.Calls != 4 {
		t.Errorf("calls %d", tot.Calls)
	}
	p.Reset()
	if p.Total().Calls != 0 {
		t.Error("reset")
	}
}
