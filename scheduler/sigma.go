package scheduler

import (
	"fmt"
	"math"
)

// sigmaBase is what the k-diffusion style classes share (Euler, Euler
// ancestral, LMS, Heun, KDPM2, KDPM2 ancestral): they work on
// σ = sqrt((1-ᾱ)/ᾱ), scale the model input by 1/sqrt(σ²+1) and start from
// noise of standard deviation about σ_max.
type sigmaBase struct {
	base
	sigmas []float32 // diffusers' self.sigmas, indexed like its step does
	x0     []float32
	draw   []float32 // noise buffer
}

// inferenceSigmas returns the float32 timesteps (as float64) and the float32
// sigmas (n values then 0) of n inference steps: σ interpolated linearly
// at the timesteps in float64, or Karras sigmas and their log-interpolated
// timesteps.
func (s *sigmaBase) inferenceSigmas(n int) ([]float64, []float32) {
	ts := spacedTimesteps(&s.cfg, n)
	for i := range ts {
		ts[i] = float64(float32(ts[i]))
	}
	sig := interpSigmas(ts, s.train.sigmas)
	if s.cfg.UseKarrasSigmas {
		logs := npLogs32(s.train.sigmas)
		sig = karrasSigmas(sig[0], sig[len(sig)-1], n)
		for i, v := range sig {
			ts[i] = sigmaToT(v, logs)
		}
	}
	out := make([]float32, n+1)
	for i, v := range sig {
		out[i] = float32(v)
	}
	return ts, out
}

// InitNoiseSigma is σ_max for linspace and trailing spacing and
// sqrt(σ_max²+1) for leading, as diffusers v0.21.0 has it.
func (s *sigmaBase) InitNoiseSigma() float64 {
	var m float32
	for _, v := range s.sigmas {
		m = max(m, v)
	}
	if s.cfg.TimestepSpacing == "linspace" || s.cfg.TimestepSpacing == "trailing" {
		return float64(m)
	}
	return float64(sqrt32(m*m + 1))
}

// Sigmas returns diffusers' self.sigmas after SetTimesteps.
func (s *sigmaBase) Sigmas() []float32 { return s.sigmas }

// scaleBy writes sample/sqrt(σ²+1) into dst.
func scaleBy(dst, sample []float32, sigma float32) {
	d := sqrt32(sigma*sigma + 1)
	for i := range dst {
		dst[i] = sample[i] / d
	}
}

// denoised writes the x₀ estimate for a model output at noise level sigma
// into dst: sample - σ·ε for epsilon models, v·(-σ/sqrt(σ²+1)) +
// sample/(σ²+1) for v_prediction.
func (s *sigmaBase) denoised(dst, modelOutput, sample []float32, sigma float32) {
	if s.cfg.PredictionType == "v_prediction" {
		c2 := sigma*sigma + 1
		c1 := -sigma / sqrt32(c2)
		for i := range dst {
			dst[i] = modelOutput[i]*c1 + sample[i]/c2
		}
		return
	}
	for i := range dst {
		dst[i] = sample[i] - sigma*modelOutput[i]
	}
}

func (s *sigmaBase) x0Buf(n int) []float32 {
	if len(s.x0) != n {
		s.x0 = make([]float32, n)
	}
	return s.x0
}

// drawNoise calls noise for one draw the size of the sample; it returns nil
// when noise is nil.
func (s *sigmaBase) drawNoise(n int, noise func([]float32)) []float32 {
	if noise == nil {
		return nil
	}
	if len(s.draw) != n {
		s.draw = make([]float32, n)
	}
	noise(s.draw)
	return s.draw
}

// AddNoise is diffusers' add_noise of the sigma classes: x + σ·ε with the σ
// of the step whose timestep is t (the second of two equal timesteps, as
// diffusers picks it before the first step).
func (s *sigmaBase) AddNoise(dst, original, noise []float32, t float64) error {
	if len(original) != len(dst) || len(noise) != len(dst) {
		return fmt.Errorf("scheduler %s: add noise: slice lengths differ", s.cfg.Class)
	}
	idx, found := -1, 0
	for i, v := range s.timesteps {
		if v == t {
			if found < 2 {
				idx = i
			}
			found++
		}
	}
	if idx < 0 {
		return fmt.Errorf("scheduler %s: add noise: timestep %v is not one of the scheduler's timesteps", s.cfg.Class, t)
	}
	sigma := s.sigmas[idx]
	for i := range dst {
		dst[i] = original[i] + noise[i]*sigma
	}
	return nil
}

