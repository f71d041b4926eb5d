package palette

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// bruteForce returns the least cost over all partitions of the sorted
// distinct points into exactly min(k, m) contiguous non-empty clusters.
func bruteForce(xs, ws []float64, k int) float64 {
	m := len(xs)
	k = min(k, m)
	cost := func(i, j int) float64 { // points i..j-1, direct two-pass formula
		var sw, sx float64
		for t := i; t < j; t++ {
			sw += ws[t]
			sx += ws[t] * xs[t]
		}
		mu := sx / sw
		var c float64
		for t := i; t < j; t++ {
			c += ws[t] * (xs[t] - mu) * (xs[t] - mu)
		}
		return c
	}
	if k == 1 {
		return cost(0, m)
	}
	best := math.Inf(1)
	cuts := make([]int, k+1) // cluster t is points cuts[t]..cuts[t+1]-1
	cuts[k] = m
	var rec func(l, from int)
	rec = func(l, from int) { // choose cuts[l..k-1]
		if l == k {
			var c float64
			for t := 0; t < k; t++ {
				c += cost(cuts[t], cuts[t+1])
			}
			best = min(best, c)
			return
		}
		for s := from; s <= m-(k-l); s++ {
			cuts[l] = s
			rec(l+1, s+1)
		}
	}
	rec(1, 1)
	return best
}

// clusterCost is the k-means cost of points against the nearest centroid.
func clusterCost(xs, ws, cs []float64) float64 {
	var c float64
	for i, x := range xs {
		d := math.Inf(1)
		for _, m := range cs {
			d = min(d, (x-m)*(x-m))
		}
		w := 1.0
		if ws != nil {
			w = ws[i]
		}
		c += w * d
	}
	return c
}

func TestKMeans1DBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := 0
	for m := 1; m <= 12; m++ {
		for k := 1; k <= 4; k++ {
			for trial := 0; trial < 8; trial++ {
				set := map[float64]bool{}
				for len(set) < m {
					v := r.NormFloat64()
					if trial%2 == 1 {
						v = float64(r.IntN(30)) / 4 // a grid: many equal-cost partitions
					}
					set[v] = true
				}
				var xs []float64
				for v := range set {
					xs = append(xs, v)
				}
				slices.Sort(xs)
				ws := make([]float64, m)
				for i := range ws {
					ws[i] = float64(1 + r.IntN(20))
				}
				want := bruteForce(xs, ws, k)
				cs, got, err := KMeans1D(xs, ws, k)
				if err != nil {
					t.Fatal(err)
				}
				if len(cs) != min(k, m) {
					t.Fatalf("m=%d k=%d: %d centroids", m, k, len(cs))
				}
				// Both are sums of at most 12 terms: 1e-9 relative (plus an
				// absolute floor for zero-cost cases) covers rounding only.
				if math.Abs(got-want) > 1e-9*want+1e-12 {
					t.Errorf("m=%d k=%d xs=%v ws=%v: cost %v, brute force %v", m, k, xs, ws, got, want)
				}
				if c := clusterCost(xs, ws, cs); math.Abs(c-want) > 1e-9*want+1e-12 {
					t.Errorf("m=%d k=%d: centroids %v give cost %v, brute force %v", m, k, cs, c, want)
				}
				if !sort.Float64sAreSorted(cs) {
					t.Errorf("centroids not sorted: %v", cs)
				}
				cases++
			}
		}
	}
	t.Logf("%d cases", cases)
}

func TestKMeans1DKnown(t *testing.T) {
	tests := []struct {
		name     string
		xs, ws   []float64
		k        int
		want     []float64
		wantCost float64
	}{
		{"two pairs", []float64{11, 1, 10, 2}, nil, 2, []float64{1.5, 10.5}, 1},
		{"weighted", []float64{0, 1, 10}, []float64{3, 1, 2}, 2, []float64{0.25, 10}, 0.75},
		{"k above m", []float64{3, 1, 2, 3}, nil, 8, []float64{1, 2, 3}, 0},
		{"one cluster", []float64{1, 2, 3, 6}, nil, 1, []float64{3}, 14},
		{"repeats merge", []float64{5, 5, 5, 9}, nil, 2, []float64{5, 9}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cs, cost, err := KMeans1D(tc.xs, tc.ws, tc.k)
			if err != nil {
				t.Fatal(err)
			}
			if len(cs) != len(tc.want) {
				t.Fatalf("centroids %v, want %v", cs, tc.want)
			}
			for i := range cs {
				if math.Abs(cs[i]-tc.want[i]) > 1e-12 {
					t.Fatalf("centroids %v, want %v", cs, tc.want)
				}
			}
			if math.Abs(cost-tc.wantCost) > 1e-12 {
				t.Errorf("cost %v, want %v", cost, tc.wantCost)
			}
		})
	}
}

