package scheduler

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Class names, as diffusers spells them in scheduler_config.json
// ("_class_name").
const (
	PNDM                = "PNDMScheduler"
	DDIM                = "DDIMScheduler"
	Euler               = "EulerDiscreteScheduler"
	EulerAncestral      = "EulerAncestralDiscreteScheduler"
	DPMSolverMultistep  = "DPMSolverMultistepScheduler"
	DPMSolverSinglestep = "DPMSolverSinglestepScheduler"
	LMS                 = "LMSDiscreteScheduler"
	Heun                = "HeunDiscreteScheduler"
	KDPM2               = "KDPM2DiscreteScheduler"
	KDPM2Ancestral      = "KDPM2AncestralDiscreteScheduler"
	UniPCMultistep      = "UniPCMultistepScheduler"
	DEISMultistep       = "DEISMultistepScheduler"
)

// Limits on configs, so that a hostile file cannot ask for huge tables.
const (
	maxNumTrainTimesteps  = 1 << 16
	maxTrainedBetasLength = maxNumTrainTimesteps
)

// Config holds the scheduler_config.json keys the schedulers read, with
// diffusers' per-class defaults applied to keys the file lacks.
type Config struct {
	Class             string    // one of the class name constants
	NumTrainTimesteps int       // num_train_timesteps
	BetaStart         float64   // beta_start
	BetaEnd           float64   // beta_end
	BetaSchedule      string    // beta_schedule: linear, scaled_linear, squaredcos_cap_v2
	TrainedBetas      []float64 // trained_betas (overrides the schedule when set)
	PredictionType    string    // prediction_type: epsilon or v_prediction
	TimestepSpacing   string    // timestep_spacing: leading, trailing, linspace
	StepsOffset       int       // steps_offset (leading spacing)
	SetAlphaToOne     bool      // set_alpha_to_one (PNDM, DDIM)
	SkipPRKSteps      bool      // skip_prk_steps (PNDM; must be true)
	ClipSample        bool      // clip_sample (DDIM, Heun)
	ClipSampleRange   float64   // clip_sample_range (DDIM, Heun)
	UseKarrasSigmas   bool      // use_karras_sigmas
	InterpolationType string    // interpolation_type (Euler; linear only)
	AlgorithmType     string    // algorithm_type (DPM-Solver: dpmsolver++; DEIS: deis)
	SolverType        string    // solver_type (DPM: midpoint/heun; DEIS: logrho; UniPC: bh1/bh2)
	SolverOrder       int       // solver_order (1 or 2)
	LowerOrderFinal   bool      // lower_order_final
	LambdaMinClipped  float64   // lambda_min_clipped (DPM-Solver)
	DisableCorrector  []int     // disable_corrector (UniPC): step indices without corrector
}

