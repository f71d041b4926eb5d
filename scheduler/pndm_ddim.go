package scheduler

import "fmt"

// pndm is diffusers' PNDMScheduler with skip_prk_steps: pseudo linear
// multistep (PLMS) steps, Adams–Bashforth of growing order on the model
// outputs.
type pndm struct {
	base
	ratio     int         // num_train_timesteps // n
	ets       [][]float32 // the last (up to 4) model outputs, oldest first
	counter   int
	curSample []float32
	combined  []float32
}

func (s *pndm) SetTimesteps(n int) error {
	if err := s.checkSteps(n); err != nil {
		return err
	}
	s.ratio = s.cfg.NumTrainTimesteps / n
	ts := s.spacedInts(n) // descending t0 > t1 > ... > t_{n-1}
	// diffusers' plms_timesteps: [t0, t1, t1, t2, ..., t_{n-1}]
	out := make([]float64, 0, n+1)
	for i, t := range ts {
		out = append(out, t)
		if i == 1 {
			out = append(out, t)
		}
	}
	s.timesteps = out
	s.ets = s.ets[:0]
	s.counter = 0
	s.curSample = nil
	return nil
}

func (s *pndm) Step(dst, modelOutput, sample []float32, k int, _ func([]float32)) error {
	if err := s.checkCall(k, dst, modelOutput, sample); err != nil {
		return err
	}
	if err := s.checkState(len(dst), s.ets...); err != nil {
		return err
	}
	if err := s.checkState(len(dst), s.curSample); err != nil {
		return err
	}
	t := int(s.timesteps[k])
	prevT := t - s.ratio
	if s.counter != 1 {
		var reuse []float32
		if len(s.ets) == 4 {
			reuse = s.ets[0]
			s.ets = append(s.ets[:0], s.ets[1:]...)
		}
		s.ets = append(s.ets, clone(reuse, modelOutput))
	} else {
		prevT = t
		t += s.ratio
	}
	mo := clone(s.combined, modelOutput)
	s.combined = mo
	e := s.ets
	n := len(e)
	switch {
	case n == 1 && s.counter == 0:
		s.curSample = clone(s.curSample, sample)
	case n == 1 && s.counter == 1:
		if s.curSample == nil {
			return fmt.Errorf("scheduler %s: step %d: no stored sample", s.cfg.Class, k)
		}
		last := e[0]
		for i := range mo {
			mo[i] = (mo[i] + last[i]) / 2
		}
		sample = s.curSample
	case n == 2:
		for i := range mo {
			mo[i] = (3*e[1][i] - e[0][i]) / 2
		}
	case n == 3:
		for i := range mo {
			mo[i] = (23*e[2][i] - 16*e[1][i] + 5*e[0][i]) / 12
		}
	default:
		const c = float32(1.0 / 24)
		for i := range mo {
			mo[i] = c * (55*e[3][i] - 59*e[2][i] + 37*e[1][i] - 9*e[0][i])
		}
	}
	if err := s.prevSample(dst, sample, mo, t, prevT); err != nil {
		return err
	}
	if n == 1 && s.counter == 1 {
		s.curSample = nil
	}
	s.counter++
	return nil
}

// prevSample is PNDM's _get_prev_sample (formula (9) of the PNDM paper).
func (s *pndm) prevSample(dst, sample, mo []float32, t, prevT int) error {
	at, err := s.alphaAt(t, 0)
	if err != nil || t < 0 {
		return fmt.Errorf("scheduler %s: timestep %d is out of range", s.cfg.Class, t)
	}
	ap, err := s.alphaAt(prevT, s.finalAlpha())
	if err != nil {
		return err
	}
	bt, bp := 1-at, 1-ap
	if s.cfg.PredictionType == "v_prediction" {
		sa, sb := sqrt32(at), sqrt32(bt)
		for i := range mo {
			mo[i] = sa*mo[i] + sb*sample[i]
		}
	}
	sampleCoeff := sqrt32(ap / at)
	denom := at*sqrt32(bp) + sqrt32(at*bt*ap)
	diff := ap - at
	for i := range dst {
		dst[i] = sampleCoeff*sample[i] - diff*mo[i]/denom
	}
	return nil
}

// ddim is diffusers' DDIMScheduler with eta = 0 (deterministic).
type ddim struct {
	base
	ratio int
	x0    []float32
}

func (s *ddim) SetTimesteps(n int) error {
	if err := s.checkSteps(n); err != nil {
		return err
	}
	s.ratio = s.cfg.NumTrainTimesteps / n
	s.timesteps = s.spacedInts(n)
	return nil
}

func (s *ddim) PredOriginalSample() []float32 { return s.x0 }

func (s *ddim) Step(dst, modelOutput, sample []float32, k int, _ func([]float32)) error {
	if err := s.checkCall(k, dst, modelOutput, sample); err != nil {
		return err
	}
	t := int(s.timesteps[k])
	at, err := s.alphaAt(t, 0)
	if err != nil || t < 0 {
		return fmt.Errorf("scheduler %s: timestep %d is out of range", s.cfg.Class, t)
	}
	ap, err := s.alphaAt(t-s.ratio, s.finalAlpha())
	if err != nil {
		return err
	}
	bt := 1 - at
	sa, sb := sqrt32(at), sqrt32(bt)
	sap := sqrt32(ap)
	dir := sqrt32(1 - ap)
	if len(s.x0) != len(dst) {
		s.x0 = make([]float32, len(dst))
	}
	lim := float32(s.cfg.ClipSampleRange)
	for i := range dst {
		var x0, eps float32
		if s.cfg.PredictionType == "v_prediction" {
			x0 = sa*sample[i] - sb*modelOutput[i]
			eps = sa*modelOutput[i] + sb*sample[i]
		} else {
			x0 = (sample[i] - sb*modelOutput[i]) / sa
			eps = modelOutput[i]
		}
		if s.cfg.ClipSample {
			x0 = min(max(x0, -lim), lim)
		}
		s.x0[i] = x0
		dst[i] = sap*x0 + dir*eps
	}
	return nil
}
