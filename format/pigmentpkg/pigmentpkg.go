// Package pigmentpkg reads and writes pigment packages: folders shaped like
// a diffusers model (model_index.json, tokenizer/, scheduler/, one folder
// per network) whose network weights live in ordinary safetensors files in
// which palettized tensors are stored as a look-up table and packed n-bit
// indices. docs/FORMAT.md specifies the format byte by byte; this package
// is its reference implementation.
//
// Layout of a package:
//
//	pigment.json                  manifest: format, version, source, recipe, per-tensor bits and error, check results
//	model_index.json              as in the source diffusers model
//	tokenizer/, scheduler/        copied from the source (when it has them)
//	<component>/config.json       diffusers config of the network
//	<component>/weights.safetensors
//
// In weights.safetensors a float tensor W is stored as itself (F32, F16 or
// BF16). A palettized tensor W of shape S is stored as two tensors, W.lut
// (F16 or F32, shape [groups, 2^n]) and W.indices (U8, the packed indices,
// shape [PackedLen]), and one metadata entry "pigment.palette.W" holding a
// JSON object {"bits": n, "shape": S, "axis": 0, "group_size": G}.
// Metadata "pigment.format" = "pigment" and "pigment.version" = "1" mark
// the file.
package pigmentpkg

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/pigment-sd/pigment/format/safetensors"
	"github.com/pigment-sd/pigment/palette"
	"github.com/pigment-sd/pigment/tensor"
	"github.com/pigment-sd/pigment/weights"
)

// FormatName and Version identify the format; readers reject other
// versions.
const (
	FormatName = "pigment"
	Version    = 1
)

// Names of the files of a package.
const (
	ManifestFile = "pigment.json"
	WeightsFile  = "weights.safetensors"
	ConfigFile   = "config.json"
)

// Metadata keys of a weights file.
const (
	metaFormat  = "pigment.format"
	metaVersion = "pigment.version"
	metaPalette = "pigment.palette."
)

// Suffixes of the two stored parts of a palettized tensor.
const (
	LUTSuffix     = ".lut"
	IndicesSuffix = ".indices"
)

// PaletteInfo is the metadata entry of one palettized tensor.
type PaletteInfo struct {
	Bits      int   `json:"bits"`
	Shape     []int `json:"shape"`
	Axis      int   `json:"axis"`
	GroupSize int   `json:"group_size"`
}

// Entry is one tensor to write: either a float tensor (Float, stored as
// it is) or a palettized one.
type Entry struct {
	Name       string
	Float      weights.Tensor // F32, F16 or BF16 stored as is
	Palettized *palette.Tensor
}

// WriteWeights writes entries to path atomically.
func WriteWeights(path string, entries []Entry) error {
	meta := map[string]string{metaFormat: FormatName, metaVersion: strconv.Itoa(Version)}
	var out []safetensors.Tensor
	seen := map[string]bool{}
	add := func(name string) error {
		if seen[name] {
			return fmt.Errorf("write %s: tensor name %s used twice", path, name)
		}
		seen[name] = true
		return nil
	}
	for _, e := range entries {
		switch {
		case e.Palettized != nil:
			p := e.Palettized
			if err := add(e.Name); err != nil {
				return err
			}
			for _, n := range []string{e.Name + LUTSuffix, e.Name + IndicesSuffix} {
				if err := add(n); err != nil {
					return err
				}
			}
			info, _ := json.Marshal(PaletteInfo{Bits: p.Bits(), Shape: p.Shape(), Axis: 0, GroupSize: p.GroupSize()})
			meta[metaPalette+e.Name] = string(info)
			out = append(out, lutTensor(e.Name+LUTSuffix, p), safetensors.Tensor{
				Name: e.Name + IndicesSuffix, DType: tensor.U8, Shape: []int{len(p.Indices())}, Data: p.Indices(),
			})
		case e.Float != nil:
			if err := add(e.Name); err != nil {
				return err
			}
			t, err := floatTensor(e.Name, e.Float)
			if err != nil {
				return fmt.Errorf("write %s: %w", path, err)
			}
			out = append(out, t)
		default:
			return fmt.Errorf("write %s: entry %s has no data", path, e.Name)
		}
	}
	return safetensors.WriteFile(path, out, meta)
}

func lutTensor(name string, p *palette.Tensor) safetensors.Tensor {
	lut := p.LUT()
	shape := []int{p.Groups(), 1 << p.Bits()}
	if p.LUTDType() == tensor.F32 {
		return safetensors.F32(name, shape, lut)
	}
	b := make([]byte, 2*len(lut))
	for i, v := range lut {
		h := tensor.Float32ToFloat16(v)
		b[2*i], b[2*i+1] = byte(h), byte(h>>8)
	}
	return safetensors.Tensor{Name: name, DType: tensor.F16, Shape: shape, Data: b}
}

// floatTensor stores a float weight as it is: raw bytes when the source is
// raw, float32 otherwise.
func floatTensor(name string, t weights.Tensor) (safetensors.Tensor, error) {
	if r, ok := t.(*weights.Raw); ok {
		return safetensors.Tensor{Name: name, DType: r.DType(), Shape: r.Shape(), Data: r.Bytes()}, nil
	}
	switch t.DType() {
	case tensor.F32:
		return safetensors.F32(name, t.Shape(), weights.ReadAll(t)), nil
	}
	return safetensors.Tensor{}, fmt.Errorf("tensor %s: cannot store dtype %s as a float tensor", name, t.DType())
}

