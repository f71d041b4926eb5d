package parallel

import (
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

type countTask struct{ seen [8]atomic.Int32 }

func (t *countTask) Run(w int) { t.seen[w].Add(1) }

func TestRun(t *testing.T) {
	for _, threads := range []int{1, 2, 3, 8} {
		p := New(threads)
		for _, n := range []int{0, 1, 2, threads, threads + 5} {
			var task countTask
			p.Run(&task, n)
			want := n
			if n <= 0 || n > threads {
				want = threads
			}
			for w := range task.seen {
				if got, exp := task.seen[w].Load(), int32(0); w < want {
					exp = 1
					if got != exp {
						t.Errorf("threads %d, n %d: worker %d ran %d times, want 1", threads, n, w, got)
					}
				} else if got != exp {
					t.Errorf("threads %d, n %d: worker %d ran %d times, want 0", threads, n, w, got)
				}
			}
		}
		p.Close()
	}
}

func TestFor(t *testing.T) {
	p := New(3)
	defer p.Close()
	for _, n := range []int{0, 1, 2, 7, 100, 1001} {
		hits := make([]atomic.Int32, n)
		p.ForWorker(n, func(w, i int) {
			if w < 0 || w >= p.Size() {
				t.Errorf("worker %d out of range", w)
			}
			hits[i].Add(1)
		})
		for i := range hits {
			if h := hits[i].Load(); h != 1 {
				t.Fatalf("n %d: index %d done %d times", n, i, h)
			}
		}
	}
}

// TestPeak runs operations from several goroutines at once and checks that
// the pool never had more workers computing than its size.
func TestPeak(t *testing.T) {
	p := New(2)
	defer p.Close()
	p.ResetPeak()
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Go(func() {
			for range 50 {
				p.For(64, func(i int) {
					x := 0
					for j := range 2000 {
						x += i * j
					}
					_ = x
				})
			}
		})
	}
	wg.Wait()
	if peak := p.Peak(); peak != 2 {
		t.Errorf("peak %d workers at once, want 2 (the pool's size)", peak)
	}
}

type panicTask struct{}

func (panicTask) Run(w int) {
	if w == 1 {
		panic("boom")
	}
}

func TestPanic(t *testing.T) {
	p := New(2)
	defer p.Close()
	func() {
		defer func() {
			r := recover()
			if s, _ := r.(string); !strings.Contains(s, "worker 1: boom") {
				t.Errorf("recovered %v, want the helper's panic", r)
			}
		}()
		p.Run(panicTask{}, 2)
	}()
	// The pool still works.
	var task countTask
	p.Run(&task, 2)
	if task.seen[0].Load() != 1 || task.seen[1].Load() != 1 {
		t.Error("pool unusable after a panic")
	}
}

func TestThreads(t *testing.T) {
	t.Setenv(EnvThreads, "3")
	p3 := New(0)
	if Threads() != 3 || p3.Size() != 3 {
		t.Errorf("PIGMENT_THREADS=3: Threads() = %d, pool of %d", Threads(), p3.Size())
	}
	p3.Close()
	t.Setenv(EnvThreads, "zero")
	if Threads() != runtime.GOMAXPROCS(0) {
		t.Errorf("bad PIGMENT_THREADS: Threads() = %d, want GOMAXPROCS", Threads())
	}
	before := runtime.NumGoroutine()
	p := New(1)
	if runtime.NumGoroutine() != before {
		t.Error("a pool of one started goroutines")
	}
	p.Close()
}

func TestRunAllocatesNothing(t *testing.T) {
	p := New(2)
	defer p.Close()
	var task countTask
	if n := testing.AllocsPerRun(100, func() { p.Run(&task, 2) }); n != 0 {
		t.Errorf("Run allocates %v times per call", n)
	}
}
