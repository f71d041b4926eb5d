package scheduler

import (
	"fmt"
	"math"
	"slices"
)

// solverBase is what the exponential-integrator solvers share
// (DPM-Solver++ multistep and singlestep, UniPC, DEIS): α_t = sqrt(ᾱ_t),
// σ_t = sqrt(1-ᾱ_t) and λ_t = log α_t - log σ_t at integer timesteps, a
// history of converted model outputs, and stepping from timesteps[k] to
// timesteps[k+1] (to t = 0 after the last).
type solverBase struct {
	base
	alphaT, sigmaT, lambdaT []float32
	sigmas                  []float64   // diffusers' self.sigmas (training or Karras sigmas)
	outputs                 [][]float32 // model_outputs, oldest first; nil where unset
	spare                   []float32   // buffer for the next converted output
	lowerOrderNums          int
}

func newSolverBase(b base) solverBase {
	n := len(b.train.alphasCumprod)
	s := solverBase{base: b, alphaT: make([]float32, n), sigmaT: make([]float32, n), lambdaT: make([]float32, n)}
	for i, a := range b.train.alphasCumprod {
		s.alphaT[i] = sqrt32(a)
		s.sigmaT[i] = sqrt32(1 - a)
		s.lambdaT[i] = log32(s.alphaT[i]) - log32(s.sigmaT[i])
	}
	return s
}

// Sigmas returns diffusers' self.sigmas after SetTimesteps: the training
// sigmas, or the ascending Karras sigmas.
func (s *solverBase) Sigmas() []float64 { return s.sigmas }

// lastTimestep is diffusers' last_timestep: num_train_timesteps minus the
// timesteps whose λ is below lambda_min_clipped.
func (s *solverBase) lastTimestep() int {
	T := s.cfg.NumTrainTimesteps
	if s.cfg.Class != DPMSolverMultistep && s.cfg.Class != DPMSolverSinglestep {
		return T
	}
	// searchsorted(flip(λ), lambda_min_clipped), side left.
	lmc := float32(s.cfg.LambdaMinClipped)
	clipped := 0
	for clipped < T && s.lambdaT[T-1-clipped] < lmc {
		clipped++
	}
	return T - clipped
}

// setSolverTimesteps computes the timesteps of n steps (Karras-chosen when
// configured, duplicates removed) and resets the history.
func (s *solverBase) setSolverTimesteps(cfg *Config, n int) error {
	if err := s.checkSteps(n); err != nil {
		return err
	}
	last := s.lastTimestep()
	if last < 1 {
		return fmt.Errorf("scheduler %s: lambda_min_clipped leaves no timesteps", s.cfg.Class)
	}
	ts := solverTimesteps(cfg, n, last)
	train := s.train.sigmas
	s.sigmas = make([]float64, len(train))
	for i, v := range train {
		s.sigmas[i] = float64(v)
	}
	if s.cfg.UseKarrasSigmas {
		logs := npLogs32(train)
		s.sigmas = karrasSigmas(float64(train[0]), float64(train[len(train)-1]), n)
		ts = make([]float64, n)
		for i, v := range s.sigmas {
			ts[n-1-i] = math.RoundToEven(sigmaToT(v, logs))
		}
	}
	// np.unique(return_index=True), in the original order.
	seen := make(map[float64]bool, len(ts))
	out := ts[:0]
	for _, t := range ts {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return fmt.Errorf("scheduler %s: %d steps give no timesteps", s.cfg.Class, n)
	}
	s.timesteps = out
	s.outputs = make([][]float32, s.cfg.SolverOrder)
	s.lowerOrderNums = 0
	return nil
}

// prevTimestep is the timestep call k steps to: the next one, or 0.
func (s *solverBase) prevTimestep(k int) int {
	if k == len(s.timesteps)-1 {
		return 0
	}
	return int(s.timesteps[k+1])
}

// convertX0 writes the data prediction x₀ of a model output at timestep t
// into dst.
func (s *solverBase) convertX0(dst, modelOutput, sample []float32, t int) {
	at, st := s.alphaT[t], s.sigmaT[t]
	if s.cfg.PredictionType == "v_prediction" {
		for i := range dst {
			dst[i] = at*sample[i] - st*modelOutput[i]
		}
		return
	}
	for i := range dst {
		dst[i] = (sample[i] - st*modelOutput[i]) / at
	}
}