// euler is diffusers' EulerDiscreteScheduler (Karras' Algorithm 2 with
// s_churn = 0).
type euler struct{ sigmaBase }

func (s *euler) SetTimesteps(n int) error {
	if err := s.checkSteps(n); err != nil {
		return err
	}
	s.timesteps, s.sigmas = s.inferenceSigmas(n)
	return nil
}

func (s *euler) PredOriginalSample() []float32 { return s.x0 }

func (s *euler) ScaleModelInput(dst, sample []float32, k int) error {
	if err := s.checkCall(k, dst, sample); err != nil {
		return err
	}
	scaleBy(dst, sample, s.sigmas[k])
	return nil
}

func (s *euler) Step(dst, modelOutput, sample []float32, k int, noise func([]float32)) error {
	if err := s.checkCall(k, dst, modelOutput, sample); err != nil {
		return err
	}
	sigma := s.sigmas[k]
	// diffusers draws the churn noise on every step, even when s_churn = 0
	// leaves it unused.
	s.drawNoise(len(dst), noise)
	x0 := s.x0Buf(len(dst))
	s.denoised(x0, modelOutput, sample, sigma)
	dt := s.sigmas[k+1] - sigma
	for i := range dst {
		d := (sample[i] - x0[i]) / sigma
		dst[i] = sample[i] + d*dt
	}
	return nil
}

// eulerAncestral is diffusers' EulerAncestralDiscreteScheduler.
type eulerAncestral struct{ sigmaBase }

func (s *eulerAncestral) SetTimesteps(n int) error {
	if err := s.checkSteps(n); err != nil {
		return err
	}
	s.timesteps, s.sigmas = s.inferenceSigmas(n)
	return nil
}

func (s *eulerAncestral) PredOriginalSample() []float32 { return s.x0 }

func (s *eulerAncestral) ScaleModelInput(dst, sample []float32, k int) error {
	if err := s.checkCall(k, dst, sample); err != nil {
		return err
	}
	scaleBy(dst, sample, s.sigmas[k])
	return nil
}

func (s *eulerAncestral) Step(dst, modelOutput, sample []float32, k int, noise func([]float32)) error {
	if err := s.checkCall(k, dst, modelOutput, sample); err != nil {
		return err
	}
	if noise == nil {
		return fmt.Errorf("scheduler %s: step %d needs a noise source", s.cfg.Class, k)
	}
	sigma, to := s.sigmas[k], s.sigmas[k+1]
	x0 := s.x0Buf(len(dst))
	s.denoised(x0, modelOutput, sample, sigma)
	up := sqrt32(to * to * (sigma*sigma - to*to) / (sigma * sigma))
	down := sqrt32(to*to - up*up)
	dt := down - sigma
	for i := range dst {
		d := (sample[i] - x0[i]) / sigma
		dst[i] = sample[i] + d*dt
	}
	eps := s.drawNoise(len(dst), noise)
	for i := range dst {
		dst[i] += eps[i] * up
	}
	return nil
}

// lms is diffusers' LMSDiscreteScheduler: linear multistep of order up to 4
// on the ODE derivative, with coefficients integrated as scipy's quad does.
type lms struct {
	sigmaBase
	derivs [][]float32 // newest last, at most 4
	coeffs []float32
}

const lmsOrder = 4

func (s *lms) SetTimesteps(n int) error {
	if err := s.checkSteps(n); err != nil {
		return err
	}
	s.timesteps, s.sigmas = s.inferenceSigmas(n)
	s.derivs = s.derivs[:0]
	return nil
}

func (s *lms) PredOriginalSample() []float32 { return s.x0 }

func (s *lms) ScaleModelInput(dst, sample []float32, k int) error {
	if err := s.checkCall(k, dst, sample); err != nil {
		return err
	}
	scaleBy(dst, sample, s.sigmas[k])
	return nil
}

