// Package convert turns a float Stable Diffusion model into a pigment
// package (see package pigmentpkg): the weights of its networks palettized
// to n-bit look-up tables, everything else copied, and optionally an
// output-correctness check that runs each converted network beside its
// float original.
//
// # What is palettized
//
// As Apple's ml-stable-diffusion converter does, only the weights of
// Linear and Conv layers are compressed: tensors whose name ends in
// ".weight", of rank 2 or more, with at least Options.MinSize elements,
// and not token or position embeddings (names containing "embeddings").
// Norms, biases, embeddings and small tensors stay float, stored in their
// source dtype (F16 stays F16, F32 stays F32). Options.Components picks
// the networks to compress (unet, text_encoder, vae_decoder, vae_encoder);
// the others are copied with float weights. Options.Recipe overrides the
// width of single tensors or of glob patterns.
//
// Float16 sources are palettized straight from their raw float16 bits,
// with no float32 copy; float32 and bfloat16 sources are read into a
// float32 buffer one tensor at a time. Either way palette clusters the float16-rounded values (see its
// documentation). A tensor holding NaN or Inf is refused with an error
// naming its component and name. Tensors are converted one at a time, so
// the float model is never held in memory as float32; the compressed
// tensors of the component being written are.
//
// # Output
//
// The package is built in a temporary sibling folder (<out>.tmp-XXXX),
// synced, and renamed to out only when complete, so out never holds half
// a package; on error or cancellation the temporary folder is removed. An
// existing out is an error unless Options.Force is set; even then only a
// pigment package or an empty folder is replaced, never another folder.
//
// The manifest (pigment.json) records the source, the recipe, and for each
// tensor its storage (bits, mode, group size, dtype, bytes) and the
// signal-to-quantization-noise ratio of the palettized weight against the
// source values. A lossless tensor (SQNR +Inf, which JSON cannot hold) is
// recorded with LosslessSQNR.
//
// # Output-correctness check
//
// With Options.Check, the written package is opened with checkpoint.Open
// and every network that has palettized weights is run beside its float
// original on fixed, seeded inputs:
//
//   - text_encoder: the token ids of the prompt CheckPrompt and of the
//     empty prompt, padded to max_position_embeddings (at most 77), from
//     the model's tokenizer or the bundled CLIP tokenizer of its family
//     (seeded random ids if neither fits the vocabulary); compared:
//     last_hidden_state.
//   - unet: N(0,1) latents [2, in_channels, s, s] with s = sample_size
//     capped at 32 (real models use 64 or 96; a 32x32 latent keeps the
//     check short), timestep 981 and an N(0,1) context [2, 77,
//     cross_attention_dim]; compared: the prediction.
//   - vae_decoder: N(0,1) latents [1, latent_channels, s, s] with s the
//     latent size of the VAE's sample_size, capped at 32; compared: the
//     image.
//   - vae_encoder: a U(-1,1) image [1, in_channels, S, S] of the size that
//     decodes from those latents; compared: the latent mean.
//
// Each comparison is palette.PSNR with the float output as reference, as
// apple/ml-stable-diffusion computes it; a network passes at
// Options.CheckThresholdDB (35 dB by default) or more. The results go to
// the manifest's Check, and when a network fails Convert still installs
// the package but returns a *CheckError. Cancellation is noticed between
// tensors and between network runs.
package convert

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pigment-sd/pigment/checkpoint"
	"github.com/pigment-sd/pigment/component"
	"github.com/pigment-sd/pigment/format/pigmentpkg"
	"github.com/pigment-sd/pigment/kernels"
	"github.com/pigment-sd/pigment/kernels/cpu"
	"github.com/pigment-sd/pigment/palette"
	"github.com/pigment-sd/pigment/tensor"
	"github.com/pigment-sd/pigment/weights"
)

// Defaults of Options.
const (
	DefaultBits        = 6
	DefaultMinSize     = 2048
	DefaultThresholdDB = 35
)

// LosslessSQNR is the SQNR recorded in the manifest for a tensor stored
// without any error (its true SQNR, +Inf, cannot be written as JSON). Any
// lossy float32 tensor stays far below it (under 220 dB).
const LosslessSQNR = 300