// nextOutput returns a buffer of length n for the next converted output.
func (s *solverBase) nextOutput(n int) []float32 {
	if len(s.spare) != n {
		s.spare = make([]float32, n)
	}
	return s.spare
}

// pushOutput appends out to the history, dropping the oldest, whose buffer
// becomes the spare.
func (s *solverBase) pushOutput(out []float32) {
	oldest := s.outputs[0]
	copy(s.outputs, s.outputs[1:])
	s.outputs[len(s.outputs)-1] = out
	s.spare = oldest
}

// output returns model_outputs[-i] (i ≥ 1).
func (s *solverBase) output(i int) []float32 { return s.outputs[len(s.outputs)-i] }

func (s *solverBase) checkTimestep(t int) error {
	if t < 0 || t >= len(s.alphaT) {
		return fmt.Errorf("scheduler %s: timestep %d is out of range", s.cfg.Class, t)
	}
	return nil
}

// dpmFirstOrder is DPM-Solver++'s first-order update (DDIM) from s to t.
func (s *solverBase) dpmFirstOrder(dst, x0, sample []float32, t, from int) {
	h := s.lambdaT[t] - s.lambdaT[from]
	c1 := s.sigmaT[t] / s.sigmaT[from]
	c2 := s.alphaT[t] * (exp32(-h) - 1)
	for i := range dst {
		dst[i] = c1*sample[i] - c2*x0[i]
	}
}

// dpmSecondOrder is DPM-Solver++'s second-order (midpoint or heun) update
// to t from the sample at timestep from, using the outputs m0 at s0 and m1
// at s1 (s1 before s0): D0 = d0, D1 = (m0-m1)/r0, r0 = (λ_s0-λ_s1)/h. The
// multistep solver starts at s0 with D0 = m0, the singlestep solver at s1
// with D0 = m1.
func (s *solverBase) dpmSecondOrder(dst, m0, m1, d0, sample []float32, t, s0, s1, from int) {
	h := s.lambdaT[t] - s.lambdaT[from]
	h0 := s.lambdaT[s0] - s.lambdaT[s1]
	r0 := h0 / h
	inv := 1 / r0
	at := s.alphaT[t]
	c1 := s.sigmaT[t] / s.sigmaT[from]
	em1 := exp32(-h) - 1
	c2 := at * em1
	if s.cfg.SolverType == "heun" {
		c3 := at * (em1/h + 1)
		for i := range dst {
			d1 := inv * (m0[i] - m1[i])
			dst[i] = c1*sample[i] - c2*d0[i] + c3*d1
		}
		return
	}
	c3 := 0.5 * c2
	for i := range dst {
		d1 := inv * (m0[i] - m1[i])
		dst[i] = c1*sample[i] - c2*d0[i] - c3*d1
	}
}

// dpmMultistep is diffusers' DPMSolverMultistepScheduler (dpmsolver++,
// order 1 or 2).
type dpmMultistep struct{ solverBase }

func (s *dpmMultistep) SetTimesteps(n int) error { return s.setSolverTimesteps(&s.cfg, n) }

func (s *dpmMultistep) Step(dst, modelOutput, sample []float32, k int, _ func([]float32)) error {
	if err := s.checkCall(k, dst, modelOutput, sample); err != nil {
		return err
	}
	if err := s.checkState(len(dst), s.outputs...); err != nil {
		return err
	}
	t, prev := int(s.timesteps[k]), s.prevTimestep(k)
	if err := s.checkTimestep(t); err != nil {
		return err
	}
	n := len(s.timesteps)
	lowerFinal := k == n-1 && s.cfg.LowerOrderFinal && n < 15
	x0 := s.nextOutput(len(dst))
	s.convertX0(x0, modelOutput, sample, t)
	s.pushOutput(x0)
	if s.cfg.SolverOrder == 1 || s.lowerOrderNums < 1 || lowerFinal {
		s.dpmFirstOrder(dst, x0, sample, prev, t)
	} else {
		if k < 1 || s.output(2) == nil {
			return fmt.Errorf("scheduler %s: step %d: no previous model output", s.cfg.Class, k)
		}
		s1 := int(s.timesteps[k-1])
		s.dpmSecondOrder(dst, x0, s.output(2), x0, sample, prev, t, s1, t)
	}
	if s.lowerOrderNums < s.cfg.SolverOrder {
		s.lowerOrderNums++
	}
	return nil
}

