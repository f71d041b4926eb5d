package nn

import (
	"fmt"

	"github.com/pigment-sd/pigment/kernels"
	"github.com/pigment-sd/pigment/tensor"
)

// Arena is a pool of float32 buffers. Get takes a free buffer big enough
// (allocating one only when none fits), Put gives it back. A network's
// forward pass asks for the same sequence of sizes every time, so after the
// first pass or two it allocates nothing.
//
// Buffers are not cleared: Get returns old contents. An Arena is not safe
// for concurrent use.
type Arena struct {
	free  map[int][][]float32
	inUse map[*float32]int

	stats ArenaStats
}

// ArenaStats reports an arena's memory use in bytes.
type ArenaStats struct {
	InUse  int64 // bytes of the buffers handed out and not yet returned
	Peak   int64 // the largest InUse seen
	Held   int64 // bytes allocated in total (in use plus free)
	Allocs int64 // number of buffers allocated so far (Release does not reset it)
}

// NewArena returns an empty arena.
func NewArena() *Arena {
	return &Arena{free: map[int][][]float32{}, inUse: map[*float32]int{}}
}

// Get returns a buffer of n values with unspecified contents. It reuses the
// smallest free buffer that holds n values and is at most four times as
// large (the bound keeps a small request from taking a buffer a large one
// needs), and allocates a new one only when there is none.
func (a *Arena) Get(n int) []float32 {
	if n <= 0 {
		return nil
	}
	best := 0
	for c, list := range a.free {
		if len(list) > 0 && c >= n && c <= 4*n && (best == 0 || c < best) {
			best = c
		}
	}
	var b []float32
	if best > 0 {
		list := a.free[best]
		b = list[len(list)-1]
		a.free[best] = list[:len(list)-1]
	} else {
		best = n
		b = make([]float32, n)
		a.stats.Held += int64(4 * n)
		a.stats.Allocs++
	}
	a.inUse[&b[0]] = best
	a.stats.InUse += int64(4 * best)
	if a.stats.InUse > a.stats.Peak {
		a.stats.Peak = a.stats.InUse
	}
	return b[:n]
}

// GetExact is Get restricted to buffers of exactly n values: it reuses a
// free buffer whose capacity is n, or allocates one. A caller that
// allocates many buffers of one size (activations held in equal pieces)
// uses it so that its requests neither take larger free buffers, which
// larger requests need, nor count them in InUse.
func (a *Arena) GetExact(n int) []float32 {
	if n <= 0 {
		return nil
	}
	var b []float32
	if list := a.free[n]; len(list) > 0 {
		b = list[len(list)-1]
		a.free[n] = list[:len(list)-1]
	} else {
		b = make([]float32, n)
		a.stats.Held += int64(4 * n)
		a.stats.Allocs++
	}
	a.inUse[&b[0]] = n
	a.stats.InUse += int64(4 * n)
	if a.stats.InUse > a.stats.Peak {
		a.stats.Peak = a.stats.InUse
	}
	return b
}

// Put returns a buffer obtained from Get or GetExact. Putting nil or an
// empty slice does nothing. Putting a buffer twice, or one the arena did
// not hand out, is a programming error and panics (it would otherwise
// corrupt activations).
func (a *Arena) Put(b []float32) {
	if len(b) == 0 {
		return
	}
	c, ok := a.inUse[&b[0]]
	if !ok || c != cap(b) {
		panic(fmt.Sprintf("nn: arena: buffer of %d values returned twice or not from this arena", len(b)))
	}
	delete(a.inUse, &b[0])
	a.free[c] = append(a.free[c], b[:c])
	a.stats.InUse -= int64(4 * c)
}

// Stats reports the arena's memory use.
func (a *Arena) Stats() ArenaStats { return a.stats }

// ResetPeak sets Peak to the current InUse.
func (a *Arena) ResetPeak() { a.stats.Peak = a.stats.InUse }

// Release drops every free buffer, so the garbage collector can reclaim
// them (for example after a forward pass at an unusual size).
func (a *Arena) Release() {
	for n, list := range a.free {
		a.stats.Held -= int64(4 * n * len(list))
	}
	a.free = map[int][][]float32{}
}

// Abandon forgets every buffer handed out and not returned, as when a
// forward pass stops part way (its context cancelled): they are left to
// the garbage collector, and the arena is as if they had never been
// allocated.
func (a *Arena) Abandon() {
	for p, c := range a.inUse {
		delete(a.inUse, p)
		a.stats.Held -= int64(4 * c)
		a.stats.InUse -= int64(4 * c)
	}
}

// Ctx is what a forward pass needs besides the weights: the kernels that do
// the arithmetic, the arena activations come from, and the attention
// settings. A Ctx is used by one forward pass at a time.
type Ctx struct {
	K     kernels.Kernels
	Arena *Arena
	// Attention and Chunk select the attention implementation (see
	// kernels.Attention); Chunk 0 means kernels.DefaultChunk.
	Attention kernels.AttentionMode
	Chunk     int
}

// NewCtx returns a Ctx with a fresh arena and the attention settings of opts.
func NewCtx(k kernels.Kernels, opts Options) *Ctx {
	return &Ctx{K: k, Arena: NewArena(), Attention: opts.Attention, Chunk: opts.Chunk}
}

// New returns an arena-backed tensor of the given shape with unspecified
// contents.
func (c *Ctx) New(shape ...int) *tensor.Tensor {
	return &tensor.Tensor{Shape: append([]int(nil), shape...), Data: c.Arena.Get(tensor.NumElements(shape))}
}

// Free gives the tensors' buffers back to the arena. Nil tensors are
// skipped. A tensor must not be used after it is freed.
func (c *Ctx) Free(ts ...*tensor.Tensor) {
	for _, t := range ts {
		if t != nil {
			c.Arena.Put(t.Data)
		}
	}
}

// Detach copies an arena tensor into ordinary memory and frees it, for
// results handed to callers.
func (c *Ctx) Detach(t *tensor.Tensor) *tensor.Tensor {
	out := t.Clone()
	c.Free(t)
	return out
}

// Options are the settings every network (text encoder, UNet, VAE) takes.
// The zero value is the default: chunked attention with the default chunk,
// no hook.
type Options struct {
	// Attention selects the attention implementation; Chunk is the query
	// chunk of kernels.AttentionChunked (0 means kernels.DefaultChunk).
	Attention kernels.AttentionMode
	Chunk     int
	// Hook, when set, receives intermediate activations by name (for
	// example "down_blocks.1" or "layers.3"; each network documents its
	// names). The tensor is a copy the hook may keep.
	Hook func(name string, t *tensor.Tensor)
}

// Emit passes a copy of t to the hook, if there is one.
func (o *Options) Emit(name string, t *tensor.Tensor) {
	if o.Hook != nil {
		o.Hook(name, t.Clone())
	}
}
