package safetensors

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/pigment-sd/pigment/internal/atomicfile"
	"github.com/pigment-sd/pigment/tensor"
)

// Tensor is one tensor to write. Either Data holds its raw little-endian
// bytes, or WriteData streams exactly DType.Size()*NumElements(Shape) bytes.
type Tensor struct {
	Name      string
	DType     tensor.DType
	Shape     []int
	Data      []byte
	WriteData func(w io.Writer) error
}

// F32 makes a float32 tensor entry from values.
func F32(name string, shape []int, values []float32) Tensor {
	b := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return Tensor{Name: name, DType: tensor.F32, Shape: shape, Data: b}
}

// I64 makes an int64 tensor entry from values.
func I64(name string, shape []int, values []int64) Tensor {
	b := make([]byte, 8*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(v))
	}
	return Tensor{Name: name, DType: tensor.I64, Shape: shape, Data: b}
}

// WriteFile writes tensors and metadata to path
// atomically: the file appears whole under its name or not at all.
func WriteFile(path string, tensors []Tensor, metadata map[string]string) error {
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		if err := Encode(bw, tensors, metadata); err != nil {
			return err
		}
		return bw.Flush()
	})
}

// Encode writes a safetensors stream to w. As the reference writer does, it
// lays tensors out by decreasing element size, then by name, so that every
// tensor starts at a multiple of its element size (the header is padded to
// a multiple of 8 bytes).
func Encode(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	sorted := append([]Tensor(nil), tensors...)
	sort.Slice(sorted, func(a, b int) bool {
		if sa, sb := sorted[a].DType.Size(), sorted[b].DType.Size(); sa != sb {
			return sa > sb
		}
		return sorted[a].Name < sorted[b].Name
	})
	header := make(map[string]any, len(sorted)+1)
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var off int64
	for _, t := range sorted {
		if t.Name == "__metadata__" || t.Name == "" {
			return fmt.Errorf("safetensors: invalid tensor name %q", t.Name)
		}
		if _, dup := header[t.Name]; dup {
			return fmt.Errorf("safetensors: duplicate tensor %q", t.Name)
		}
		if t.DType.Size() == 0 {
			return fmt.Errorf("safetensors: tensor %s: unknown dtype %q", t.Name, t.DType)
		}
		for _, d := range t.Shape {
			if d < 0 {
				return fmt.Errorf("safetensors: tensor %s: bad shape %v", t.Name, t.Shape)
			}
		}
		size := int64(tensor.NumElements(t.Shape) * t.DType.Size())
		if t.WriteData == nil && int64(len(t.Data)) != size {
			return fmt.Errorf("safetensors: tensor %s: %d bytes for %s %v (want %d)", t.Name, len(t.Data), t.DType, t.Shape, size)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		header[t.Name] = map[string]any{"dtype": string(t.DType), "shape": shape, "data_offsets": []int64{off, off + size}}
		off += size
	}
	hj, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("safetensors: header: %w", err)
	}
	for len(hj)%8 != 0 {
		hj = append(hj, ' ')
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hj)))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return err
	}
	if _, err := w.Write(hj); err != nil {
		return err
	}
	for _, t := range sorted {
		size := int64(tensor.NumElements(t.Shape) * t.DType.Size())
		if t.WriteData == nil {
			if _, err := w.Write(t.Data); err != nil {
				return err
			}
			continue
		}
		cw := &countingWriter{w: w}
		if err := t.WriteData(cw); err != nil {
			return fmt.Errorf("safetensors: tensor %s: %w", t.Name, err)
		}
		if cw.n != size {
			return fmt.Errorf("safetensors: tensor %s: wrote %d bytes, want %d", t.Name, cw.n, size)
		}
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