// Options configure Convert. The zero value converts every network at 6
// bits with per-tensor k-means tables.
type Options struct {
	// Bits is the index width: 1, 2, 3, 4, 6 or 8 (0 means DefaultBits).
	Bits int
	// Mode is palette.KMeans (the default when empty), palette.Uniform or
	// palette.Unique.
	Mode palette.Mode
	// GroupSize is the number of output channels sharing a table; 0 means
	// one table per tensor.
	GroupSize int
	// TableF32 stores tables as float32 instead of float16.
	TableF32 bool
	// Components lists the networks to compress (unet, text_encoder,
	// vae_decoder, vae_encoder; default all). The tensors of the others are
	// copied as float, unless a Recipe entry names them.
	Components []component.Name
	// MinSize is the element count below which a weight stays float (0
	// means DefaultMinSize).
	MinSize int
	// Recipe maps tensor names or path.Match globs over
	// "<folder>/<tensor>" (folders unet, text_encoder, vae; for example
	// "unet/*attn1*" or "vae/decoder.conv_in.weight") to a width, 0
	// meaning keep float. An exact name wins over globs, and a longer glob
	// over a shorter one. Entries apply to the weights that can be
	// palettized (see the package documentation), in any folder, whatever
	// Components and MinSize say; an entry that matches no tensor, or an
	// exact name of a norm, bias or embedding with a non-zero width, is an
	// error.
	Recipe map[string]int
	// Check runs the output-correctness check after writing.
	Check bool
	// CheckThresholdDB is the PSNR a network needs to pass (0 means
	// DefaultThresholdDB).
	CheckThresholdDB float64
	// Kernels run the check, and their pool the palettization; nil means
	// kernels/cpu on a pool of parallel.Threads() workers.
	Kernels kernels.Kernels
	// Progress, when set, is called after each tensor and around each
	// check, from the goroutine that called Convert.
	Progress func(Event)
	// Force replaces an existing pigment package (or empty folder) at the
	// output path.
	Force bool
}

// EventKind says what an Event reports.
type EventKind int

// Event kinds.
const (
	// TensorDone: a tensor has been palettized or kept float.
	TensorDone EventKind = iota
	// CheckStarted: the check of a network is about to run.
	CheckStarted
	// CheckDone: the check of a network has finished (PSNR is set).
	CheckDone
)

// Event reports progress.
type Event struct {
	Kind EventKind
	// Component is the folder of a tensor (unet, text_encoder, vae) or
	// the network of a check (unet, text_encoder, vae_decoder,
	// vae_encoder).
	Component component.Name
	// Tensor is the tensor name (TensorDone only).
	Tensor string
	// Index counts from 1 to Total: tensors over all folders, or checks.
	Index, Total int
	// Bits is the index width of the tensor, 0 if it stayed float.
	Bits int
	// SQNR is the tensor's signal-to-quantization-noise ratio in dB (+Inf
	// when lossless; 0 for float tensors).
	SQNR float64
	// PSNR is the check result in dB (CheckDone only).
	PSNR float64
}

// settings are validated Options with defaults applied.
type settings struct {
	Options
	components map[component.Name]bool
	recipe     *recipe
}

func (o Options) settle() (*settings, error) {
	if o.Bits == 0 {
		o.Bits = DefaultBits
	}
	if !palette.ValidBits(o.Bits) {
		return nil, fmt.Errorf("%d bits is not supported (%s)", o.Bits, palette.WidthsText)
	}
	if o.Mode == "" {
		o.Mode = palette.KMeans
	}
	switch o.Mode {
	case palette.KMeans, palette.Uniform, palette.Unique:
	default:
		return nil, fmt.Errorf("unknown mode %q (kmeans, uniform or unique)", o.Mode)
	}
	if o.GroupSize < 0 {
		return nil, fmt.Errorf("group size %d is negative", o.GroupSize)
	}
	if o.MinSize == 0 {
		o.MinSize = DefaultMinSize
	}
	if o.MinSize < 0 {
		return nil, fmt.Errorf("minimum size %d is negative", o.MinSize)
	}
	if o.CheckThresholdDB == 0 {
		o.CheckThresholdDB = DefaultThresholdDB
	}
	if math.IsNaN(o.CheckThresholdDB) {
		return nil, errors.New("check threshold is NaN")
	}
	s := &settings{Options: o, components: map[component.Name]bool{}}
	comps := o.Components
	if len(comps) == 0 {
		comps = component.Networks()
	}
	for _, c := range comps {
		if !slices.Contains(component.Networks(), c) {
			return nil, fmt.Errorf("unknown component %q (want one of %s)", c, component.Join(component.Networks(), ", "))
		}
		s.components[c] = true
	}
	r, err := newRecipe(o.Recipe)
	if err != nil {
		return nil, err
	}
	s.recipe = r
	return s, nil
}

