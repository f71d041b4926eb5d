package scheduler

import (
	"fmt"
	"math"
	"slices"
	"sort"
)

// trainSchedule is the training noise schedule every scheduler builds in its
// constructor, in float32 as diffusers' torch tensors hold it.
type trainSchedule struct {
	betas         []float32
	alphasCumprod []float32
	// sigmas[t] = sqrt((1-ᾱ_t)/ᾱ_t) in float32, ascending in t.
	sigmas []float32
}

// torchLinspace32 restates torch.linspace(start, end, n, dtype=float32) as
// PyTorch's x86-64 CPU kernel (AVX2 build) computes it, so that the betas
// match bit for bit: the step is float32; the first half counts up from
// start and the second half down from end, each value as one fused
// multiply-add; the kernel fills blocks of 8 from the fused value at the
// block's start plus j·step, in pairs of blocks, and the tail element by
// element.
func torchLinspace32(start, end float64, n int) []float32 {
	out := make([]float32, n)
	if n == 1 {
		out[0] = float32(start)
		return out
	}
	s, e := float32(start), float32(end)
	step := (e - s) / float32(n-1)
	half := n / 2
	at := func(i int) float32 {
		if i < half {
			return fma32(step, float32(i), s)
		}
		return fma32(-step, float32(n-i-1), e)
	}
	const vec = 8
	i := 0
	for ; i+2*vec <= n; i += 2 * vec {
		for b := i; b < i+2*vec; b += vec {
			base := at(b)
			for j := range vec {
				out[b+j] = fma32(float32(j), step, base)
			}
		}
	}
	for ; i < n; i++ {
		out[i] = at(i)
	}
	return out
}

// fma32 is the float32 fused multiply-add a*b+c with a single rounding.
func fma32(a, b, c float32) float32 {
	// a*b is exact in float64; the sum s may be rounded, and rounding s to
	// float32 again is wrong only when s is a float32 midpoint that the
	// first rounding produced: then step s towards the exact value.
	p := float64(a) * float64(b)
	s := p + float64(c)
	bb := s - p
	e := (p - (s - bb)) + (float64(c) - bb)
	if e != 0 {
		r := float64(float32(s))
		lo, hi := r, r
		if r < s {
			hi = float64(math.Nextafter32(float32(r), float32(math.Inf(1))))
		} else {
			lo = float64(math.Nextafter32(float32(r), float32(math.Inf(-1))))
		}
		if s-lo == hi-s {
			s = math.Nextafter(s, s+e)
		}
	}
	return float32(s)
}

// newTrainSchedule builds betas, ᾱ and the training sigmas from a config.
func newTrainSchedule(cfg *Config) (*trainSchedule, error) {
	n := cfg.NumTrainTimesteps
	var betas []float32
	switch {
	case len(cfg.TrainedBetas) > 0:
		if len(cfg.TrainedBetas) != n {
			return nil, fmt.Errorf("trained_betas has %d values, num_train_timesteps is %d", len(cfg.TrainedBetas), n)
		}
		betas = make([]float32, n)
		for i, b := range cfg.TrainedBetas {
			betas[i] = float32(b)
		}
	case cfg.BetaSchedule == "linear":
		betas = torchLinspace32(cfg.BetaStart, cfg.BetaEnd, n)
	case cfg.BetaSchedule == "scaled_linear":
		betas = torchLinspace32(math.Sqrt(cfg.BetaStart), math.Sqrt(cfg.BetaEnd), n)
		for i, b := range betas {
			betas[i] = b * b
		}
	case cfg.BetaSchedule == "squaredcos_cap_v2":
		// betas_for_alpha_bar with the cosine transform, in float64, then
		// stored as float32.
		alphaBar := func(t float64) float64 {
			c := math.Cos((t + 0.008) / 1.008 * math.Pi / 2)
			return c * c
		}
		betas = make([]float32, n)
		for i := range betas {
			t1 := float64(i) / float64(n)
			t2 := float64(i+1) / float64(n)
			betas[i] = float32(math.Min(1-alphaBar(t2)/alphaBar(t1), 0.999))
		}
	default:
		return nil, fmt.Errorf("beta_schedule %q is not supported", cfg.BetaSchedule)
	}
	ts := &trainSchedule{betas: betas, alphasCumprod: make([]float32, n), sigmas: make([]float32, n)}
	// torch.cumprod on float32 accumulates in double and rounds each output.
	acc := 1.0
	for i, b := range betas {
		acc *= float64(1 - b)
		ts.alphasCumprod[i] = float32(acc)
	}
	for i, a := range ts.alphasCumprod {
		ts.sigmas[i] = sqrt32((1 - a) / a)
	}
	return ts, nil
}

