package palette

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/pigment-sd/pigment/parallel"
)

// KMeans1D clusters the weighted points (values[i], weights[i]) into at
// most k clusters with the least total weighted squared distance to the
// cluster means: the globally optimal 1-D k-means (see the package doc for
// the algorithm). weights may be nil (every point weighs 1); otherwise it
// has one positive finite weight per value. values need not be sorted and
// may repeat.
//
// It returns the cluster means in ascending order (min(k, number of
// distinct values) of them) and the optimal cost, the sum over points of
// weight*(value-mean)².
func KMeans1D(values, weights []float64, k int) (centroids []float64, cost float64, err error) {
	if k < 1 {
		return nil, 0, fmt.Errorf("kmeans1d: k = %d, need at least 1", k)
	}
	if len(values) == 0 {
		return nil, 0, errors.New("kmeans1d: no values")
	}
	if weights != nil && len(weights) != len(values) {
		return nil, 0, fmt.Errorf("kmeans1d: %d weights for %d values", len(weights), len(values))
	}
	type point struct{ x, w float64 }
	pts := make([]point, len(values))
	for i, v := range values {
		w := 1.0
		if weights != nil {
			w = weights[i]
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, 0, fmt.Errorf("kmeans1d: value %d is %v", i, v)
		}
		if !(w > 0) || math.IsInf(w, 0) {
			return nil, 0, fmt.Errorf("kmeans1d: weight %d is %v, need a positive finite weight", i, w)
		}
		pts[i] = point{v, w}
	}
	sort.Slice(pts, func(i, j int) bool { return pts[i].x < pts[j].x })
	// Merge equal values: the optimum never splits them.
	xs := make([]float64, 0, len(pts))
	ws := make([]float64, 0, len(pts))
	for _, p := range pts {
		if n := len(xs); n > 0 && xs[n-1] == p.x {
			ws[n-1] += p.w
			continue
		}
		xs = append(xs, p.x)
		ws = append(ws, p.w)
	}
	var s solver
	centroids, cost = means(xs, ws, s.partition(xs, ws, k))
	return centroids, cost, nil
}

// solver runs the 1-D k-means dynamic programme; its buffers are reused
// from one call to the next.
type solver struct {
	// pool, when set, runs the two halves of each layer of large problems
	// on two workers.
	pool *parallel.Pool
	pre  []prefix
	cur  []float64 // D[l][*]
	arg  []int32   // arg[l*(m+1)+j]: optimal start of the last cluster
}

// prefix holds the sums over the first i points (weight, weight·x,
// weight·x², x centred on the overall mean) and d = D[l-1][i] of the layer
// being computed.
type prefix struct{ w, s1, s2, d float64 }

// cost is the weighted sum of squared distances to their mean of the
// points i..j-1.
func (s *solver) cost(i, j int) float64 {
	a, b := &s.pre[i], &s.pre[j]
	w := b.w - a.w
	s1 := b.s1 - a.s1
	c := (b.s2 - a.s2) - s1*s1/w
	if c < 0 {
		return 0
	}
	return c
}

// partition finds an optimal partition of the sorted distinct points
// (xs ascending, ws positive) into min(k, m) contiguous clusters and
// returns the index of the first point of each cluster. See the package
// doc for the programme.
func (s *solver) partition(xs, ws []float64, k int) []int {
	m := len(xs)
	k = min(k, m)
	s.pre = grow(s.pre, m+1)
	var tw, tx float64
	for i := range xs {
		tw += ws[i]
		tx += ws[i] * xs[i]
	}
	mean := tx / tw
	s.pre[0] = prefix{}
	for i, x := range xs {
		d := x - mean
		p := s.pre[i]
		s.pre[i+1] = prefix{p.w + ws[i], p.s1 + ws[i]*d, p.s2 + ws[i]*d*d, 0}
	}
	if k == m {
		starts := make([]int, m)
		for i := range starts {
			starts[i] = i
		}
		return starts
	}
	s.cur = grow(s.cur, m+1)
	s.arg = grow(s.arg, (k+1)*(m+1))
	// Large layers are split over two workers when there are any.
	par := m >= 4096 && s.pool != nil && s.pool.Size() > 1
	for j := 1; j <= m; j++ {
		s.cur[j] = s.cost(0, j)
		s.arg[1*(m+1)+j] = 0
	}
	for l := 2; l <= k; l++ {
		for i := range s.pre {
			s.pre[i].d = s.cur[i]
		}
		// l clusters need at least l points; the last layer only needs
		// all m points. (Every other layer is computed up to m so the next
		// one can use it as a lower bound.)
		jlo := l
		if l == k {
			jlo = m
		}
		optPrev, opt := s.arg[(l-1)*(m+1):l*(m+1)], s.arg[l*(m+1):(l+1)*(m+1)]
		if par && jlo < m {
			s.layer2(optPrev, opt, jlo, m, l-1, m-1)
		} else {
			s.layer(optPrev, opt, jlo, m, l-1, m-1)
		}
	}
	starts := make([]int, k)
	j := m
	for l := k; l >= 2; l-- {
		i := int(s.arg[l*(m+1)+j])
		starts[l-1] = i
		j = i
	}
	return starts
}

