package scheduler

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

const sd15Config = `{
  "_class_name": "PNDMScheduler",
  "_diffusers_version": "0.6.0",
  "beta_end": 0.012,
  "beta_schedule": "scaled_linear",
  "beta_start": 0.00085,
  "num_train_timesteps": 1000,
  "set_alpha_to_one": false,
  "skip_prk_steps": true,
  "steps_offset": 1,
  "trained_betas": null,
  "clip_sample": false
}`

func TestParseConfigDefaults(t *testing.T) {
	tests := []struct {
		class string
		raw   string
		ov    map[string]any
		want  Config
	}{
		{
			class: Euler, raw: ``,
			want: Config{Class: Euler, NumTrainTimesteps: 1000, BetaStart: 0.0001, BetaEnd: 0.02, BetaSchedule: "linear",
				PredictionType: "epsilon", TimestepSpacing: "linspace", InterpolationType: "linear"},
		},
		{
			class: Euler, raw: sd15Config,
			// skip_prk_steps, set_alpha_to_one and clip_sample are not Euler's: ignored.
			want: Config{Class: Euler, NumTrainTimesteps: 1000, BetaStart: 0.00085, BetaEnd: 0.012, BetaSchedule: "scaled_linear",
				PredictionType: "epsilon", TimestepSpacing: "linspace", StepsOffset: 1, InterpolationType: "linear"},
		},
		{
			class: DDIM, raw: `{"beta_schedule": "scaled_linear"}`,
			want: Config{Class: DDIM, NumTrainTimesteps: 1000, BetaStart: 0.0001, BetaEnd: 0.02, BetaSchedule: "scaled_linear",
				PredictionType: "epsilon", TimestepSpacing: "leading", SetAlphaToOne: true, ClipSample: true, ClipSampleRange: 1},
		},
		{
			class: Heun, raw: `{}`,
			want: Config{Class: Heun, NumTrainTimesteps: 1000, BetaStart: 0.00085, BetaEnd: 0.012, BetaSchedule: "linear",
				PredictionType: "epsilon", TimestepSpacing: "linspace", ClipSampleRange: 1},
		},
		{
			class: DPMSolverMultistep, raw: sd15Config, ov: map[string]any{"use_karras_sigmas": true, "prediction_type": "v_prediction"},
			want: Config{Class: DPMSolverMultistep, NumTrainTimesteps: 1000, BetaStart: 0.00085, BetaEnd: 0.012,
				BetaSchedule: "scaled_linear", PredictionType: "v_prediction", TimestepSpacing: "linspace", StepsOffset: 1,
				UseKarrasSigmas: true, AlgorithmType: "dpmsolver++", SolverType: "midpoint", SolverOrder: 2,
				LowerOrderFinal: true, LambdaMinClipped: math.Inf(-1)},
		},
		{
			// Python's json writes -Infinity bare; "deis" and "logrho" map
			// onto DPM-Solver's own names as in diffusers.
			class: DPMSolverMultistep, raw: `{"lambda_min_clipped": -Infinity, "algorithm_type": "deis", "solver_type": "logrho", "solver_order": 1}`,
			want: Config{Class: DPMSolverMultistep, NumTrainTimesteps: 1000, BetaStart: 0.0001, BetaEnd: 0.02,
				BetaSchedule: "linear", PredictionType: "epsilon", TimestepSpacing: "linspace",
				AlgorithmType: "dpmsolver++", SolverType: "midpoint", SolverOrder: 1,
				LowerOrderFinal: true, LambdaMinClipped: math.Inf(-1)},
		},
		{
			class: UniPCMultistep, raw: `{"solver_type": "midpoint", "disable_corrector": [0, 3], "timestep_spacing": "trailing"}`,
			want: Config{Class: UniPCMultistep, NumTrainTimesteps: 1000, BetaStart: 0.0001, BetaEnd: 0.02,
				BetaSchedule: "linear", PredictionType: "epsilon", TimestepSpacing: "trailing",
				SolverType: "bh2", SolverOrder: 2, LowerOrderFinal: true, DisableCorrector: []int{0, 3}},
		},
		{
			// An override of nil removes the file's value: the default applies.
			class: PNDM, raw: sd15Config, ov: map[string]any{"steps_offset": nil, "timestep_spacing": "trailing"},
			want: Config{Class: PNDM, NumTrainTimesteps: 1000, BetaStart: 0.00085, BetaEnd: 0.012, BetaSchedule: "scaled_linear",
				PredictionType: "epsilon", TimestepSpacing: "trailing", SkipPRKSteps: true},
		},
		{
			class: DPMSolverSinglestep, raw: `{"timestep_spacing": "bogus", "steps_offset": -5}`, // not its keys: ignored
			want: Config{Class: DPMSolverSinglestep, NumTrainTimesteps: 1000, BetaStart: 0.0001, BetaEnd: 0.02,
				BetaSchedule: "linear", PredictionType: "epsilon", AlgorithmType: "dpmsolver++", SolverType: "midpoint",
				SolverOrder: 2, LowerOrderFinal: true, LambdaMinClipped: math.Inf(-1)},
		},
		{
			class: Euler, raw: `{"trained_betas": [0.1, 0.2, 0.3], "num_train_timesteps": 3.0}`,
			want: Config{Class: Euler, NumTrainTimesteps: 3, BetaStart: 0.0001, BetaEnd: 0.02, BetaSchedule: "linear",
				TrainedBetas: []float64{0.1, 0.2, 0.3}, PredictionType: "epsilon", TimestepSpacing: "linspace",
				InterpolationType: "linear"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.class, func(t *testing.T) {
			got, err := ParseConfig(tt.class, []byte(tt.raw), tt.ov)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseConfig(%s, %s, %v)\n got %+v\nwant %+v", tt.class, tt.raw, tt.ov, got, tt.want)
			}
			if _, err := New(got); err != nil {
				t.Errorf("New: %v", err)
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		class, raw string
		ov         map[string]any
		want       string // substring of the error
	}{
		{"FooScheduler", ``, nil, `unknown class "FooScheduler"`},
		{Euler, `{`, nil, "parse config"},
		{Euler, `[1, 2]`, nil, "parse config"},
		{Euler, `null`, nil, "not a JSON object"},
		{Euler, `{"num_train_timesteps": "many"}`, nil, `num_train_timesteps: "many" is not an integer`},
		{Euler, `{"num_train_timesteps": 10.5}`, nil, "num_train_timesteps: 10.5 is not an integer"},
		{Euler, `{"num_train_timesteps": 1}`, nil, "num_train_timesteps: 1 is out of range"},
		{Euler, `{"beta_start": true}`, nil, "beta_start: true is not a number"},
		{Euler, `{"beta_start": 2}`, nil, "beta_start: 2 is outside (0, 1)"},
		{Euler, `{"beta_schedule": "cubic"}`, nil, `beta_schedule: "cubic" is not supported`},
		{Euler, `{"prediction_type": "sample"}`, nil, `prediction_type: "sample" is not supported`},
		{Euler, ``, map[string]any{"timestep_spacing": "random"}, `timestep_spacing: "random" is not supported`},
		{Euler, `{"use_karras_sigmas": "yes"}`, nil, `use_karras_sigmas: "yes" is not a boolean`},
		{Euler, `{"interpolation_type": "log_linear"}`, nil, `interpolation_type: "log_linear" is not supported`},
		{Euler, `{"trained_betas": [0.1, "x"]}`, nil, `trained_betas: "x" is not a number`},
		{Euler, `{"trained_betas": 0.1}`, nil, "trained_betas: 0.1 is not a list"},
		{Euler, `{"trained_betas": [0.1, 0.2]}`, nil, "trained_betas: has 2 values, num_train_timesteps is 1000"},
		{Euler, `{"steps_offset": -1}`, nil, "steps_offset: -1 is out of range"},
		{PNDM, `{}`, nil, "skip_prk_steps: false"},
		{DDIM, `{"thresholding": true}`, nil, "thresholding: true is not supported"},
		{DDIM, `{"rescale_betas_zero_snr": true}`, nil, "rescale_betas_zero_snr: true is not supported"},
		{DDIM, `{"clip_sample_range": 0}`, nil, "clip_sample_range: 0 must be positive"},
		{DPMSolverMultistep, `{"algorithm_type": "sde-dpmsolver++"}`, nil, `algorithm_type: "sde-dpmsolver++" is not supported`},
		{DPMSolverMultistep, `{"solver_order": 3}`, nil, "solver_order: 3 is not supported"},
		{DPMSolverMultistep, `{"variance_type": "learned_range"}`, nil, `variance_type: "learned_range" is not supported`},
		{DPMSolverMultistep, `{"lambda_min_clipped": NaN}`, nil, "lambda_min_clipped: NaN"},
		{DPMSolverSinglestep, `{"use_karras_sigmas": true}`, nil, "use_karras_sigmas: true is not supported"},
		{UniPCMultistep, `{"predict_x0": false}`, nil, "predict_x0: false is not supported"},
		{UniPCMultistep, `{"solver_type": "bh3"}`, nil, `solver_type: "bh3" is not supported`},
		{UniPCMultistep, `{"disable_corrector": [1.5]}`, nil, "disable_corrector: 1.5 is not an integer"},
		{DEISMultistep, `{"algorithm_type": "unipc"}`, nil, `algorithm_type: "unipc" is not supported`},
	}
	for _, tt := range tests {
		_, err := ParseConfig(tt.class, []byte(tt.raw), tt.ov)
		if err == nil {
			t.Errorf("ParseConfig(%s, %s, %v): no error, want %q", tt.class, tt.raw, tt.ov, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseConfig(%s, %s, %v) = %q, want it to contain %q", tt.class, tt.raw, tt.ov, err, tt.want)
		}
		var ce *ConfigError
		if tt.class != "FooScheduler" && !errors.As(err, &ce) {
			t.Errorf("ParseConfig(%s, %s): error %T is not a *ConfigError", tt.class, tt.raw, err)
		}
	}
}

func TestQuoteNonFinite(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"a": -Infinity, "b": [NaN, Infinity]}`, `{"a": "-Infinity", "b": ["NaN", "Infinity"]}`},
		{`{"NaN": "x -Infinity \" NaN"}`, `{"NaN": "x -Infinity \" NaN"}`},
		{`{"a": -1.5}`, `{"a": -1.5}`},
	}
	for _, tt := range tests {
		if got := string(quoteNonFinite([]byte(tt.in))); got != tt.want {
			t.Errorf("quoteNonFinite(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestByName(t *testing.T) {
	for _, name := range Names() {
		class, ov, err := ByName(name)
		if err != nil {
			t.Fatalf("ByName(%q): %v", name, err)
		}
		s, err := FromConfig(class, []byte(sd15Config), ov)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := s.SetTimesteps(20); err != nil {
			t.Fatalf("%s: SetTimesteps: %v", name, err)
		}
		if karras := strings.HasSuffix(name, "-karras"); s.Config().UseKarrasSigmas != karras {
			t.Errorf("%s: use_karras_sigmas = %v", name, s.Config().UseKarrasSigmas)
		}
	}
	if class, _, err := ByName(UniPCMultistep); err != nil || class != UniPCMultistep {
		t.Errorf("ByName(class name) = %q, %v", class, err)
	}
	if _, _, err := ByName("dpm++3m"); err == nil || !strings.Contains(err.Error(), "euler-a") {
		t.Errorf("ByName(unknown) error = %v, want one listing the names", err)
	}
}

func TestConfigClass(t *testing.T) {
	tests := []struct{ raw, want, err string }{
		{sd15Config, PNDM, ""},
		{`{"_class_name": "EulerDiscreteScheduler", "lambda_min_clipped": -Infinity}`, Euler, ""},
		{`{"_class_name": "FlowMatchEulerDiscreteScheduler"}`, "", "unsupported class"},
		{`{"beta_start": 0.1}`, "", "no _class_name"},
		{`{"_class_name": 3}`, "", "cannot unmarshal"},
		{`[]`, "", "cannot unmarshal"},
	}
	for _, tt := range tests {
		got, err := ConfigClass([]byte(tt.raw))
		if got != tt.want || (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("ConfigClass(%s) = %q, %v; want %q, error containing %q", tt.raw, got, err, tt.want, tt.err)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add(Euler, []byte(sd15Config))
	f.Add(DPMSolverMultistep, []byte(`{"lambda_min_clipped": -Infinity, "solver_order": 2, "trained_betas": [0.5, 0.5]}`))
	f.Add(UniPCMultistep, []byte(`{"disable_corrector": [1, 2], "num_train_timesteps": 5}`))
	f.Add(KDPM2Ancestral, []byte(`{"num_train_timesteps": 2, "timestep_spacing": "trailing"}`))
	f.Add(PNDM, []byte(`{"skip_prk_steps": true, "steps_offset": 3, "num_train_timesteps": 7, "beta_schedule": "squaredcos_cap_v2"}`))
	f.Fuzz(func(t *testing.T, class string, raw []byte) {
		if c, err := ConfigClass(raw); err == nil && c == "" {
			t.Fatal("ConfigClass returned an empty class without an error")
		}
		cfg, err := ParseConfig(class, raw, nil)
		if err != nil {
			return
		}
		if cfg.NumTrainTimesteps > 4096 {
			return // keep each input fast
		}
		s, err := New(cfg)
		if err != nil {
			return
		}
		for _, n := range []int{1, 2, 3} {
			if s.SetTimesteps(n) != nil {
				continue
			}
			ts := s.Timesteps()
			x := []float32{0.5, -1}
			out := make([]float32, 2)
			noise := func(dst []float32) {
				for i := range dst {
					dst[i] = 0.25
				}
			}
			for k := range ts {
				_ = s.ScaleModelInput(out, x, k)
				_ = s.Step(x, out, x, k, noise)
			}
		}
	})
}

// TestLabels checks the AUTOMATIC1111 sampler names: every command-line
// name has one, ByLabel inverts Label, and a model's own scheduler is
// named by its class (with " Karras" when its config uses Karras sigmas).
func TestLabels(t *testing.T) {
	seen := map[string]bool{}
	for _, name := range Names() {
		l := Label(name, Config{})
		if l == "" || seen[l] {
			t.Errorf("Label(%q) = %q: empty or not unique", name, l)
		}
		seen[l] = true
		if back, ok := ByLabel(strings.ToUpper(l)); !ok || back != name {
			t.Errorf("ByLabel(%q) = %q, %v, want %q", l, back, ok, name)
		}
	}
	if got := len(Labels()); got != len(Names()) {
		t.Errorf("%d labels for %d names", got, len(Names()))
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"dpm++2m-karras", Config{Class: DPMSolverMultistep}, "DPM++ 2M Karras"},
		{"pndm", Config{Class: PNDM}, "PLMS"},
		{"", Config{Class: PNDM}, "PLMS"},
		{Default, Config{Class: DPMSolverMultistep, UseKarrasSigmas: true}, "DPM++ 2M Karras"},
		{"", Config{Class: "FlowMatchEulerDiscreteScheduler"}, "FlowMatchEulerDiscreteScheduler"},
	} {
		if got := Label(tc.name, tc.cfg); got != tc.want {
			t.Errorf("Label(%q, %s) = %q, want %q", tc.name, tc.cfg.Class, got, tc.want)
		}
	}
	if _, ok := ByLabel("Restart"); ok {
		t.Error("ByLabel accepted a sampler pigment does not have")
	}
	for _, n := range []string{"", "default", "Default"} {
		if !IsDefault(n) {
			t.Errorf("IsDefault(%q) = false", n)
		}
		if _, _, err := ByName(n); err == nil {
			t.Errorf("ByName(%q) succeeded; the model's own scheduler has no name", n)
		}
	}
}