func sqrt32(x float32) float32 { return float32(math.Sqrt(float64(x))) }
func log32(x float32) float32  { return float32(math.Log(float64(x))) }
func exp32(x float32) float32  { return float32(math.Exp(float64(x))) }

// numpyArange restates np.arange(start, stop, step) for float64 arguments:
// the length is ceil((stop-start)/step) and element i is start + i*delta with
// delta = (start+step) - start.
func numpyArange(start, stop, step float64) []float64 {
	n := int(math.Ceil((stop - start) / step))
	if n <= 0 {
		return nil
	}
	out := make([]float64, n)
	out[0] = start
	if n > 1 {
		delta := (start + step) - start
		for i := 1; i < n; i++ {
			out[i] = start + float64(i)*delta
		}
	}
	return out
}

// numpyLinspace restates np.linspace(start, stop, n) in float64.
func numpyLinspace(start, stop float64, n int) []float64 {
	out := make([]float64, n)
	if n == 1 {
		out[0] = start
		return out
	}
	step := (stop - start) / float64(n-1)
	for i := range out {
		out[i] = float64(i)*step + start
	}
	out[n-1] = stop
	return out
}

// spacedTimesteps returns the descending inference timesteps of the classes
// that space n steps over the training range (DDIM, PNDM, the sigma-based
// classes), for the three diffusers spacings.
func spacedTimesteps(cfg *Config, n int) []float64 {
	T := cfg.NumTrainTimesteps
	var ts []float64
	switch cfg.TimestepSpacing {
	case "linspace":
		ts = numpyLinspace(0, float64(T-1), n)
		slices.Reverse(ts)
	case "leading":
		ratio := T / n
		ts = make([]float64, n)
		for i := range ts {
			ts[n-1-i] = float64(i*ratio + cfg.StepsOffset)
		}
	case "trailing":
		ts = numpyArange(float64(T), 0, -float64(T)/float64(n))
		for i := range ts {
			ts[i] = math.RoundToEven(ts[i]) - 1
		}
	}
	return ts
}

// solverTimesteps returns the integer timesteps of the multistep solvers
// (DPM-Solver++, UniPC, DEIS): n+1 points with the last (0) dropped. last is
// diffusers' last_timestep (num_train_timesteps unless lambda_min_clipped
// cuts the schedule).
func solverTimesteps(cfg *Config, n, last int) []float64 {
	var ts []float64
	switch cfg.TimestepSpacing {
	case "linspace":
		ts = numpyLinspace(0, float64(last-1), n+1)
		for i := range ts {
			ts[i] = math.RoundToEven(ts[i])
		}
		slices.Reverse(ts)
		ts = ts[:n]
	case "leading":
		ratio := last / (n + 1)
		ts = make([]float64, n)
		for i := range ts {
			ts[n-1-i] = float64((i+1)*ratio + cfg.StepsOffset)
		}
	case "trailing":
		ts = numpyArange(float64(last), 0, -float64(cfg.NumTrainTimesteps)/float64(n))
		for i := range ts {
			ts[i] = math.RoundToEven(ts[i]) - 1
		}
	}
	return ts
}

// interpSigmas is np.interp(ts, arange(len(sigmas)), sigmas) in float64.
func interpSigmas(ts []float64, sigmas []float32) []float64 {
	out := make([]float64, len(ts))
	last := len(sigmas) - 1
	for i, x := range ts {
		switch {
		case math.IsNaN(x):
			out[i] = x
		case x <= 0:
			out[i] = float64(sigmas[0])
		case x >= float64(last):
			out[i] = float64(sigmas[last])
		default:
			j := int(math.Floor(x))
			if float64(j) == x {
				out[i] = float64(sigmas[j])
				continue
			}
			lo, hi := float64(sigmas[j]), float64(sigmas[j+1])
			out[i] = (hi-lo)*(x-float64(j)) + lo
		}
	}
	return out
}