// part returns the network a tensor of a folder belongs to: the folder
// itself for unet and text_encoder, vae_decoder or vae_encoder for the
// VAE, "" for VAE tensors of neither.
func part(folder component.Name, name string) component.Name {
	if folder != component.VAE {
		return folder
	}
	switch {
	case strings.HasPrefix(name, "decoder."), strings.HasPrefix(name, "post_quant_conv."):
		return component.VAEDecoder
	case strings.HasPrefix(name, "encoder."), strings.HasPrefix(name, "quant_conv."):
		return component.VAEEncoder
	}
	return ""
}

// Palettizable reports whether a tensor is a Linear or Conv weight: a
// float ".weight" of rank 2 or more that is not an embedding.
func Palettizable(name string, t weights.Tensor) bool {
	if !t.DType().IsFloat() || len(t.Shape()) < 2 || !strings.HasSuffix(name, ".weight") {
		return false
	}
	return !strings.Contains(name, "embeddings")
}

// item is one tensor of the model and the width it gets (0: float).
type item struct {
	folder component.Name
	name   string
	t      weights.Tensor
	bits   int
}

// folders lists the model's component folders in processing order.
func folders(m *checkpoint.Model) []component.Name {
	var out []component.Name
	for _, f := range component.Folders() {
		if m.Components[f] != nil {
			out = append(out, f)
		}
	}
	return out
}

// plan decides the width of every tensor of the model.
func plan(m *checkpoint.Model, s *settings) (map[component.Name][]item, error) {
	present := map[component.Name]bool{}
	for _, f := range folders(m) {
		if f == component.VAE {
			present[component.VAEDecoder], present[component.VAEEncoder] = true, true
		} else {
			present[f] = true
		}
	}
	for _, c := range s.Components {
		if !present[c] {
			return nil, fmt.Errorf("component %s is not in the model", c)
		}
	}
	out := map[component.Name][]item{}
	for _, f := range folders(m) {
		src := m.Components[f].Weights
		for _, name := range src.Names() {
			t, ok := src.Tensor(name)
			if !ok {
				return nil, fmt.Errorf("%s: tensor %s is listed but missing", f, name)
			}
			ok = Palettizable(name, t)
			bits := 0
			if ok && s.components[part(f, name)] && weights.NumElements(t) >= s.MinSize {
				bits = s.Bits
			}
			key := string(f) + "/" + name
			if e := s.recipe.match(key); e != nil {
				if !ok && e.exact && e.bits != 0 {
					return nil, fmt.Errorf("recipe entry %q: %s is not a Linear or Conv weight (norms, biases and embeddings stay float)", e.pattern, key)
				}
				if ok {
					bits = e.bits
				}
			}
			out[f] = append(out[f], item{folder: f, name: name, t: t, bits: bits})
		}
	}
	if unused := s.recipe.unused(); len(unused) > 0 {
		return nil, fmt.Errorf("recipe entries match no tensor: %s (patterns are matched against folder/tensor, e.g. unet/conv_in.weight)", strings.Join(unused, ", "))
	}
	return out, nil
}

// Convert writes m as a pigment package at out and returns its manifest.
// When the output check fails, the package is installed and Convert
// returns the manifest together with a *CheckError. See the package
// documentation for what is converted and how.
func Convert(ctx context.Context, m *checkpoint.Model, out string, opt Options) (*pigmentpkg.Manifest, error) {
	man, err := convert(ctx, m, out, opt)
	if err != nil {
		var ce *CheckError
		if errors.As(err, &ce) {
			return man, err
		}
		return nil, fmt.Errorf("convert: %w", err)
	}
	return man, nil
}

