package scheduler

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/pigment-sd/pigment/format/safetensors"
	"github.com/pigment-sd/pigment/internal/fixtures"
)

// newSD15 builds class from the SD 1.5 scheduler config with overrides.
func newSD15(t *testing.T, class string, ov map[string]any) Scheduler {
	t.Helper()
	s, err := FromConfig(class, []byte(sd15Config), ov)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestLinspaceTimesteps covers the linspace spacing, which the fixtures do
// not: numpy's linspace(0, 999, n), rounded for the integer classes and kept
// as float32 for the sigma classes.
func TestLinspaceTimesteps(t *testing.T) {
	tenths := []float64{999, 888, 777, 666, 555, 444, 333, 222, 111, 0}
	tests := []struct {
		class string
		n     int
		want  []float64
	}{
		{DDIM, 10, tenths},
		{PNDM, 10, []float64{999, 888, 888, 777, 666, 555, 444, 333, 222, 111, 0}},
		{Euler, 10, tenths},
		{Euler, 4, []float64{999, 666, 333, 0}},
		{Heun, 3, []float64{999, 499.5, 499.5, 0, 0}},
		{LMS, 7, []float64{999, 832.5, 666, 499.5, 333, 166.5, 0}},
		{DPMSolverMultistep, 10, []float64{999, 899, 799, 699, 599, 500, 400, 300, 200, 100}},
		{UniPCMultistep, 4, []float64{999, 749, 500, 250}}, // 749.25, 499.5 (half to even), 249.75
	}
	for _, tt := range tests {
		s := newSD15(t, tt.class, map[string]any{"timestep_spacing": "linspace"})
		if err := s.SetTimesteps(tt.n); err != nil {
			t.Fatal(err)
		}
		if got := s.Timesteps(); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s linspace %d: timesteps %v, want %v", tt.class, tt.n, got, tt.want)
		}
	}
	// With linspace spacing the initial noise is σ_max, not sqrt(σ_max²+1).
	s := newSD15(t, Euler, map[string]any{"timestep_spacing": "linspace"})
	if err := s.SetTimesteps(10); err != nil {
		t.Fatal(err)
	}
	cfg := s.Config()
	train, _ := newTrainSchedule(&cfg)
	if got, want := s.InitNoiseSigma(), float64(train.sigmas[999]); got != want {
		t.Errorf("Euler linspace init_noise_sigma = %v, want σ(999) = %v", got, want)
	}
}

// TestBatch checks that a batch of two samples gives each sample's own
// trajectory bit for bit, for every fixture variant at 10 steps.
func TestBatch(t *testing.T) {
	idx := loadIndex(t)
	for _, e := range idx.Files {
		if e.Steps != 10 || e.PredictionType != "epsilon" || e.Spacing == "trailing" {
			continue
		}
		t.Run(e.Variant, func(t *testing.T) {
			f, err := safetensors.Open(fixtures.Path(t, "schedulers/"+e.File))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			ff := fixtureFile{f}
			xNoise, _ := ff.f32(t, "x_noise")
			outs, _ := ff.f32(t, "model_output")
			var draws []float32
			if ff.has("noise") {
				draws, _ = ff.f32(t, "noise")
			}
			n := len(xNoise)
			run := func(batch int) []float32 {
				s, err := FromConfig(e.Class, idx.SD15BaseConfig, overridesFor(e))
				if err != nil {
					t.Fatal(err)
				}
				if err := s.SetTimesteps(e.Steps); err != nil {
					t.Fatal(err)
				}
				sample := make([]float32, 0, batch*n)
				for range batch {
					sample = append(sample, xNoise...)
				}
				in := make([]float32, len(sample))
				out := make([]float32, len(sample))
				m := 0
				noise := func(dst []float32) {
					for b := range batch {
						copy(dst[b*n:], draws[m*n:(m+1)*n])
					}
					m++
				}
				for k := range s.Timesteps() {
					if err := s.ScaleModelInput(in, sample, k); err != nil {
						t.Fatal(err)
					}
					for b := range batch {
						copy(out[b*n:], outs[k*n:(k+1)*n])
					}
					if err := s.Step(sample, out, sample, k, noise); err != nil {
						t.Fatal(err)
					}
				}
				return sample
			}
			one, two := run(1), run(2)
			if !reflect.DeepEqual(two[:n], one) || !reflect.DeepEqual(two[n:], one) {
				t.Errorf("batched trajectory differs from the single one")
			}
		})
	}
}

// TestImg2ImgStart starts every class mid-schedule, as diffusers' img2img
// does (timesteps[t_start*order:]), after AddNoise at the first timestep.
func TestImg2ImgStart(t *testing.T) {
	for _, name := range Names() {
		class, ov, err := ByName(name)
		if err != nil {
			t.Fatal(err)
		}
		s := newSD15(t, class, ov)
		const steps, tStart = 10, 4
		if err := s.SetTimesteps(steps); err != nil {
			t.Fatal(err)
		}
		ts := s.Timesteps()
		start := tStart * s.Order()
		image := []float32{0.5, -0.25, 1, 0}
		eps := []float32{1, -1, 0.5, 2}
		latents := make([]float32, len(image))
		if err := s.AddNoise(latents, image, eps, ts[start]); err != nil {
			t.Fatalf("%s: AddNoise: %v", name, err)
		}
		// The noised image follows the class's add_noise formula.
		var want []float32
		switch sc := s.(type) {
		case interface{ Sigmas() []float32 }:
			sigma := sc.Sigmas()[start]
			for i := range image {
				want = append(want, image[i]+eps[i]*sigma)
			}
		default:
			cfg := s.Config()
			train, _ := newTrainSchedule(&cfg)
			a := train.alphasCumprod[int(ts[start])]
			for i := range image {
				want = append(want, sqrt32(a)*image[i]+sqrt32(1-a)*eps[i])
			}
		}
		if !reflect.DeepEqual(latents, want) {
			t.Errorf("%s: AddNoise = %v, want %v", name, latents, want)
		}
		in := make([]float32, len(latents))
		noise := func(dst []float32) {
			for i := range dst {
				dst[i] = 0.1
			}
		}
		for k := start; k < len(ts); k++ {
			if err := s.ScaleModelInput(in, latents, k); err != nil {
				t.Fatalf("%s: call %d: %v", name, k, err)
			}
			for i := range in {
				in[i] = 0.1*in[i] + 0.05
			}
			if err := s.Step(latents, in, latents, k, noise); err != nil {
				t.Fatalf("%s: call %d: %v", name, k, err)
			}
		}
		for _, v := range latents {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) || math.Abs(float64(v)) > 10 {
				t.Errorf("%s: img2img result %v", name, latents)
				break
			}
		}
	}
}

