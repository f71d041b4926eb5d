package cpu

import (
	"fmt"
	"sync"
)

// task is one parallel operation. run is called once on every worker of
// the pool (the calling goroutine is worker 0); implementations share the
// work out themselves, usually through an atomic counter, so that a worker
// delayed by other load on the machine does not hold the others back.
//
// Tasks are fields of Kernels handed over as pointers, so dispatching one
// allocates nothing.
type task interface {
	run(w *worker)
}

// pool is a fixed set of worker goroutines that run one task at a time.
// Worker 0 is the goroutine that calls run, so a pool of one thread starts
// no goroutines at all.
type pool struct {
	workers []*worker
	start   []chan task // one per helper goroutine (index 0 unused)
	done    chan struct{}
	panics  []any // a helper's recovered panic, re-raised by the caller
	once    sync.Once
}

func newPool(threads int) *pool {
	p := &pool{
		workers: make([]*worker, threads),
		start:   make([]chan task, threads),
		done:    make(chan struct{}, threads),
		panics:  make([]any, threads),
	}
	for i := range p.workers {
		p.workers[i] = &worker{id: i}
	}
	for i := 1; i < threads; i++ {
		p.start[i] = make(chan task, 1)
		go p.loop(i)
	}
	return p
}

func (p *pool) loop(i int) {
	w := p.workers[i]
	for t := range p.start[i] {
		p.runOne(i, w, t)
		p.done <- struct{}{}
	}
}

func (p *pool) runOne(i int, w *worker, t task) {
	defer func() {
		if r := recover(); r != nil {
			p.panics[i] = r
		}
	}()
	t.run(w)
}

// run runs t on the first n workers (all of them when n <= 0 or n is
// larger than the pool) and returns when every one has finished. A panic
// in a helper is re-raised here, in the caller's goroutine.
func (p *pool) run(t task, n int) {
	if n <= 0 || n > len(p.workers) {
		n = len(p.workers)
	}
	for i := 1; i < n; i++ {
		p.start[i] <- t
	}
	func() {
		// Wait for the helpers even when worker 0 panics, so that no
		// helper still runs the task when the panic unwinds.
		defer func() {
			for i := 1; i < n; i++ {
				<-p.done
			}
		}()
		t.run(p.workers[0])
	}()
	for i := 1; i < n; i++ {
		if r := p.panics[i]; r != nil {
			p.panics[i] = nil
			panic(fmt.Sprintf("kernels/cpu: worker %d: %v", i, r))
		}
	}
}

// close stops the helper goroutines. The pool must not be used afterwards.
func (p *pool) close() {
	p.once.Do(func() {
		for i := 1; i < len(p.start); i++ {
			close(p.start[i])
		}
	})
}
