package pipeline

import (
	"context"
	"errors"
	"image"
	"slices"
	"testing"

	"github.com/pigment-sd/pigment/scheduler"
)

func TestInfotext(t *testing.T) {
	res := &Result{SchedulerConfig: scheduler.Config{Class: scheduler.PNDM}}
	karras := &Result{SchedulerConfig: scheduler.Config{Class: scheduler.DPMSolverMultistep, UseKarrasSigmas: true}}
	for _, tc := range []struct {
		name  string
		p     Params
		res   *Result
		index int
		want  string
	}{
		{"txt2img", Params{Prompt: "a fox", Steps: 20, Guidance: 7.5, Seed: 42, Width: 512, Height: 512, ImageCount: 1}, res, 0,
			"a fox\nSteps: 20, Sampler: PLMS, CFG scale: 7.5, Seed: 42, Size: 512x512, Model: m, Schedule type: PNDMScheduler, Version: pigment"},
		{"negative, named scheduler, batch", Params{Prompt: "a", NegativePrompt: "b", Scheduler: "euler-a", Steps: 4, Guidance: 1, Seed: 7, Width: 64, Height: 32, ImageCount: 2}, res, 1,
			"a\nNegative prompt: b\nSteps: 4, Sampler: Euler a, CFG scale: 1, Seed: 7, Size: 64x32, Model: m, Batch size: 2, Batch pos: 1, Schedule type: PNDMScheduler, Version: pigment"},
		{"model's own Karras scheduler", Params{Prompt: "x", Steps: 1, Guidance: 2, Width: 8, Height: 8, ImageCount: 1}, karras, 0,
			"x\nSteps: 1, Sampler: DPM++ 2M Karras, CFG scale: 2, Seed: 0, Size: 8x8, Model: m, Schedule type: DPMSolverMultistepScheduler, Version: pigment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Infotext(&tc.p, tc.res, "/models/m/", tc.index); got != tc.want {
				t.Errorf("got\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

func TestRequestSizes(t *testing.T) {
	m := &Model{VAEScaleFactor: 8, SampleSize: 64}
	p := Params{}
	m.SetDefaultSize(&p)
	if p.Width != 512 || p.Height != 512 {
		t.Errorf("default size %dx%d, want 512x512", p.Width, p.Height)
	}
	img := image.NewRGBA(image.Rect(0, 0, 100, 70))
	p = Params{}
	resized, err := m.SetInitImage(&p, img)
	if err != nil || p.Width != 96 || p.Height != 64 || !resized || p.InitImage == nil {
		t.Errorf("init image 100x70: %dx%d resized %v, %v; want 96x64 resized", p.Width, p.Height, resized, err)
	}
	p = Params{Width: 100}
	if _, err := m.SetInitImage(&p, img); err == nil {
		t.Error("width 100 accepted with a scale factor of 8")
	}
	p = Params{}
	if _, err := m.SetInitImage(&p, image.NewRGBA(image.Rect(0, 0, 4, 4))); err == nil {
		t.Error("a 4x4 init image accepted: it rounds down to 0x0")
	}
}

// TestCancel cancels a generation at the start of each phase and checks
// that Generate returns the context's error, and that the phases come in
// order.
func TestCancel(t *testing.T) {
	m := loadModel(t, "tiny-sd15")
	img := image.NewRGBA(image.Rect(0, 0, 32, 32))
	for _, at := range []Phase{PhaseEncodePrompt, PhaseEncodeImage, PhaseDenoise, PhaseDecode} {
		t.Run(string(at), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var seen []Phase
			p := Params{Prompt: "a", Steps: 3, Guidance: 7.5, ImageCount: 1, Strength: 0.9,
				OnPhase: func(ph Phase) {
					seen = append(seen, ph)
					if ph == at {
						cancel()
					}
				}}
			if _, err := m.SetInitImage(&p, img); err != nil {
				t.Fatal(err)
			}
			_, err := m.Generate(ctx, p)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled at %s: error %v, want context.Canceled", at, err)
			}
			order := []Phase{PhaseEncodePrompt, PhaseEncodeImage, PhaseDenoise, PhaseDecode}
			if len(seen) == 0 || seen[len(seen)-1] != at || !slices.Equal(seen, order[:len(seen)]) {
				t.Errorf("phases %v, want %v up to %s", seen, order, at)
			}
		})
	}
}