// classParams lists, per class, the constructor arguments diffusers v0.21.0
// takes and their defaults. Keys of a config file that are not listed for
// its class are ignored, as diffusers' from_config ignores them.
var classParams = map[string]map[string]any{
	PNDM: {
		"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
		"trained_betas": nil, "skip_prk_steps": false, "set_alpha_to_one": false, "prediction_type": "epsilon",
		"timestep_spacing": "leading", "steps_offset": 0,
	},
	DDIM: {
		"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
		"trained_betas": nil, "clip_sample": true, "set_alpha_to_one": true, "steps_offset": 0,
		"prediction_type": "epsilon", "thresholding": false, "dynamic_thresholding_ratio": 0.995,
		"clip_sample_range": 1.0, "sample_max_value": 1.0, "timestep_spacing": "leading",
		"rescale_betas_zero_snr": false,
	},
	Euler: {
		"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
		"trained_betas": nil, "prediction_type": "epsilon", "interpolation_type": "linear",
		"use_karras_sigmas": false, "timestep_spacing": "linspace", "steps_offset": 0,
	},
	EulerAncestral: {
		"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
		"trained_betas": nil, "prediction_type": "epsilon", "timestep_spacing": "linspace", "steps_offset": 0,
	},
	LMS: {
		"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
		"trained_betas": nil, "use_karras_sigmas": false, "prediction_type": "epsilon",
		"timestep_spacing": "linspace", "steps_offset": 0,
	},
	Heun: {
		"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "linear",
		"trained_betas": nil, "prediction_type": "epsilon", "use_karras_sigmas": false, "clip_sample": false,
		"clip_sample_range": 1.0, "timestep_spacing": "linspace", "steps_offset": 0,
	},
	KDPM2: {
		"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "linear",
		"trained_betas": nil, "prediction_type": "epsilon", "timestep_spacing": "linspace", "steps_offset": 0,
	},
	KDPM2Ancestral: {
		"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "linear",
		"trained_betas": nil, "prediction_type": "epsilon", "timestep_spacing": "linspace", "steps_offset": 0,
	},
	DPMSolverMultistep: {
		"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
		"trained_betas": nil, "solver_order": 2, "prediction_type": "epsilon", "thresholding": false,
		"dynamic_thresholding_ratio": 0.995, "sample_max_value": 1.0, "algorithm_type": "dpmsolver++",
		"solver_type": "midpoint", "lower_order_final": true, "use_karras_sigmas": false,
		"lambda_min_clipped": math.Inf(-1), "variance_type": nil, "timestep_spacing": "linspace", "steps_offset": 0,
	},
	DPMSolverSinglestep: {
		"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
		"trained_betas": nil, "solver_order": 2, "prediction_type": "epsilon", "thresholding": false,
		"dynamic_thresholding_ratio": 0.995, "sample_max_value": 1.0, "algorithm_type": "dpmsolver++",
		"solver_type": "midpoint", "lower_order_final": true, "use_karras_sigmas": false,
		"lambda_min_clipped": math.Inf(-1), "variance_type": nil,
	},
	UniPCMultistep: {
		"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
		"trained_betas": nil, "solver_order": 2, "prediction_type": "epsilon", "thresholding": false,
		"dynamic_thresholding_ratio": 0.995, "sample_max_value": 1.0, "predict_x0": true, "solver_type": "bh2",
		"lower_order_final": true, "disable_corrector": []int{}, "solver_p": nil, "use_karras_sigmas": false,
		"timestep_spacing": "linspace", "steps_offset": 0,
	},
	DEISMultistep: {
		"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
		"trained_betas": nil, "solver_order": 2, "prediction_type": "epsilon", "thresholding": false,
		"dynamic_thresholding_ratio": 0.995, "sample_max_value": 1.0, "algorithm_type": "deis",
		"solver_type": "logrho", "lower_order_final": true, "use_karras_sigmas": false,
		"timestep_spacing": "linspace", "steps_offset": 0,
	},
}

// Classes lists the supported class names in sorted order.
func Classes() []string {
	out := make([]string, 0, len(classParams))
	for c := range classParams {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// ConfigError reports a scheduler configuration that cannot be used.
type ConfigError struct {
	Class string
	Key   string // the offending key, "" when not about one key
	Msg   string
}

func (e *ConfigError) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("scheduler %s: %s", e.Class, e.Msg)
	}
	return fmt.Sprintf("scheduler %s: %s: %s", e.Class, e.Key, e.Msg)
}

// ConfigClass returns the "_class_name" of a diffusers scheduler_config.json,
// the class a model ships with, and fails when pigment does not implement
// it.
func ConfigClass(raw []byte) (string, error) {
	class, err := ConfigClassName(raw)
	if err != nil {
		return "", err
	}
	if _, ok := classParams[class]; !ok {
		return "", fmt.Errorf("scheduler config: unsupported class %q (supported: %s)", class, strings.Join(Classes(), ", "))
	}
	return class, nil
}

// ConfigClassName returns the "_class_name" of a diffusers
// scheduler_config.json, whether or not pigment implements the class (a
// model whose own scheduler is not implemented still runs with another).
func ConfigClassName(raw []byte) (string, error) {
	var head struct {
		Class *string `json:"_class_name"`
	}
	if err := json.Unmarshal(quoteNonFinite(raw), &head); err != nil {
		return "", fmt.Errorf("scheduler config: %w", err)
	}
	if head.Class == nil || *head.Class == "" {
		return "", fmt.Errorf("scheduler config: no _class_name")
	}
	return *head.Class, nil
}