func (s *lms) Step(dst, modelOutput, sample []float32, k int, _ func([]float32)) error {
	if err := s.checkCall(k, dst, modelOutput, sample); err != nil {
		return err
	}
	if err := s.checkState(len(dst), s.derivs...); err != nil {
		return err
	}
	sigma := s.sigmas[k]
	x0 := s.x0Buf(len(dst))
	s.denoised(x0, modelOutput, sample, sigma)
	var reuse []float32
	if len(s.derivs) == lmsOrder {
		reuse = s.derivs[0]
		s.derivs = append(s.derivs[:0], s.derivs[1:]...)
	}
	if len(reuse) != len(dst) {
		reuse = make([]float32, len(dst))
	}
	for i := range reuse {
		reuse[i] = (sample[i] - x0[i]) / sigma
	}
	s.derivs = append(s.derivs, reuse)
	order := min(k+1, lmsOrder)
	s.coeffs = s.coeffs[:0]
	for cur := range order {
		s.coeffs = append(s.coeffs, float32(s.lmsCoefficient(order, k, cur)))
	}
	// diffusers zips the coefficients with the stored derivatives, newest
	// first; after starting mid-schedule there are fewer derivatives.
	m := min(len(s.coeffs), len(s.derivs))
	nd := len(s.derivs)
	for i := range dst {
		var sum float32
		for j := range m {
			sum += s.coeffs[j] * s.derivs[nd-1-j][i]
		}
		dst[i] = sample[i] + sum
	}
	return nil
}

// lmsCoefficient is ∫ from σ_t to σ_{t+1} of the Lagrange basis polynomial
// of the order points σ_t, σ_{t-1}, ... that is 1 at σ_{t-cur}. diffusers
// integrates it with scipy.integrate.quad over an integrand evaluated on
// float32 tensors; a polynomial of degree ≤ 3 is integrated exactly by the
// first 21-point Gauss–Kronrod rule quad applies, so that rule, on the
// same float32 integrand, is what is computed here.
func (s *lms) lmsCoefficient(order, t, cur int) float64 {
	sig := s.sigmas
	f := func(tau float64) float64 {
		prod := float32(1)
		for k := range order {
			if k == cur {
				continue
			}
			prod *= (float32(tau) - sig[t-k]) / (sig[t-cur] - sig[t-k])
		}
		return float64(prod)
	}
	return gaussKronrod21(f, float64(sig[t]), float64(sig[t+1]))
}

// Nodes and weights of QUADPACK's dqk21 (21-point Kronrod rule).
var (
	qk21x = [11]float64{
		0.995657163025808080735527280689003, 0.973906528517171720077964012084452,
		0.930157491355708226001207180059508, 0.865063366688984510732096688423493,
		0.780817726586416897063717578345042, 0.679409568299024406234327365114874,
		0.562757134668604683339000099272694, 0.433395394129247190799265943165784,
		0.294392862701460198131126603103866, 0.148874338981631210884826001129720,
		0,
	}
	qk21w = [11]float64{
		0.011694638867371874278064396062192, 0.032558162307964727478818972459390,
		0.054755896574351996031381300244580, 0.075039674810919952767043140916190,
		0.093125454583697605535065465083366, 0.109387158802297641899210590325805,
		0.123491976262065851077208980930340, 0.134709217311473325928054001771707,
		0.142775938577060080797094273138717, 0.147739104901338491374841515972068,
		0.149445554002916905664936468389821,
	}
)

// gaussKronrod21 is the Kronrod estimate of QUADPACK's dqk21 on [a, b], with
// its summation order.
func gaussKronrod21(f func(float64) float64, a, b float64) float64 {
	centr := 0.5 * (a + b)
	hlgth := 0.5 * (b - a)
	resk := qk21w[10] * f(centr)
	for j := 1; j <= 5; j++ {
		jtw := 2*j - 1 // Fortran index 2j, 0-based
		absc := hlgth * qk21x[jtw]
		resk += qk21w[jtw] * (f(centr-absc) + f(centr+absc))
	}
	for j := 1; j <= 5; j++ {
		jtwm1 := 2*j - 2 // Fortran index 2j-1, 0-based
		absc := hlgth * qk21x[jtwm1]
		resk += qk21w[jtwm1] * (f(centr-absc) + f(centr+absc))
	}
	return resk * hlgth
}

// heun is diffusers' HeunDiscreteScheduler: an Euler predictor and a
// trapezoid corrector, two model calls per step.
type heun struct {
	sigmaBase
	corrector bool      // the next call is the corrector of a step
	prevDeriv []float32 // the predictor's derivative
	dt        float32
	stored    []float32
}