// dpmSinglestep is diffusers' DPMSolverSinglestepScheduler (dpmsolver++,
// order 1 or 2): each second-order step restarts from the sample of the
// first-order step before it.
type dpmSinglestep struct {
	solverBase
	orders []int
	stored []float32
}

func (s *dpmSinglestep) SetTimesteps(n int) error {
	cfg := s.cfg
	cfg.TimestepSpacing = "linspace"
	if err := s.setSolverTimesteps(&cfg, n); err != nil {
		return err
	}
	// get_order_list; diffusers forces lower_order_final when n is not a
	// multiple of the order.
	s.orders = s.orders[:0]
	for len(s.orders) < n {
		if s.cfg.SolverOrder == 1 || len(s.orders) == n-1 {
			s.orders = append(s.orders, 1)
		} else {
			s.orders = append(s.orders, 1, 2)
		}
	}
	s.stored = nil
	return nil
}

func (s *dpmSinglestep) Step(dst, modelOutput, sample []float32, k int, _ func([]float32)) error {
	if err := s.checkCall(k, dst, modelOutput, sample); err != nil {
		return err
	}
	if err := s.checkState(len(dst), s.outputs...); err != nil {
		return err
	}
	t, prev := int(s.timesteps[k]), s.prevTimestep(k)
	if err := s.checkTimestep(t); err != nil {
		return err
	}
	x0 := s.nextOutput(len(dst))
	s.convertX0(x0, modelOutput, sample, t)
	s.pushOutput(x0)
	order := 1
	if k < len(s.orders) {
		order = s.orders[k]
	}
	// When starting mid-schedule (img2img) the history may be short.
	for order > 1 && s.output(order) == nil {
		order--
	}
	if order == 1 {
		s.stored = clone(s.stored, sample)
		s.dpmFirstOrder(dst, x0, s.stored, prev, t)
		return nil
	}
	if k < 1 || len(s.stored) != len(dst) {
		return fmt.Errorf("scheduler %s: step %d: no stored first-order sample", s.cfg.Class, k)
	}
	s1 := int(s.timesteps[k-1])
	m1 := s.output(2)
	s.dpmSecondOrder(dst, x0, m1, m1, s.stored, prev, t, s1, s1)
	return nil
}

// deis is diffusers' DEISMultistepScheduler (logrho, order 1 or 2).
type deis struct{ solverBase }

func (s *deis) SetTimesteps(n int) error { return s.setSolverTimesteps(&s.cfg, n) }

func (s *deis) Step(dst, modelOutput, sample []float32, k int, _ func([]float32)) error {
	if err := s.checkCall(k, dst, modelOutput, sample); err != nil {
		return err
	}
	if err := s.checkState(len(dst), s.outputs...); err != nil {
		return err
	}
	t, prev := int(s.timesteps[k]), s.prevTimestep(k)
	if err := s.checkTimestep(t); err != nil {
		return err
	}
	n := len(s.timesteps)
	lowerFinal := k == n-1 && s.cfg.LowerOrderFinal && n < 15
	// DEIS works on ε: x₀ is predicted, then turned back into ε.
	eps := s.nextOutput(len(dst))
	s.convertX0(eps, modelOutput, sample, t)
	at, st := s.alphaT[t], s.sigmaT[t]
	for i := range eps {
		eps[i] = (sample[i] - at*eps[i]) / st
	}
	s.pushOutput(eps)
	if s.cfg.SolverOrder == 1 || s.lowerOrderNums < 1 || lowerFinal {
		h := s.lambdaT[prev] - s.lambdaT[t]
		c1 := s.alphaT[prev] / s.alphaT[t]
		c2 := s.sigmaT[prev] * (exp32(h) - 1)
		for i := range dst {
			dst[i] = c1*sample[i] - c2*eps[i]
		}
	} else {
		if k < 1 || s.output(2) == nil {
			return fmt.Errorf("scheduler %s: step %d: no previous model output", s.cfg.Class, k)
		}
		s.deisSecondOrder(dst, eps, s.output(2), sample, prev, t, int(s.timesteps[k-1]))
	}
	if s.lowerOrderNums < s.cfg.SolverOrder {
		s.lowerOrderNums++
	}
	return nil
}