// karrasSigmas is diffusers' _convert_to_karras (rho = 7) in float64:
// n sigmas from in[0] to in[len-1].
func karrasSigmas(first, last float64, n int) []float64 {
	const rho = 7.0
	maxInv := math.Pow(first, 1/rho)
	minInv := math.Pow(last, 1/rho)
	ramp := numpyLinspace(0, 1, n)
	out := make([]float64, n)
	for i, r := range ramp {
		out[i] = math.Pow(maxInv+r*(minInv-maxInv), rho)
	}
	return out
}

// sigmaToT is diffusers' numpy _sigma_to_t: the (fractional) timestep whose
// log-sigma matches log(sigma), by linear interpolation in log-sigma.
// logSigmas are the float32 logs of the ascending training sigmas.
func sigmaToT(sigma float64, logSigmas []float32) float64 {
	logSigma := math.Log(sigma)
	// diffusers takes the last index whose log-sigma is <= log(sigma) (0 if
	// none); the training log-sigmas are non-decreasing.
	low := max(sort.Search(len(logSigmas), func(i int) bool { return float64(logSigmas[i]) > logSigma })-1, 0)
	if math.IsNaN(logSigma) {
		low = 0
	}
	low = min(low, len(logSigmas)-2)
	lo, hi := logSigmas[low], logSigmas[low+1]
	w := (float64(lo) - logSigma) / float64(lo-hi)
	w = math.Max(0, math.Min(1, w)) // NaN stays NaN, as with np.clip
	return (1-w)*float64(low) + w*float64(low+1)
}

// sigmaToT32 is the torch float32 sigma_to_t of the KDPM2 classes.
func sigmaToT32(sigma float32, logSigmas []float32) float32 {
	logSigma := log32(sigma)
	low := max(sort.Search(len(logSigmas), func(i int) bool { return logSigmas[i] > logSigma })-1, 0)
	if logSigma != logSigma {
		low = 0
	}
	low = min(low, len(logSigmas)-2)
	lo, hi := logSigmas[low], logSigmas[low+1]
	w := (lo - logSigma) / (lo - hi)
	if w < 0 {
		w = 0
	} else if w > 1 {
		w = 1
	}
	return (1-w)*float32(low) + w*float32(low+1)
}

// npLogs32 returns np.log of a float32 array.
func npLogs32(xs []float32) []float32 {
	out := make([]float32, len(xs))
	for i, x := range xs {
		out[i] = npLog32(x)
	}
	return out
}

// Coefficients of numpy's vectorised float32 log (AVX2/AVX512F): a ratio of
// two degree-5 polynomials on the reduced mantissa.
var (
	npLogP = [6]float32{0, 9.999999999999998702752e-01, 2.112677543073053063722e+00, 1.480000633576506585156e+00,
		3.808837741388407920751e-01, 2.589979117907922693523e-02}
	npLogQ = [6]float32{1, 2.612677543073109236779e+00, 2.453006071784736363091e+00, 9.864942958519418960339e-01,
		1.546476374983906719538e-01, 5.875095403124574342950e-03}
)

// npLog32 is numpy's float32 log on x86-64 (AVX2 or AVX512F builds), which
// diffusers' np.log calls on float32 arrays reach. It is accurate to about
// 4 ulp and differs from the correctly rounded logarithm for many inputs.
func npLog32(x float32) float32 {
	switch {
	case x != x:
		return x
	case x < 0:
		return float32(math.NaN())
	case x == 0:
		return float32(math.Inf(-1))
	case math.IsInf(float64(x), 1):
		return x
	}
	frac, exp := math.Frexp(float64(x)) // x = frac·2^exp, frac in [0.5, 1)
	m, e := float32(frac), float32(exp)
	if m <= float32(math.Sqrt2/2) {
		m += m
		e--
	}
	m--
	num := fma32(npLogP[5], m, npLogP[4])
	den := fma32(npLogQ[5], m, npLogQ[4])
	for i := 3; i >= 0; i-- {
		num = fma32(num, m, npLogP[i])
		den = fma32(den, m, npLogQ[i])
	}
	return fma32(e, float32(math.Ln2), num/den)
}
