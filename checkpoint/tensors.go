package checkpoint

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/pigment-sd/pigment/format/safetensors"
	"github.com/pigment-sd/pigment/tensor"
	"github.com/pigment-sd/pigment/weights"
)

// tensorFile is one open weight file: safetensors, or a PyTorch zip
// checkpoint read through format/ckpt.
type tensorFile interface {
	Path() string
	Names() []string
	Info(name string) (tensor.DType, []int, bool)
	Data(name string) ([]byte, error)
	Metadata() map[string]string
	// Evict drops memory-mapped data from resident memory until it is
	// used again; files read into memory do nothing.
	Evict() error
	Close() error
}

type stFile struct{ f *safetensors.File }

func (s stFile) Path() string                  { return s.f.Path() }
func (s stFile) Names() []string               { return s.f.Names() }
func (s stFile) Data(n string) ([]byte, error) { return s.f.Data(n) }
func (s stFile) Metadata() map[string]string   { return s.f.Metadata() }
func (s stFile) Close() error                  { return s.f.Close() }
func (s stFile) Evict() error                  { return s.f.Evict() }
func (s stFile) Info(name string) (tensor.DType, []int, bool) {
	i, ok := s.f.Info(name)
	if !ok {
		return "", nil, false
	}
	return i.DType, i.Shape, true
}

// isTorchFile reports whether the file starts like a PyTorch checkpoint: a
// zip archive (torch.save since 1.6) or a bare pickle (older files).
func isTorchFile(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var head [4]byte
	n, err := io.ReadFull(f, head[:])
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return false, err
	}
	b := head[:n]
	return bytes.HasPrefix(b, []byte("PK\x03\x04")) || (len(b) > 0 && b[0] == 0x80), nil
}

// openTensorFile opens a safetensors or PyTorch weight file, chosen by its
// first bytes.
func openTensorFile(path string) (tensorFile, error) {
	torch, err := isTorchFile(path)
	if err != nil {
		return nil, err
	}
	if torch {
		return openTorchFile(path)
	}
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, err
	}
	return stFile{f}, nil
}

// entry maps one stored tensor to one diffusers tensor.
type entry struct {
	src, dst string
	shape    []int // shape of the diffusers tensor
	// rowLo, rowHi select rows [rowLo, rowHi) of src when rowHi > 0.
	rowLo, rowHi int
}

// makeTensor builds the weights.Tensor for e over the bytes of f.
func makeTensor(f tensorFile, e entry) (weights.Tensor, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s: tensor %s: %s", f.Path(), e.src, fmt.Sprintf(format, args...))
	}
	dt, shape, ok := f.Info(e.src)
	if !ok {
		return nil, fail("missing")
	}
	data, err := f.Data(e.src)
	if err != nil {
		return nil, fail("%v", err)
	}
	if e.rowHi > 0 {
		if len(shape) == 0 || e.rowLo < 0 || e.rowHi > shape[0] || e.rowLo >= e.rowHi {
			return nil, fail("rows [%d,%d) outside shape %v", e.rowLo, e.rowHi, shape)
		}
		rowBytes := len(data) / shape[0]
		data = data[e.rowLo*rowBytes : e.rowHi*rowBytes]
	}
	switch dt {
	case tensor.F32, tensor.F16, tensor.BF16:
		r, err := weights.NewRaw(data, dt, e.shape)
		if err != nil {
			return nil, fail("%v", err)
		}
		return r, nil
	case tensor.F64:
		n := tensor.NumElements(e.shape)
		if len(data) != 8*n {
			return nil, fail("%d bytes for F64 %v", len(data), e.shape)
		}
		v := make([]float32, n)
		if err := tensor.DecodeFloats(v, data, dt); err != nil {
			return nil, fail("%v", err)
		}
		return weights.NewDense(v, e.shape...), nil
	}
	return nil, fail("dtype %s is not a float weight type", dt)
}

// isIgnoredBuffer reports tensors that are buffers, not weights, and are
// dropped from every source.
func isIgnoredBuffer(name string) bool {
	return name == "text_model.embeddings.position_ids"
}

// deprecatedAttentionName renames the attention weights of diffusers
// files saved before v0.14 (query, key, value, proj_attn, as the SD 1.x
// and 2.x Hub VAEs have them) to to_q, to_k, to_v, to_out.0, as diffusers'
// _convert_deprecated_attention_blocks does when loading.
func deprecatedAttentionName(name string) (string, bool) {
	if !strings.Contains(name, "attentions.") {
		return name, false
	}
	for _, r := range [][2]string{
		{".query.", ".to_q."}, {".key.", ".to_k."}, {".value.", ".to_v."}, {".proj_attn.", ".to_out.0."},
	} {
		for _, leaf := range []string{"weight", "bias"} {
			if base, ok := strings.CutSuffix(name, r[0]+leaf); ok {
				return base + r[1] + leaf, true
			}
		}
	}
	return name, false
}

// identitySource makes a source of all tensors of the files under their
// stored names (diffusers folders), skipping buffers and renaming
// deprecated attention weights; renamed reports whether any were.
func identitySource(files []tensorFile) (m weights.Map, renamed bool, err error) {
	m = weights.Map{}
	owner := map[string]string{}
	for _, f := range files {
		for _, n := range f.Names() {
			if isIgnoredBuffer(n) {
				continue
			}
			_, shape, _ := f.Info(n)
			dst, old := deprecatedAttentionName(n)
			if old {
				renamed = true
				shape = squeezeLinear(shape)
			}
			if prev, dup := owner[dst]; dup {
				return nil, false, fmt.Errorf("%s: tensor %s is also in %s", f.Path(), dst, prev)
			}
			owner[dst] = f.Path()
			t, err := makeTensor(f, entry{src: n, dst: dst, shape: shape})
			if err != nil {
				return nil, false, err
			}
			m[dst] = t
		}
	}
	return m, renamed, nil
}