// deisSecondOrder is the second-order logrho DEIS update, with the
// coefficients computed in float32 as diffusers' numpy/torch mix does.
func (s *deis) deisSecondOrder(dst, m0, m1, sample []float32, t, s0, s1 int) {
	at, as0, as1 := s.alphaT[t], s.alphaT[s0], s.alphaT[s1]
	rt, rs0, rs1 := s.sigmaT[t]/at, s.sigmaT[s0]/as0, s.sigmaT[s1]/as1
	// ∫ (log t - log c)/(log b - log c) dt
	ind := func(t, b, c float32) float32 {
		return t * (-npLog32(c) + npLog32(t) - 1) / (npLog32(b) - npLog32(c))
	}
	coef1 := ind(rt, rs0, rs1) - ind(rs0, rs0, rs1)
	coef2 := ind(rt, rs1, rs0) - ind(rs0, rs1, rs0)
	for i := range dst {
		dst[i] = at * (sample[i]/as0 + coef1*m0[i] + coef2*m1[i])
	}
}

// unipc is diffusers' UniPCMultistepScheduler (predict_x0, bh1 or bh2,
// order 1 or 2): a UniP predictor and, from the second step on, a UniC
// corrector applied to the incoming sample.
type unipc struct {
	solverBase
	tsList    []int // timestep_list, oldest first
	last      []float32
	haveLast  bool
	thisOrder int
}

func (s *unipc) SetTimesteps(n int) error {
	if err := s.setSolverTimesteps(&s.cfg, n); err != nil {
		return err
	}
	s.tsList = make([]int, s.cfg.SolverOrder)
	s.haveLast = false
	s.thisOrder = 0
	return nil
}

func (s *unipc) Step(dst, modelOutput, sample []float32, k int, _ func([]float32)) error {
	if err := s.checkCall(k, dst, modelOutput, sample); err != nil {
		return err
	}
	if err := s.checkState(len(dst), s.outputs...); err != nil {
		return err
	}
	t, prev := int(s.timesteps[k]), s.prevTimestep(k)
	if err := s.checkTimestep(t); err != nil {
		return err
	}
	if s.haveLast {
		if err := s.checkState(len(dst), s.last); err != nil {
			return err
		}
	}
	useCorrector := k > 0 && !slices.Contains(s.cfg.DisableCorrector, k-1) && s.haveLast
	x0 := s.nextOutput(len(dst))
	s.convertX0(x0, modelOutput, sample, t)
	if useCorrector {
		// The corrected sample overwrites last_sample in place.
		if err := s.corrector(s.last, x0, t, s.thisOrder); err != nil {
			return err
		}
	} else {
		s.last = clone(s.last, sample)
	}
	s.pushOutput(x0)
	copy(s.tsList, s.tsList[1:])
	s.tsList[len(s.tsList)-1] = t
	order := s.cfg.SolverOrder
	if s.cfg.LowerOrderFinal {
		order = min(order, len(s.timesteps)-k)
	}
	s.thisOrder = min(order, s.lowerOrderNums+1)
	s.haveLast = true
	if err := s.predictor(dst, s.last, prev, s.thisOrder); err != nil {
		return err
	}
	if s.lowerOrderNums < s.cfg.SolverOrder {
		s.lowerOrderNums++
	}
	return nil
}