func TestMisuse(t *testing.T) {
	x := []float32{1, 2}
	y := make([]float32, 2)
	for _, class := range Classes() {
		s := newSD15(t, class, map[string]any{"skip_prk_steps": true})
		if err := s.Step(y, x, x, 0, nil); err == nil || !strings.Contains(err.Error(), "SetTimesteps") {
			t.Errorf("%s: Step before SetTimesteps: %v", class, err)
		}
		for _, n := range []int{0, -1, 1001} {
			if err := s.SetTimesteps(n); err == nil {
				t.Errorf("%s: SetTimesteps(%d) succeeded", class, n)
			}
		}
		if err := s.SetTimesteps(5); err != nil {
			t.Fatal(err)
		}
		k := len(s.Timesteps())
		if err := s.ScaleModelInput(y, x, k); err == nil {
			t.Errorf("%s: ScaleModelInput(index %d) succeeded", class, k)
		}
		if err := s.Step(y, x, x, -1, nil); err == nil {
			t.Errorf("%s: Step(index -1) succeeded", class)
		}
		if err := s.Step(y, x[:1], x, 0, nil); err == nil {
			t.Errorf("%s: Step with mismatched lengths succeeded", class)
		}
		if err := s.AddNoise(y, x, x, 5000); err == nil {
			t.Errorf("%s: AddNoise at t=5000 succeeded", class)
		}
	}
	// Stateful classes refuse a sample whose length changes mid-schedule.
	for _, class := range []string{PNDM, LMS, Heun, KDPM2, KDPM2Ancestral, DPMSolverMultistep, DPMSolverSinglestep, UniPCMultistep, DEISMultistep} {
		s := newSD15(t, class, nil)
		if err := s.SetTimesteps(5); err != nil {
			t.Fatal(err)
		}
		noise := func(dst []float32) { clear(dst) }
		if err := s.Step(y, x, x, 0, noise); err != nil {
			t.Fatalf("%s: %v", class, err)
		}
		z := []float32{1, 2, 3}
		if err := s.Step(z, z, z, 1, noise); err == nil || !strings.Contains(err.Error(), "length changed") {
			t.Errorf("%s: step with a longer sample: %v", class, err)
		}
	}
	s := newSD15(t, EulerAncestral, nil)
	if err := s.SetTimesteps(5); err != nil {
		t.Fatal(err)
	}
	if err := s.Step(y, x, x, 0, nil); err == nil || !strings.Contains(err.Error(), "noise") {
		t.Errorf("Euler ancestral without noise: %v", err)
	}
	if _, err := New(Config{Class: "Nope"}); err == nil {
		t.Error("New with an unknown class succeeded")
	}
	if _, err := New(Config{Class: Euler}); err == nil {
		t.Error("New with a zero Config succeeded")
	}
}

func TestOrder(t *testing.T) {
	for _, class := range Classes() {
		want := 1
		if class == Heun || class == KDPM2 || class == KDPM2Ancestral {
			want = 2
		}
		if got := newSD15(t, class, nil).Order(); got != want {
			t.Errorf("%s: Order() = %d, want %d", class, got, want)
		}
	}
}

func TestNpLog32(t *testing.T) {
	// numpy's approximation agrees with the true logarithm to a few ulp.
	for _, x := range []float32{1e-30, 0.01, 0.5, 0.70710677, 0.7071068, 1, 1.5, 2, 14.6, 3e30} {
		got, want := npLog32(x), math.Log(float64(x))
		if math.Abs(float64(got)-want) > 4*math.Abs(want)*0x1p-24+1e-7 {
			t.Errorf("npLog32(%v) = %v, want ≈ %v", x, got, want)
		}
	}
	if v := npLog32(0); !math.IsInf(float64(v), -1) {
		t.Errorf("npLog32(0) = %v", v)
	}
	if v := npLog32(-1); !math.IsNaN(float64(v)) {
		t.Errorf("npLog32(-1) = %v", v)
	}
}

func TestFMA32(t *testing.T) {
	tests := []struct{ a, b, c, want float32 }{
		{2, 3, 4, 10},
		{1 + 0x1p-23, 1 + 0x1p-23, -1, 0x1p-22 + 0x1p-46},
		{0.1, 10, -1, float32(math.FMA(float64(float32(0.1)), 10, -1))},
	}
	for _, tt := range tests {
		if got := fma32(tt.a, tt.b, tt.c); got != tt.want {
			t.Errorf("fma32(%v, %v, %v) = %v, want %v", tt.a, tt.b, tt.c, got, tt.want)
		}
	}
}