func (s *heun) Order() int { return 2 }

func (s *heun) SetTimesteps(n int) error {
	if err := s.checkSteps(n); err != nil {
		return err
	}
	ts, sig := s.inferenceSigmas(n)
	// sigmas [s0, s1, s1, ..., s_{n-1}, s_{n-1}, 0];
	// timesteps [t0, t1, t1, ..., t_{n-1}, t_{n-1}].
	s.sigmas = append(s.sigmas[:0], sig[0])
	for _, v := range sig[1 : len(sig)-1] {
		s.sigmas = append(s.sigmas, v, v)
	}
	s.sigmas = append(s.sigmas, sig[len(sig)-1])
	s.timesteps = []float64{ts[0]}
	for _, t := range ts[1:] {
		s.timesteps = append(s.timesteps, t, t)
	}
	s.corrector = false
	return nil
}

func (s *heun) ScaleModelInput(dst, sample []float32, k int) error {
	if err := s.checkCall(k, dst, sample); err != nil {
		return err
	}
	scaleBy(dst, sample, s.sigmas[k])
	return nil
}

func (s *heun) Step(dst, modelOutput, sample []float32, k int, _ func([]float32)) error {
	if err := s.checkCall(k, dst, modelOutput, sample); err != nil {
		return err
	}
	first := !s.corrector
	if !first {
		if err := s.checkState(len(dst), s.stored, s.prevDeriv); err != nil {
			return err
		}
	}
	var sigma, next float32
	if first {
		sigma, next = s.sigmas[k], s.sigmas[k+1]
	} else {
		if k < 1 {
			return fmt.Errorf("scheduler %s: corrector step at index 0", s.cfg.Class)
		}
		sigma, next = s.sigmas[k-1], s.sigmas[k]
	}
	in := sigma
	if !first {
		in = next
	}
	x0 := s.x0Buf(len(dst))
	s.denoised(x0, modelOutput, sample, in)
	if s.cfg.ClipSample {
		lim := float32(s.cfg.ClipSampleRange)
		for i, v := range x0 {
			x0[i] = min(max(v, -lim), lim)
		}
	}
	if first {
		s.dt = next - sigma
		s.stored = clone(s.stored, sample)
		if len(s.prevDeriv) != len(dst) {
			s.prevDeriv = make([]float32, len(dst))
		}
		d := s.prevDeriv
		for i := range dst {
			d[i] = (sample[i] - x0[i]) / sigma
			dst[i] = sample[i] + d[i]*s.dt
		}
		s.corrector = true
		return nil
	}
	for i := range dst {
		d := (sample[i] - x0[i]) / next
		d = (s.prevDeriv[i] + d) / 2
		dst[i] = s.stored[i] + d*s.dt
	}
	s.corrector = false
	return nil
}

// kdpm2 is diffusers' KDPM2DiscreteScheduler (DPM-Solver-2 in k-diffusion
// form) and, with ancestral, KDPM2AncestralDiscreteScheduler: a step to the
// log-midpoint sigma, then a corrector from the midpoint model output.
type kdpm2 struct {
	sigmaBase
	ancestral bool
	interpol  []float32 // diffusers' sigmas_interpol (element 0 unused)
	up, down  []float32 // ancestral only
	stored    []float32 // sample at the predictor call
	haveStore bool      // the next call is the corrector of a step
}

func (s *kdpm2) Order() int { return 2 }

// lerpHalf is torch.lerp(a, b, 0.5) in float32.
func lerpHalf(a, b float32) float32 { return b - (b-a)*0.5 }