// uniCoefficients computes hh = -h, h·φ₁ = expm1(hh), B(h) and the vector b
// of UniPC's order conditions, in float32.
func (s *unipc) uniCoefficients(h float32, order int) (hPhi1, bh float32, b []float32) {
	hh := -h
	hPhi1 = float32(math.Expm1(float64(hh)))
	hPhiK := hPhi1/hh - 1
	if s.cfg.SolverType == "bh1" {
		bh = hh
	} else {
		bh = hPhi1
	}
	fact := 1
	for i := 1; i <= order; i++ {
		b = append(b, hPhiK*float32(fact)/bh)
		fact *= i + 1
		hPhiK = hPhiK/hh - float32(1/float64(fact))
	}
	return hPhi1, bh, b
}

// predictor is multistep_uni_p_bh_update: from x at timestep_list[-1] to t.
func (s *unipc) predictor(dst, x []float32, t, order int) error {
	s0 := s.tsList[len(s.tsList)-1]
	m0 := s.output(1)
	h := s.lambdaT[t] - s.lambdaT[s0]
	hPhi1, bh, _ := s.uniCoefficients(h, order)
	at := s.alphaT[t]
	c1 := s.sigmaT[t] / s.sigmaT[s0]
	c2 := at * hPhi1
	c3 := at * bh
	if order == 1 {
		for i := range dst {
			dst[i] = c1*x[i] - c2*m0[i]
		}
		return nil
	}
	m1 := s.output(2)
	if m1 == nil {
		return fmt.Errorf("scheduler %s: predictor of order 2 without a previous model output", s.cfg.Class)
	}
	rk := (s.lambdaT[s.tsList[len(s.tsList)-2]] - s.lambdaT[s0]) / h
	const rho = 0.5 // diffusers' simplified order-2 predictor
	for i := range dst {
		d1 := (m1[i] - m0[i]) / rk
		dst[i] = c1*x[i] - c2*m0[i] - c3*(rho*d1)
	}
	return nil
}

// corrector is multistep_uni_c_bh_update: it corrects the sample at t
// (predicted from last at timestep_list[-1]) with the model output at t,
// writing into last.
func (s *unipc) corrector(last, modelT []float32, t, order int) error {
	s0 := s.tsList[len(s.tsList)-1]
	m0 := s.output(1)
	if m0 == nil || order < 1 {
		return fmt.Errorf("scheduler %s: corrector without a previous model output", s.cfg.Class)
	}
	h := s.lambdaT[t] - s.lambdaT[s0]
	hPhi1, bh, b := s.uniCoefficients(h, order)
	at := s.alphaT[t]
	c1 := s.sigmaT[t] / s.sigmaT[s0]
	c2 := at * hPhi1
	c3 := at * bh
	if order == 1 {
		const rhoC = 0.5
		for i := range last {
			d1t := modelT[i] - m0[i]
			last[i] = c1*last[i] - c2*m0[i] - c3*(0+rhoC*d1t)
		}
		return nil
	}
	m1 := s.output(2)
	if m1 == nil {
		return fmt.Errorf("scheduler %s: corrector of order 2 without two model outputs", s.cfg.Class)
	}
	rk := (s.lambdaT[s.tsList[len(s.tsList)-2]] - s.lambdaT[s0]) / h
	rho0, rho1 := solve2(rk, b[0], b[1])
	for i := range last {
		d1 := (m1[i] - m0[i]) / rk
		d1t := modelT[i] - m0[i]
		last[i] = c1*last[i] - c2*m0[i] - c3*(rho0*d1+rho1*d1t)
	}
	return nil
}

// solve2 solves [[1, 1], [rk, 1]]·x = (b0, b1) in float32 by LU with
// partial pivoting, as LAPACK's sgesv (behind torch.linalg.solve) does.
func solve2(rk, b0, b1 float32) (x0, x1 float32) {
	a00, a01, a10, a11 := float32(1), float32(1), rk, float32(1)
	if abs32(a10) > abs32(a00) {
		a00, a01, a10, a11 = a10, a11, a00, a01
		b0, b1 = b1, b0
	}
	l10 := a10 * (1 / a00)
	u11 := a11 - l10*a01
	y1 := b1 - l10*b0
	x1 = y1 / u11
	x0 = (b0 - x1*a01) / a00
	return x0, x1
}

func abs32(x float32) float32 { return float32(math.Abs(float64(x))) }