// ParseConfig builds the Config of class from the contents of a diffusers
// scheduler_config.json (raw may be empty) and overrides, with the semantics
// of diffusers' Class.from_config(config, **overrides): overrides win over
// the file, keys neither gives take the class defaults, keys the class does
// not take (including "_class_name" and "_diffusers_version") are ignored.
// A JSON null, or an override of nil, leaves the key at the class default.
// Non-finite numbers may be written as JSON strings ("-inf") or, as Python's
// json module writes them, as bare NaN, Infinity and -Infinity.
// Override values are Go values: bool, int, float64, string, []int,
// []float64, nil. Values that pigment does not implement (thresholding,
// sde-dpmsolver++, solver_order 3, PNDM's Runge-Kutta warm-up, ...) are
// refused with a *ConfigError naming the key.
func ParseConfig(class string, raw []byte, overrides map[string]any) (Config, error) {
	params, ok := classParams[class]
	if !ok {
		return Config{}, fmt.Errorf("scheduler: unknown class %q (known: %s)", class, strings.Join(Classes(), ", "))
	}
	vals := make(map[string]any, len(params))
	if len(bytes.TrimSpace(raw)) > 0 {
		var file map[string]any
		dec := json.NewDecoder(bytes.NewReader(quoteNonFinite(raw)))
		dec.UseNumber()
		if err := dec.Decode(&file); err != nil {
			return Config{}, &ConfigError{Class: class, Msg: fmt.Sprintf("parse config: %v", err)}
		}
		if file == nil {
			return Config{}, &ConfigError{Class: class, Msg: "config is not a JSON object"}
		}
		for k, v := range file {
			if _, ok := params[k]; ok && v != nil {
				vals[k] = v
			}
		}
	}
	for k, v := range overrides {
		if _, ok := params[k]; !ok {
			continue
		}
		if v == nil {
			delete(vals, k)
			continue
		}
		vals[k] = v
	}
	for k, def := range params {
		if _, ok := vals[k]; !ok {
			vals[k] = def
		}
	}
	p := &configParser{class: class, vals: vals}
	cfg := Config{
		Class:             class,
		NumTrainTimesteps: p.int("num_train_timesteps"),
		BetaStart:         p.float("beta_start"),
		BetaEnd:           p.float("beta_end"),
		BetaSchedule:      p.str("beta_schedule"),
		TrainedBetas:      p.floats("trained_betas"),
		PredictionType:    p.str("prediction_type"),
		TimestepSpacing:   p.str("timestep_spacing"),
		StepsOffset:       p.int("steps_offset"),
		SetAlphaToOne:     p.bool("set_alpha_to_one"),
		SkipPRKSteps:      p.bool("skip_prk_steps"),
		ClipSample:        p.bool("clip_sample"),
		ClipSampleRange:   p.float("clip_sample_range"),
		UseKarrasSigmas:   p.bool("use_karras_sigmas"),
		InterpolationType: p.str("interpolation_type"),
		AlgorithmType:     p.str("algorithm_type"),
		SolverType:        p.str("solver_type"),
		SolverOrder:       p.int("solver_order"),
		LowerOrderFinal:   p.bool("lower_order_final"),
		LambdaMinClipped:  p.float("lambda_min_clipped"),
		DisableCorrector:  p.ints("disable_corrector"),
	}
	// Options that would change the numbers but that pigment does not
	// implement: refuse them rather than silently ignoring them.
	p.require("thresholding", false)
	p.require("rescale_betas_zero_snr", false)
	p.require("predict_x0", true)
	p.requireNil("variance_type")
	p.requireNil("solver_p")
	if p.err != nil {
		return Config{}, p.err
	}
	if err := cfg.normalize(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// normalize applies diffusers' constructor-time rewrites and validates the
// values.
func (c *Config) normalize() error {
	bad := func(key, format string, args ...any) error {
		return &ConfigError{Class: c.Class, Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	if c.NumTrainTimesteps < 2 || c.NumTrainTimesteps > maxNumTrainTimesteps {
		return bad("num_train_timesteps", "%d is out of range [2, %d]", c.NumTrainTimesteps, maxNumTrainTimesteps)
	}
	if len(c.TrainedBetas) > 0 {
		if len(c.TrainedBetas) != c.NumTrainTimesteps {
			return bad("trained_betas", "has %d values, num_train_timesteps is %d", len(c.TrainedBetas), c.NumTrainTimesteps)
		}
		for _, b := range c.TrainedBetas {
			if !(b > 0 && b < 1) {
				return bad("trained_betas", "value %v is outside (0, 1)", b)
			}
		}
	} else {
		switch c.BetaSchedule {
		case "linear", "scaled_linear":
			if !(c.BetaStart > 0 && c.BetaStart < 1) {
				return bad("beta_start", "%v is outside (0, 1)", c.BetaStart)
			}
			if !(c.BetaEnd > 0 && c.BetaEnd < 1) {
				return bad("beta_end", "%v is outside (0, 1)", c.BetaEnd)
			}
		case "squaredcos_cap_v2":
		default:
			return bad("beta_schedule", "%q is not supported (linear, scaled_linear, squaredcos_cap_v2)", c.BetaSchedule)
		}
	}
	switch c.PredictionType {
	case "epsilon", "v_prediction":
	default:
		return bad("prediction_type", "%q is not supported (epsilon, v_prediction)", c.PredictionType)
	}
	if c.Class != DPMSolverSinglestep {
		switch c.TimestepSpacing {
		case "leading", "trailing", "linspace":
		default:
			return bad("timestep_spacing", "%q is not supported (leading, trailing, linspace)", c.TimestepSpacing)
		}
		if c.StepsOffset < 0 || c.StepsOffset >= c.NumTrainTimesteps {
			return bad("steps_offset", "%d is out of range [0, %d)", c.StepsOffset, c.NumTrainTimesteps)
		}
	}
	if c.ClipSample && !(c.ClipSampleRange > 0) {
		return bad("clip_sample_range", "%v must be positive", c.ClipSampleRange)
	}
	switch c.Class {
	case PNDM:
		if !c.SkipPRKSteps {
			return bad("skip_prk_steps", "false (Runge-Kutta warm-up steps) is not supported; set it to true")
		}
	case Euler:
		if c.InterpolationType != "linear" {
			return bad("interpolation_type", "%q is not supported (linear)", c.InterpolationType)
		}
	case DPMSolverMultistep, DPMSolverSinglestep:
		// diffusers maps the other solvers' names onto its own.
		if c.AlgorithmType == "deis" {
			c.AlgorithmType = "dpmsolver++"
		}
		if c.AlgorithmType != "dpmsolver++" {
			return bad("algorithm_type", "%q is not supported (dpmsolver++)", c.AlgorithmType)
		}
		switch c.SolverType {
		case "logrho", "bh1", "bh2":
			c.SolverType = "midpoint"
		case "midpoint", "heun":
		default:
			return bad("solver_type", "%q is not supported (midpoint, heun)", c.SolverType)
		}
		if c.Class == DPMSolverSinglestep && c.UseKarrasSigmas {
			return bad("use_karras_sigmas", "true is not supported for %s", c.Class)
		}
		if math.IsNaN(c.LambdaMinClipped) {
			return bad("lambda_min_clipped", "NaN is not a threshold")
		}
	case DEISMultistep:
		if c.AlgorithmType == "dpmsolver" || c.AlgorithmType == "dpmsolver++" {
			c.AlgorithmType = "deis"
		}
		if c.AlgorithmType != "deis" {
			return bad("algorithm_type", "%q is not supported (deis)", c.AlgorithmType)
		}
		switch c.SolverType {
		case "midpoint", "heun", "bh1", "bh2":
			c.SolverType = "logrho"
		case "logrho":
		default:
			return bad("solver_type", "%q is not supported (logrho)", c.SolverType)
		}
	case UniPCMultistep:
		switch c.SolverType {
		case "midpoint", "heun", "logrho":
			c.SolverType = "bh2"
		case "bh1", "bh2":
		default:
			return bad("solver_type", "%q is not supported (bh1, bh2)", c.SolverType)
		}
	}
	switch c.Class {
	case DPMSolverMultistep, DPMSolverSinglestep, UniPCMultistep, DEISMultistep:
		if c.SolverOrder != 1 && c.SolverOrder != 2 {
			return bad("solver_order", "%d is not supported (1 or 2)", c.SolverOrder)
		}
	}
	return nil
}

// configParser converts decoded JSON or override values to typed fields,
// keeping the first error.
type configParser struct {
	class string
	vals  map[string]any
	err   error
}

func (p *configParser) fail(key string, v any, want string) {
	if p.err == nil {
		p.err = &ConfigError{Class: p.class, Key: key, Msg: fmt.Sprintf("%v is not %s", describe(v), want)}
	}
}

func describe(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", v)
}

func toFloat(v any) (float64, bool) {
	switch v := v.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(v), 64)
		return f, err == nil
	case float64:
		return v, true
	case float32:
		return float64(v), true
	case int:
		return float64(v), true
	case int64:
		return float64(v), true
	case string:
		switch strings.ToLower(v) {
		case "inf", "+inf", "infinity", "+infinity":
			return math.Inf(1), true
		case "-inf", "-infinity":
			return math.Inf(-1), true
		case "nan":
			return math.NaN(), true
		}
	}
	return 0, false
}

func toInt(v any) (int, bool) {
	f, ok := toFloat(v)
	if !ok || f != math.Trunc(f) || math.Abs(f) > math.MaxInt32 {
		return 0, false
	}
	return int(f), true
}

func (p *configParser) float(key string) float64 {
	v := p.vals[key]
	if v == nil {
		return 0
	}
	f, ok := toFloat(v)
	if !ok {
		p.fail(key, v, "a number")
	}
	return f
}

func (p *configParser) int(key string) int {
	v := p.vals[key]
	if v == nil {
		return 0
	}
	n, ok := toInt(v)
	if !ok {
		p.fail(key, v, "an integer")
	}
	return n
}

func (p *configParser) bool(key string) bool {
	v := p.vals[key]
	if v == nil {
		return false
	}
	b, ok := v.(bool)
	if !ok {
		p.fail(key, v, "a boolean")
	}
	return b
}

func (p *configParser) str(key string) string {
	v := p.vals[key]
	if v == nil {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		p.fail(key, v, "a string")
	}
	return s
}

func (p *configParser) list(key string) []any {
	switch v := p.vals[key].(type) {
	case nil:
		return nil
	case []any:
		return v
	case []int:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = x
		}
		return out
	case []float64:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = x
		}
		return out
	default:
		p.fail(key, v, "a list")
		return nil
	}
}