func TestKMeans1DErrors(t *testing.T) {
	tests := []struct {
		name   string
		xs, ws []float64
		k      int
	}{
		{"k zero", []float64{1}, nil, 0},
		{"empty", nil, nil, 2},
		{"weights length", []float64{1, 2}, []float64{1}, 2},
		{"nan value", []float64{1, math.NaN()}, nil, 2},
		{"inf value", []float64{math.Inf(-1), 1}, nil, 2},
		{"zero weight", []float64{1, 2}, []float64{1, 0}, 2},
		{"nan weight", []float64{1, 2}, []float64{1, math.NaN()}, 2},
	}
	for _, tc := range tests {
		if _, _, err := KMeans1D(tc.xs, tc.ws, tc.k); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

// lloyd runs Lloyd's algorithm from k-means++ seeding until assignments
// settle and returns its cost.
func lloyd(r *rand.Rand, xs []float64, k int) float64 {
	cs := []float64{xs[r.IntN(len(xs))]}
	d := make([]float64, len(xs))
	for len(cs) < k {
		var sum float64
		for i, x := range xs {
			d[i] = math.Inf(1)
			for _, c := range cs {
				d[i] = min(d[i], (x-c)*(x-c))
			}
			sum += d[i]
		}
		if sum == 0 {
			break
		}
		u := r.Float64() * sum
		i := 0
		for ; i < len(xs)-1 && u >= d[i]; i++ {
			u -= d[i]
		}
		cs = append(cs, xs[i])
	}
	assign := make([]int, len(xs))
	for iter := 0; iter < 300; iter++ {
		changed := false
		for i, x := range xs {
			best := 0
			for j, c := range cs {
				if (x-c)*(x-c) < (x-cs[best])*(x-cs[best]) {
					best = j
				}
			}
			if assign[i] != best || iter == 0 {
				changed = changed || assign[i] != best
				assign[i] = best
			}
		}
		sum := make([]float64, len(cs))
		cnt := make([]float64, len(cs))
		for i, x := range xs {
			sum[assign[i]] += x
			cnt[assign[i]]++
		}
		for j := range cs {
			if cnt[j] > 0 {
				cs[j] = sum[j] / cnt[j]
			}
		}
		if !changed && iter > 0 {
			break
		}
	}
	return clusterCost(xs, nil, cs)
}

func TestKMeans1DBeatsLloyd(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	studentT := func(df float64) float64 { // normal / sqrt(chi²/df)
		var chi float64
		for range int(df) {
			z := r.NormFloat64()
			chi += z * z
		}
		return r.NormFloat64() / math.Sqrt(chi/df)
	}
	laplace := func() float64 { return -math.Log(r.Float64()) * float64(1-2*r.IntN(2)) }
	dists := []struct {
		name string
		gen  func() float64
	}{
		{"normal", r.NormFloat64},
		{"student-t3", func() float64 { return studentT(3) }},
		{"laplace", laplace},
		{"uniform", r.Float64},
	}
	for _, d := range dists {
		for _, k := range []int{2, 8, 16, 64} {
			xs := make([]float64, 1500)
			for i := range xs {
				xs[i] = d.gen()
			}
			_, opt, err := KMeans1D(xs, nil, k)
			if err != nil {
				t.Fatal(err)
			}
			for trial := 0; trial < 3; trial++ {
				l := lloyd(r, xs, k)
				// The optimum may tie Lloyd's; 1e-9 relative allows for
				// the two costs being summed in different orders.
				if opt > l*(1+1e-9) {
					t.Errorf("%s k=%d: exact cost %v worse than Lloyd's %v", d.name, k, opt, l)
				}
			}
		}
	}
}

// dcPartition is the plain divide-and-conquer form of the programme,
// without the lower bound from the previous layer and without goroutines:
// each layer computes opt(mid) by a scan, then recurses on the halves with
// the candidate range split at opt(mid). It is an independent exact oracle
// on inputs too large for brute force.
func dcPartition(xs, ws []float64, k int) (cost float64) {
	m := len(xs)
	k = min(k, m)
	var s solver
	s.partition(xs, ws, 1) // fills the prefix sums
	prev := make([]float64, m+1)
	cur := make([]float64, m+1)
	for j := 1; j <= m; j++ {
		cur[j] = s.cost(0, j)
	}
	var layer func(jlo, jhi, ilo, ihi int)
	layer = func(jlo, jhi, ilo, ihi int) {
		if jlo > jhi {
			return
		}
		mid := (jlo + jhi) / 2
		best, bi := math.Inf(1), ilo
		for i := ilo; i <= min(ihi, mid-1); i++ {
			if v := prev[i] + s.cost(i, mid); v < best {
				best, bi = v, i
			}
		}
		cur[mid] = best
		layer(jlo, mid-1, ilo, bi)
		layer(mid+1, jhi, bi, ihi)
	}
	for l := 2; l <= k; l++ {
		prev, cur = cur, prev
		layer(l, m, l-1, m-1)
	}
	return cur[m]
}

func TestKMeans1DMatchesDivideAndConquer(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	for _, m := range []int{50, 700, 5000} { // 5000: the two-goroutine layers
		for _, k := range []int{2, 7, 16, 64} {
			xs, ws := make([]float64, m), make([]float64, m)
			for i := range xs {
				xs[i] = r.NormFloat64() / math.Sqrt(r.ExpFloat64()) // heavy tails
				ws[i] = float64(1 + r.IntN(1000))
			}
			if k == 7 {
				// Equally spaced, equally weighted values: a great many
				// partitions tie, which tests the bounds under rounding.
				for i := range xs {
					xs[i], ws[i] = float64(i), 1
				}
			}
			slices.Sort(xs) // dcPartition wants them sorted (and distinct)
			_, got, err := KMeans1D(xs, ws, k)
			if err != nil {
				t.Fatal(err)
			}
			want := dcPartition(xs, ws, k)
			_, scale, _ := KMeans1D(xs, ws, 1)
			// Two exact methods: they may pick different partitions only
			// among equal-cost ones. The oracle's costs are differences
			// of prefix sums, so they carry an absolute error of about
			// 1e-16 times the one-cluster cost (plus 1e-9 relative).
			if math.Abs(got-want) > 1e-9*want+1e-12*scale {
				t.Errorf("m=%d k=%d: cost %v, divide and conquer without the layer bound %v", m, k, got, want)
			}
		}
	}
}
