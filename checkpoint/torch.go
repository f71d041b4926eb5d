package checkpoint

import (
	"sync"

	"github.com/pigment-sd/pigment/format/ckpt"
	"github.com/pigment-sd/pigment/tensor"
)

// torchFile adapts a PyTorch checkpoint read by format/ckpt. Its Data
// copies each tensor out of the archive, so the last result is kept: the
// q, k and v views of one OpenCLIP in_proj tensor share one copy.
type torchFile struct {
	f *ckpt.File

	mu       sync.Mutex
	lastName string
	lastData []byte
}

// openTorchFile opens a PyTorch zip checkpoint (.ckpt, .pt, .bin).
func openTorchFile(path string) (tensorFile, error) {
	f, err := ckpt.Open(path)
	if err != nil {
		return nil, err
	}
	return &torchFile{f: f}, nil
}

func (t *torchFile) Path() string                { return t.f.Path() }
func (t *torchFile) Names() []string             { return t.f.Names() }
func (t *torchFile) Metadata() map[string]string { return nil }
func (t *torchFile) Close() error                { return t.f.Close() }

// Evict does nothing: tensors of PyTorch files are copied out of the archive.
func (t *torchFile) Evict() error { return nil }

func (t *torchFile) Info(name string) (dtype tensor.DType, shape []int, ok bool) {
	return t.f.Info(name)
}

func (t *torchFile) Data(name string) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if name == t.lastName && t.lastData != nil {
		return t.lastData, nil
	}
	d, err := t.f.Data(name)
	if err != nil {
		return nil, err
	}
	t.lastName, t.lastData = name, d
	return d, nil
}
