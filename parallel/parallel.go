// Package parallel is the process's one pool of compute workers. The
// kernels, the VAE's band loops, palettization and conversion all share
// it, so a process never runs more compute goroutines than the pool has
// threads, however many networks or jobs it holds (a server with several
// models loaded included).
//
// A pool runs one operation at a time: the goroutine that calls Run (or
// For) is worker 0 and the pool's helper goroutines are workers 1 to
// Size()-1; concurrent callers wait their turn. An operation must not
// start another on the same pool from inside it (it would wait for
// itself).
package parallel

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
)

// Task is one parallel operation. Run is called once on every worker that
// takes part, with the worker's index; implementations share the work out
// themselves, usually through an atomic counter, so that a worker delayed
// by other load does not hold the others back. A task value handed over
// as a pointer makes dispatching allocate nothing.
type Task interface {
	Run(worker int)
}

// EnvThreads is the environment variable that sizes pools made with
// New(0), when --threads does not.
const EnvThreads = "PIGMENT_THREADS"

// Threads returns the thread count a pool gets by default: PIGMENT_THREADS
// when it is a positive integer, else GOMAXPROCS (the CPU count).
func Threads() int {
	if n, err := strconv.Atoi(os.Getenv(EnvThreads)); err == nil && n > 0 {
		return n
	}
	return runtime.GOMAXPROCS(0)
}

// Pool is a fixed set of worker goroutines. Create it with New.
type Pool struct {
	mu      sync.Mutex // held by the operation in progress
	threads int
	start   []chan Task // one per helper goroutine (index 0 unused)
	done    chan struct{}
	panics  []any // a helper's recovered panic, re-raised by the caller
	once    sync.Once

	fj forJob // For's task, reused

	active, peak atomic.Int32
}

// New returns a pool of threads workers (threads <= 0: Threads()): the
// calling goroutine plus threads-1 helpers, started now. A pool of one
// starts no goroutine.
func New(threads int) *Pool {
	if threads <= 0 {
		threads = Threads()
	}
	p := &Pool{
		threads: threads,
		start:   make([]chan Task, threads),
		done:    make(chan struct{}, threads),
		panics:  make([]any, threads),
	}
	for i := 1; i < threads; i++ {
		p.start[i] = make(chan Task, 1)
		go p.loop(i)
	}
	return p
}

// Size is the number of workers.
func (p *Pool) Size() int { return p.threads }

func (p *Pool) loop(i int) {
	for t := range p.start[i] {
		p.runOne(i, t)
		p.done <- struct{}{}
	}
}

func (p *Pool) runOne(i int, t Task) {
	defer func() {
		if r := recover(); r != nil {
			p.panics[i] = r
		}
	}()
	p.enter()
	defer p.active.Add(-1)
	t.Run(i)
}

// enter counts a worker starting on a task and records the peak.
func (p *Pool) enter() {
	n := p.active.Add(1)
	for {
		m := p.peak.Load()
		if n <= m || p.peak.CompareAndSwap(m, n) {
			return
		}
	}
}

// Run runs t on the first n workers (all of them when n <= 0 or n exceeds
// Size) and returns when every one has finished. The caller is worker 0.
// A panic in a helper is re-raised in the caller's goroutine.
func (p *Pool) Run(t Task, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.run(t, n)
}

func (p *Pool) run(t Task, n int) {
	if n <= 0 || n > p.threads {
		n = p.threads
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
		p.enter()
		defer p.active.Add(-1)
		t.Run(0)
	}()
	for i := 1; i < n; i++ {
		if r := p.panics[i]; r != nil {
			p.panics[i] = nil
			panic(fmt.Sprintf("parallel: worker %d: %v", i, r))
		}
	}
}

// forJob hands out the indices of a For call in chunks.
type forJob struct {
	n, chunk int
	next     atomic.Int64
	f        func(worker, i int)
}

func (j *forJob) Run(w int) {
	for {
		lo := int(j.next.Add(int64(j.chunk))) - j.chunk
		if lo >= j.n {
			return
		}
		for i := lo; i < min(lo+j.chunk, j.n); i++ {
			j.f(w, i)
		}
	}
}

// For calls f(i) for every i in [0, n), spread over the workers; the
// calls for different i must be independent. It returns when all are
// done.
func (p *Pool) For(n int, f func(i int)) {
	p.ForWorker(n, func(_, i int) { f(i) })
}

// ForWorker is For with the index of the worker making each call, for
// per-worker scratch space (indices run from 0 to Size()-1).
func (p *Pool) ForWorker(n int, f func(worker, i int)) {
	if n <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	workers := min(p.threads, n)
	if workers == 1 {
		p.enter()
		defer p.active.Add(-1)
		for i := range n {
			f(0, i)
		}
		return
	}
	j := &p.fj
	j.n, j.f = n, f
	j.chunk = max(1, n/(4*workers))
	j.next.Store(0)
	defer func() { j.f = nil }()
	p.run(j, workers)
}

// Peak returns the most workers that ran tasks at the same moment since
// the pool was made or ResetPeak was last called: the pool's own account
// that it never runs more than Size compute goroutines.
func (p *Pool) Peak() int { return int(p.peak.Load()) }

// ResetPeak starts a new Peak measurement.
func (p *Pool) ResetPeak() { p.peak.Store(p.active.Load()) }

// Close stops the helper goroutines. The pool must not be used after.
func (p *Pool) Close() {
	p.once.Do(func() {
		for i := 1; i < len(p.start); i++ {
			close(p.start[i])
		}
	})
}
