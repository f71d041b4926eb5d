package pipeline

import (
	"context"
	"image"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/pigment-sd/pigment/checkpoint"
	"github.com/pigment-sd/pigment/internal/fixtures"
	"github.com/pigment-sd/pigment/kernels/cpu"
	"github.com/pigment-sd/pigment/parallel"
)

// TestOnePool runs a whole img2img generation (text encoder, VAE encoder,
// UNet steps, VAE decoder in bands) on kernels sharing a pool of two
// workers, and checks through the pool's own count that no more than two
// workers ever computed at once, and that the generation started no
// goroutines of its own beside the pool's.
func TestOnePool(t *testing.T) {
	pool := parallel.New(2)
	defer pool.Close()
	dir := filepath.Dir(fixtures.Path(t, "tiny-sd15/model_index.json"))
	ck, err := checkpoint.Open(dir, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	m, err := Load(ck, LoadOptions{Kernels: cpu.NewWithPool(pool)})
	if err != nil {
		t.Fatal(err)
	}
	base := runtime.NumGoroutine()
	most := base
	sample := func() { most = max(most, runtime.NumGoroutine()) }
	p := Params{Prompt: "a lighthouse", Steps: 4, Guidance: 7.5, ImageCount: 2, Strength: 0.8, Scheduler: "euler-a",
		Progress: func(int, int) { sample() }, OnPhase: func(Phase) { sample() }}
	if _, err := m.SetInitImage(&p, image.NewRGBA(image.Rect(0, 0, 32, 32))); err != nil {
		t.Fatal(err)
	}
	pool.ResetPeak()
	if _, err := m.Generate(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	sample()
	switch peak := pool.Peak(); {
	case peak > 2:
		t.Errorf("%d workers computed at once on a pool of 2", peak)
	case peak == 0:
		t.Error("the generation did not compute on the pool")
	default:
		t.Logf("peak: %d workers at once", peak)
	}
	if most > base {
		t.Errorf("%d goroutines during the generation, %d before: it started goroutines beside the pool", most, base)
	}
}