func (s *kdpm2) SetTimesteps(n int) error {
	if err := s.checkSteps(n); err != nil {
		return err
	}
	ts, sig := s.inferenceSigmas(n)
	logTrain := npLogs32(s.train.sigmas)
	m := len(sig) // n+1
	interp := make([]float32, m)
	var up, down []float32
	if !s.ancestral {
		// log-midpoints between consecutive sigmas (element 0 is NaN in
		// diffusers and never read).
		interp[0] = float32(math.NaN())
		for i := 1; i < m; i++ {
			interp[i] = exp32(lerpHalf(log32(sig[i]), log32(sig[i-1])))
		}
	} else {
		up, down = make([]float32, m), make([]float32, m)
		for i := range m {
			next := float32(0)
			if i+1 < m {
				next = sig[i+1]
			}
			up[i] = sqrt32(next * next * (sig[i]*sig[i] - next*next) / (sig[i] * sig[i]))
			down[i] = sqrt32(next*next - up[i]*up[i])
		}
		down[m-1] = 0
		for i := range m {
			interp[i] = exp32(lerpHalf(log32(sig[i]), log32(down[i])))
		}
		interp[m-1], interp[m-2] = 0, 0
	}
	tInterp := make([]float64, m)
	for i, v := range interp {
		tInterp[i] = float64(sigmaToT32(v, logTrain))
	}
	// [x0, x1, x1, ..., x_n, x_n, x_n]
	repeat := func(xs []float32) []float32 {
		out := []float32{xs[0]}
		for _, v := range xs[1:] {
			out = append(out, v, v)
		}
		return append(out, xs[len(xs)-1])
	}
	s.sigmas = repeat(sig)
	s.interpol = repeat(interp)
	s.timesteps = []float64{ts[0]}
	if s.ancestral {
		s.up, s.down = repeat(up), repeat(down)
		for j := 0; j < n-1; j++ {
			s.timesteps = append(s.timesteps, tInterp[j], ts[j+1])
		}
	} else {
		for j := 1; j < n; j++ {
			s.timesteps = append(s.timesteps, tInterp[j], ts[j])
		}
	}
	s.haveStore = false
	return nil
}

// SigmasInterpol returns diffusers' self.sigmas_interpol after SetTimesteps.
func (s *kdpm2) SigmasInterpol() []float32 { return s.interpol }

func (s *kdpm2) ScaleModelInput(dst, sample []float32, k int) error {
	if err := s.checkCall(k, dst, sample); err != nil {
		return err
	}
	sigma := s.sigmas[k]
	if s.haveStore {
		switch {
		case !s.ancestral:
			sigma = s.interpol[k]
		case k >= 1:
			sigma = s.interpol[k-1]
		default:
			return fmt.Errorf("scheduler %s: corrector call at index 0", s.cfg.Class)
		}
	}
	scaleBy(dst, sample, sigma)
	return nil
}

func (s *kdpm2) Step(dst, modelOutput, sample []float32, k int, noise func([]float32)) error {
	if err := s.checkCall(k, dst, modelOutput, sample); err != nil {
		return err
	}
	first := !s.haveStore
	if !first {
		if err := s.checkState(len(dst), s.stored); err != nil {
			return err
		}
	}
	if !first && k < 1 {
		return fmt.Errorf("scheduler %s: corrector call at index 0", s.cfg.Class)
	}
	var sigma, interp, next, up, down float32
	switch {
	case first && !s.ancestral:
		sigma, interp, next = s.sigmas[k], s.interpol[k+1], s.sigmas[k+1]
	case !first && !s.ancestral:
		sigma, interp, next = s.sigmas[k-1], s.interpol[k], s.sigmas[k]
	case first:
		sigma, interp = s.sigmas[k], s.interpol[k]
	default:
		sigma, interp, up, down = s.sigmas[k-1], s.interpol[k-1], s.up[k-1], s.down[k-1]
	}
	var eps []float32
	if s.ancestral {
		// drawn on every call; only the corrector uses it.
		eps = s.drawNoise(len(dst), noise)
		if eps == nil && !first {
			return fmt.Errorf("scheduler %s: step %d needs a noise source", s.cfg.Class, k)
		}
	}
	in := sigma
	if !first {
		in = interp
	}
	x0 := s.x0Buf(len(dst))
	s.denoised(x0, modelOutput, sample, in)
	if first {
		dt := interp - sigma
		s.stored = clone(s.stored, sample)
		for i := range dst {
			d := (s.stored[i] - x0[i]) / sigma
			dst[i] = s.stored[i] + d*dt
		}
		s.haveStore = true
		return nil
	}
	var dt float32
	if s.ancestral {
		dt = down - sigma
	} else {
		dt = next - sigma
	}
	for i := range dst {
		d := (sample[i] - x0[i]) / interp
		dst[i] = s.stored[i] + d*dt
		if s.ancestral {
			dst[i] += eps[i] * up
		}
	}
	s.haveStore = false
	return nil
}