// layer sets D[l][j] (s.cur) and opt(l, j) (opt) for j in [jlo, jhi],
// knowing that opt(l, j) lies in [ilo, ihi] and is at least
// optPrev[j] = opt(l-1, j).
func (s *solver) layer(optPrev, opt []int32, jlo, jhi, ilo, ihi int) {
	for jlo <= jhi {
		mid := (jlo + jhi) / 2
		bi := s.row(optPrev, opt, mid, ilo, ihi)
		// Recurse on the smaller half, loop on the other.
		if mid-jlo < jhi-mid {
			s.layer(optPrev, opt, jlo, mid-1, ilo, bi)
			jlo, ilo = mid+1, bi
		} else {
			s.layer(optPrev, opt, mid+1, jhi, bi, ihi)
			jhi, ihi = mid-1, bi
		}
	}
}

// layer2 is layer with the two halves of the top split computed on two
// workers of the pool. They write disjoint parts of s.cur and opt and only
// read the previous layer, so the result is the same.
func (s *solver) layer2(optPrev, opt []int32, jlo, jhi, ilo, ihi int) {
	mid := (jlo + jhi) / 2
	bi := s.row(optPrev, opt, mid, ilo, ihi)
	s.pool.For(2, func(half int) {
		if half == 0 {
			s.layer(optPrev, opt, jlo, mid-1, ilo, bi)
		} else {
			s.layer(optPrev, opt, mid+1, jhi, bi, ihi)
		}
	})
}

// row computes D[l][j] and opt(l, j) by scanning the candidates i in
// [max(ilo, optPrev[j]), min(ihi, j-1)], and returns opt(l, j).
func (s *solver) row(optPrev, opt []int32, j, ilo, ihi int) int {
	b := s.pre[j]
	hi := min(ihi, j-1)
	// Rounding in near ties can break the bounds' order; never let it
	// empty the range.
	lo := min(max(ilo, int(optPrev[j])), hi)
	best, bi := math.Inf(1), lo
	for t, a := range s.pre[lo : hi+1] {
		s1 := b.s1 - a.s1
		if v := a.d + (b.s2 - a.s2) - s1*s1/(b.w-a.w); v < best {
			best, bi = v, lo+t
		}
	}
	s.cur[j] = max(best, 0)
	opt[j] = int32(bi)
	return bi
}

// means returns the weighted mean of each cluster of the sorted points
// xs (weights ws) given by starts, and the total cost. Both are summed
// directly over each cluster's points, so a cluster of one value has
// exactly that value as its mean.
func means(xs, ws []float64, starts []int) ([]float64, float64) {
	c := make([]float64, len(starts))
	var total float64
	for l, i := range starts {
		j := len(xs)
		if l+1 < len(starts) {
			j = starts[l+1]
		}
		var sw, sx float64
		for t := i; t < j; t++ {
			sw += ws[t]
			sx += ws[t] * xs[t]
		}
		mu := sx / sw
		if j-i == 1 {
			mu = xs[i]
		}
		// Rounding cannot take the mean outside its cluster's range.
		mu = min(max(mu, xs[i]), xs[j-1])
		for t := i; t < j; t++ {
			total += ws[t] * (xs[t] - mu) * (xs[t] - mu)
		}
		c[l] = mu
	}
	return c, total
}

func grow[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s[:n]
	}
	return slices.Grow(s[:0], n)[:n]
}