func convert(ctx context.Context, m *checkpoint.Model, out string, opt Options) (*pigmentpkg.Manifest, error) {
	s, err := opt.settle()
	if err != nil {
		return nil, err
	}
	if s.Kernels == nil {
		k := cpu.New(0)
		defer k.Close()
		s.Kernels = k
	}
	if m.Kind == checkpoint.KindPigment {
		return nil, fmt.Errorf("%s is already a pigment package", m.Path)
	}
	if len(folders(m)) == 0 {
		return nil, fmt.Errorf("%s: the model has no components", m.Path)
	}
	items, err := plan(m, s)
	if err != nil {
		return nil, err
	}
	if err := checkTarget(out, s.Force); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	parent, base := filepath.Split(filepath.Clean(out))
	if parent == "" {
		parent = "."
	}
	if base == "" || base == "." || base == ".." {
		return nil, fmt.Errorf("output path %q does not name a folder", out)
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(parent, base+".tmp-")
	if err != nil {
		return nil, err
	}
	installed := false
	defer func() {
		if !installed {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}

	man := &pigmentpkg.Manifest{
		Created:    time.Now().UTC().Format(time.RFC3339),
		Source:     pigmentpkg.Source{Path: m.Path, Kind: m.Kind, Family: m.Family},
		Recipe:     s.manifestRecipe(),
		Components: map[string]*pigmentpkg.Component{},
	}
	if err := writeSupport(tmp, m); err != nil {
		return nil, err
	}
	c := &converter{s: s}
	for _, f := range folders(m) {
		c.total += len(items[f])
	}
	for _, f := range folders(m) {
		rec, err := c.writeComponent(ctx, tmp, f, m.Components[f].Config, items[f])
		if err != nil {
			return nil, err
		}
		man.Components[string(f)] = rec
	}
	if err := pigmentpkg.WriteManifest(tmp, man); err != nil {
		return nil, err
	}
	var failed error
	if s.Check {
		res, err := runCheck(ctx, m, tmp, s, items)
		if err != nil {
			return nil, err
		}
		man.Check = res
		if err := pigmentpkg.WriteManifest(tmp, man); err != nil {
			return nil, err
		}
		failed = checkErr(res)
	}
	if err := syncTree(tmp); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := install(tmp, out, s.Force); err != nil {
		return nil, err
	}
	installed = true
	return man, failed
}

func (s *settings) manifestRecipe() pigmentpkg.Recipe {
	r := pigmentpkg.Recipe{
		Bits: s.Bits, Mode: string(s.Mode), Granularity: "per-tensor",
		TableDType: string(tensor.F16), MinSize: s.MinSize,
	}
	if s.GroupSize > 0 {
		r.Granularity, r.GroupSize = "per-grouped-channel", s.GroupSize
	}
	if s.TableF32 {
		r.TableDType = string(tensor.F32)
	}
	if len(s.Recipe) > 0 {
		r.Overrides = map[string]int{}
		for k, v := range s.Recipe {
			r.Overrides[k] = v
		}
	}
	return r
}

// converter holds the scratch buffers reused from tensor to tensor and the
// progress count.
type converter struct {
	s            *settings
	index, total int
	f32          []float32
	f16          []uint16
	scratch      []*sqnrScratch
}

// writeComponent palettizes the tensors of one folder and writes its
// config.json and weights.safetensors.
func (c *converter) writeComponent(ctx context.Context, dir string, folder component.Name, config []byte, items []item) (*pigmentpkg.Component, error) {
	cdir := filepath.Join(dir, string(folder))
	if err := os.Mkdir(cdir, 0o755); err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(cdir, pigmentpkg.ConfigFile), config); err != nil {
		return nil, err
	}
	entries, rec, err := c.compress(ctx, folder, items)
	if err != nil {
		return nil, err
	}
	if err := pigmentpkg.WriteWeights(filepath.Join(cdir, pigmentpkg.WeightsFile), entries); err != nil {
		return nil, fmt.Errorf("%s: %w", folder, err)
	}
	return rec, nil
}

// compress palettizes the tensors of one folder, in order, and returns
// the entries to write and their record.
func (c *converter) compress(ctx context.Context, folder component.Name, items []item) ([]pigmentpkg.Entry, *pigmentpkg.Component, error) {
	rec := &pigmentpkg.Component{Tensors: map[string]*pigmentpkg.TensorRecord{}}
	entries := make([]pigmentpkg.Entry, 0, len(items))
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		n := int64(weights.NumElements(it.t))
		tr := &pigmentpkg.TensorRecord{Shape: slices.Clone(it.t.Shape())}
		var sqnr float64
		if it.bits == 0 {
			tr.DType = string(it.t.DType())
			tr.Bytes = floatBytes(it.t)
			entries = append(entries, pigmentpkg.Entry{Name: it.name, Float: it.t})
		} else {
			p, err := c.palettize(it)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", folder, err)
			}
			sqnr = c.sqnr(it.t, p)
			tr.Bits, tr.Mode, tr.GroupSize = it.bits, string(c.s.Mode), c.s.GroupSize
			tr.DType, tr.Bytes = string(weights.Palettized), p.StorageBytes()
			tr.SQNR = min(sqnr, LosslessSQNR)
			entries = append(entries, pigmentpkg.Entry{Name: it.name, Palettized: p})
		}
		rec.Tensors[it.name] = tr
		rec.Params += n
		rec.FloatBytes += 2 * n
		rec.StoredBytes += tr.Bytes
		c.index++
		if c.s.Progress != nil {
			c.s.Progress(Event{Kind: TensorDone, Component: folder, Tensor: it.name, Index: c.index, Total: c.total, Bits: it.bits, SQNR: sqnr})
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	return entries, rec, nil
}

// floatBytes is the stored size of a tensor kept float.
func floatBytes(t weights.Tensor) int64 {
	if r, ok := t.(*weights.Raw); ok {
		return r.StorageBytes()
	}
	return 4 * int64(weights.NumElements(t)) // stored as F32
}

// palettize compresses one tensor: float16 sources from their raw bits,
// others through a float32 copy.
func (c *converter) palettize(it item) (*palette.Tensor, error) {
	opt := palette.Options{Bits: it.bits, Mode: c.s.Mode, GroupSize: c.s.GroupSize, TableF32: c.s.TableF32, Pool: c.s.Kernels.Pool()}
	shape := it.t.Shape()
	n := weights.NumElements(it.t)
	if r, ok := it.t.(*weights.Raw); ok && r.DType() == tensor.F16 {
		c.f16 = grow(c.f16, n)
		raw := r.Bytes()
		for i := range c.f16 {
			c.f16[i] = binary.LittleEndian.Uint16(raw[2*i:])
		}
		return palette.PalettizeF16(it.name, c.f16, shape, opt)
	}
	c.f32 = grow(c.f32, n)
	readBlocks(it.t, c.f32)
	return palette.Palettize(it.name, c.f32, shape, opt)
}

// blockValues is about how many values are read per block.
const blockValues = 1 << 16

// readBlocks reads all of t into dst, a block of rows at a time.
func readBlocks(t weights.Tensor, dst []float32) {
	rows, rs := t.Shape()[0], weights.RowSize(t)
	step := max(1, blockValues/max(rs, 1))
	for lo := 0; lo < rows; lo += step {
		hi := min(rows, lo+step)
		t.ReadRows(dst[lo*rs:hi*rs], lo, hi)
	}
}

// sqnr is palette.SQNR of p against the source tensor t, computed a block
// of rows at a time on the kernels' workers (the sums are added in a
// fixed order, so the result does not depend on their number).
func (c *converter) sqnr(t weights.Tensor, p *palette.Tensor) float64 {
	rows, rs := t.Shape()[0], weights.RowSize(t)
	step := max(1, blockValues/max(rs, 1))
	blocks := (rows + step - 1) / step
	pool := c.s.Kernels.Pool()
	for len(c.scratch) < pool.Size() {
		c.scratch = append(c.scratch, new(sqnrScratch))
	}
	type sums struct{ sig, noise float64 }
	part := make([]sums, blocks)
	pool.ForWorker(blocks, func(w, b int) {
		s := c.scratch[w]
		s.ref, s.got = grow(s.ref, step*rs), grow(s.got, step*rs)
		lo, hi := b*step, min(rows, (b+1)*step)
		n := (hi - lo) * rs
		ref, got := s.ref[:n], s.got[:n]
		t.ReadRows(ref, lo, hi)
		p.ReadRows(got, lo, hi)
		var sig, noise float64
		for i, a := range ref {
			d := float64(a) - float64(got[i])
			sig += float64(a) * float64(a)
			noise += d * d
		}
		part[b] = sums{sig, noise}
	})
	var sig, noise float64
	for _, s := range part {
		sig += s.sig
		noise += s.noise
	}
	if noise == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(sig/noise)
}

// sqnrScratch holds one worker's sqnr buffers.
type sqnrScratch struct{ ref, got []float32 }

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}