func (p *configParser) floats(key string) []float64 {
	l := p.list(key)
	if len(l) > maxTrainedBetasLength {
		p.fail(key, fmt.Sprintf("a list of %d values", len(l)), "a supported length")
		return nil
	}
	var out []float64
	for _, v := range l {
		f, ok := toFloat(v)
		if !ok {
			p.fail(key, v, "a number")
			return nil
		}
		out = append(out, f)
	}
	return out
}

func (p *configParser) ints(key string) []int {
	var out []int
	for _, v := range p.list(key) {
		n, ok := toInt(v)
		if !ok {
			p.fail(key, v, "an integer")
			return nil
		}
		out = append(out, n)
	}
	return out
}

// require fails unless key holds want (or is absent).
func (p *configParser) require(key string, want bool) {
	v, ok := p.vals[key]
	if !ok || v == nil {
		return
	}
	if b, isBool := v.(bool); !isBool || b != want {
		if p.err == nil {
			p.err = &ConfigError{Class: p.class, Key: key, Msg: fmt.Sprintf("%s is not supported (only %v)", describe(v), want)}
		}
	}
}

// requireNil fails unless key is null or absent.
func (p *configParser) requireNil(key string) {
	if v, ok := p.vals[key]; ok && v != nil && p.err == nil {
		p.err = &ConfigError{Class: p.class, Key: key, Msg: fmt.Sprintf("%s is not supported (only null)", describe(v))}
	}
}

// quoteNonFinite rewrites the bare tokens NaN, Infinity and -Infinity that
// Python's json module writes (outside strings) into JSON strings, so that
// encoding/json accepts the file.
func quoteNonFinite(raw []byte) []byte {
	tokens := []string{"-Infinity", "Infinity", "NaN"}
	var out []byte
	inString, escaped := false, false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			if out != nil {
				out = append(out, c)
			}
			continue
		}
		if c == '"' {
			inString = true
		} else if c == '-' || c == 'I' || c == 'N' {
			if j := slices.IndexFunc(tokens, func(t string) bool { return bytes.HasPrefix(raw[i:], []byte(t)) }); j >= 0 {
				if out == nil {
					out = append(make([]byte, 0, len(raw)+8), raw[:i]...)
				}
				out = append(out, '"')
				out = append(out, tokens[j]...)
				out = append(out, '"')
				i += len(tokens[j]) - 1
				continue
			}
		}
		if out != nil {
			out = append(out, c)
		}
	}
	if out == nil {
		return raw
	}
	return out
}