// Weights is an open weights file of a package: a weights.Source in which
// palettized tensors appear under their own names as *palette.Tensor and
// float tensors as *weights.Raw, all reading the memory-mapped file.
type Weights struct {
	file    *safetensors.File
	tensors weights.Map
	palette map[string]PaletteInfo
}

// OpenWeights opens and validates a package weights file.
func OpenWeights(path string) (*Weights, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, err
	}
	w, err := newWeights(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("pigment weights %s: %w", path, err)
	}
	return w, nil
}

// ParseWeights validates a package weights file held in memory.
func ParseWeights(buf []byte) (*Weights, error) {
	f, err := safetensors.Parse(buf)
	if err != nil {
		return nil, err
	}
	return newWeights(f)
}

func newWeights(f *safetensors.File) (*Weights, error) {
	meta := f.Metadata()
	if meta[metaFormat] != FormatName {
		return nil, fmt.Errorf("not a pigment weights file (metadata %s is %q)", metaFormat, meta[metaFormat])
	}
	v, err := strconv.Atoi(meta[metaVersion])
	if err != nil || v != Version {
		return nil, fmt.Errorf("format version %q is not supported (this pigment reads version %d)", meta[metaVersion], Version)
	}
	w := &Weights{file: f, tensors: weights.Map{}, palette: map[string]PaletteInfo{}}
	parts := map[string]bool{}
	for key, val := range meta {
		if !strings.HasPrefix(key, metaPalette) {
			continue
		}
		name := strings.TrimPrefix(key, metaPalette)
		var info PaletteInfo
		if err := json.Unmarshal([]byte(val), &info); err != nil {
			return nil, fmt.Errorf("tensor %s: bad palette metadata: %v", name, err)
		}
		if info.Axis != 0 {
			return nil, fmt.Errorf("tensor %s: palette axis %d is not supported (only 0)", name, info.Axis)
		}
		t, err := w.palettized(name, info)
		if err != nil {
			return nil, fmt.Errorf("tensor %s: %w", name, err)
		}
		w.tensors[name] = t
		w.palette[name] = info
		parts[name+LUTSuffix], parts[name+IndicesSuffix] = true, true
	}
	for _, name := range f.Names() {
		if parts[name] {
			continue
		}
		if _, dup := w.tensors[name]; dup {
			return nil, fmt.Errorf("tensor %s is stored both as a float tensor and palettized", name)
		}
		if strings.HasSuffix(name, LUTSuffix) || strings.HasSuffix(name, IndicesSuffix) {
			return nil, fmt.Errorf("tensor %s has no palette metadata", name)
		}
		info, _ := f.Info(name)
		data, _ := f.Data(name)
		if !info.DType.IsFloat() || info.DType == tensor.F64 {
			// Integer buffers (such as position ids) are not weights.
			continue
		}
		r, err := weights.NewRaw(data, info.DType, info.Shape)
		if err != nil {
			return nil, fmt.Errorf("tensor %s: %w", name, err)
		}
		w.tensors[name] = r
	}
	return w, nil
}

func (w *Weights) palettized(name string, info PaletteInfo) (*palette.Tensor, error) {
	li, ok := w.file.Info(name + LUTSuffix)
	if !ok {
		return nil, fmt.Errorf("missing %s%s", name, LUTSuffix)
	}
	ii, ok := w.file.Info(name + IndicesSuffix)
	if !ok {
		return nil, fmt.Errorf("missing %s%s", name, IndicesSuffix)
	}
	if ii.DType != tensor.U8 {
		return nil, fmt.Errorf("%s%s has dtype %s, want U8", name, IndicesSuffix, ii.DType)
	}
	if li.DType != tensor.F16 && li.DType != tensor.F32 {
		return nil, fmt.Errorf("%s%s has dtype %s, want F16 or F32", name, LUTSuffix, li.DType)
	}
	lut, _, err := w.file.Float32(name + LUTSuffix)
	if err != nil {
		return nil, err
	}
	idx, err := w.file.Data(name + IndicesSuffix)
	if err != nil {
		return nil, err
	}
	return palette.New(info.Shape, info.Bits, info.GroupSize, lut, li.DType, idx)
}

// Tensor implements weights.Source.
func (w *Weights) Tensor(name string) (weights.Tensor, bool) { return w.tensors.Tensor(name) }

// Names implements weights.Source.
func (w *Weights) Names() []string { return w.tensors.Names() }

// Palette returns the palette metadata of a palettized tensor.
func (w *Weights) Palette(name string) (PaletteInfo, bool) {
	p, ok := w.palette[name]
	return p, ok
}

// PalettizedNames lists the palettized tensors, sorted.
func (w *Weights) PalettizedNames() []string {
	out := make([]string, 0, len(w.palette))
	for n := range w.palette {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Evict drops the file's pages from resident memory until they are used
// again (see safetensors.File.Evict).
func (w *Weights) Evict() error { return w.file.Evict() }

// Close unmaps the file.
func (w *Weights) Close() error { return w.file.Close() }

var _ io.Closer = (*Weights)(nil)
