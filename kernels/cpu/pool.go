package cpu

import "github.com/pigment-sd/pigment/parallel"

// task is one parallel operation. run is called once on every worker of
// the pool that takes part (the calling goroutine is worker 0);
// implementations share the work out themselves, usually through an
// atomic counter, so that a worker delayed by other load on the machine
// does not hold the others back.
//
// Tasks are fields of Kernels handed over as pointers, so dispatching one
// allocates nothing.
type task interface {
	run(w *worker)
}

// pool runs the kernels' tasks on a parallel.Pool, giving each worker
// index its own scratch (a worker).
type pool struct {
	workers []*worker
	par     *parallel.Pool
	owned   bool // the pool was made for these kernels and closes with them
	d       dispatch
}

// dispatch adapts a task to parallel.Task.
type dispatch struct {
	t       task
	workers []*worker
}

func (d *dispatch) Run(i int) { d.t.run(d.workers[i]) }

func newPool(par *parallel.Pool, owned bool) *pool {
	p := &pool{workers: make([]*worker, par.Size()), par: par, owned: owned}
	for i := range p.workers {
		p.workers[i] = &worker{id: i}
	}
	p.d.workers = p.workers
	return p
}

// run runs t on the first n workers (all of them when n <= 0 or n is
// larger than the pool) and returns when every one has finished. A panic
// in a helper is re-raised here, in the caller's goroutine.
func (p *pool) run(t task, n int) {
	p.d.t = t
	defer func() { p.d.t = nil }()
	p.par.Run(&p.d, n)
}

// close stops the helper goroutines of a pool the kernels own.
func (p *pool) close() {
	if p.owned {
		p.par.Close()
	}
}
