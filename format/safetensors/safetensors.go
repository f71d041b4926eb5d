// Package safetensors reads and writes the safetensors format: an 8-byte
// little-endian header length, a JSON header mapping tensor names to dtype,
// shape and byte offsets, then the raw little-endian data.
//
// Open memory-maps the file (where the platform allows) and validates the
// header fully before any tensor is used: offsets lie inside the data area,
// tensors do not overlap, every tensor's byte size equals its dtype size
// times its element count, and the header size is bounded. Tensor data is
// then a sub-slice of the mapping; nothing is copied.
package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/pigment-sd/pigment/tensor"
)

// MaxHeaderSize bounds the JSON header, as the reference implementation does.
const MaxHeaderSize = 100 << 20

// FormatError reports a malformed file.
type FormatError struct {
	File   string // path, or "" for in-memory data
	Tensor string // tensor name, if the problem is with one tensor
	Msg    string
}

func (e *FormatError) Error() string {
	s := "safetensors"
	if e.File != "" {
		s += " " + e.File
	}
	if e.Tensor != "" {
		s += ": tensor " + e.Tensor
	}
	return s + ": " + e.Msg
}

// Info describes one tensor of a file.
type Info struct {
	Name  string
	DType tensor.DType
	Shape []int
	Begin int64 // offset of the first byte in the data area
	End   int64 // offset one past the last byte
}

// NumElements is the element count of the tensor.
func (i *Info) NumElements() int { return tensor.NumElements(i.Shape) }

// File is an open safetensors file.
type File struct {
	path     string
	data     []byte // the data area (after the header)
	whole    []byte // the whole mapping or buffer
	unmap    func() error
	infos    map[string]*Info
	names    []string
	metadata map[string]string
}

// Open maps and validates the file at path.
func Open(path string) (*File, error) {
	whole, unmap, err := mapFile(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors %s: %w", path, err)
	}
	f, err := parse(path, whole)
	if err != nil {
		if unmap != nil {
			unmap()
		}
		return nil, err
	}
	f.unmap = unmap
	return f, nil
}

// Parse validates a safetensors file held in memory. The returned File
// refers to buf; buf must not change while the File is used.
func Parse(buf []byte) (*File, error) { return parse("", buf) }

// Close releases the mapping. Tensor data obtained from the file must not be
// used afterwards.
func (f *File) Close() error {
	if f.unmap == nil {
		return nil
	}
	err := f.unmap()
	f.unmap = nil
	f.data, f.whole = nil, nil
	return err
}

// Evict tells the operating system that the file's data is not needed for
// now: its pages leave the process's resident memory (they stay in the
// page cache and are read back, without disk I/O while cached, on the next
// access). Tensor data stays valid. It does nothing for in-memory data.
func (f *File) Evict() error {
	if f.unmap == nil {
		return nil
	}
	return evict(f.whole)
}

// Path is the file's path ("" for in-memory data).
func (f *File) Path() string { return f.path }

// Names lists the tensor names in sorted order.
func (f *File) Names() []string { return f.names }

// Metadata is the file's __metadata__ map (never nil).
func (f *File) Metadata() map[string]string { return f.metadata }

// Info describes the named tensor.
func (f *File) Info(name string) (*Info, bool) {
	i, ok := f.infos[name]
	return i, ok
}

// Data returns the raw little-endian bytes of the named tensor.
func (f *File) Data(name string) ([]byte, error) {
	i, ok := f.infos[name]
	if !ok {
		return nil, &FormatError{File: f.path, Tensor: name, Msg: "no such tensor"}
	}
	return f.data[i.Begin:i.End:i.End], nil
}

// Float32 decodes a float tensor (F32, F16, BF16, F64) into a new float32
// slice. Use it for small tensors and tests; networks read weights through
// package weights instead.
func (f *File) Float32(name string) ([]float32, []int, error) {
	i, ok := f.infos[name]
	if !ok {
		return nil, nil, &FormatError{File: f.path, Tensor: name, Msg: "no such tensor"}
	}
	out := make([]float32, i.NumElements())
	if err := tensor.DecodeFloats(out, f.data[i.Begin:i.End], i.DType); err != nil {
		return nil, nil, &FormatError{File: f.path, Tensor: name, Msg: err.Error()}
	}
	return out, i.Shape, nil
}

// Int64 decodes an integer tensor (I64, I32, I16, I8, U8, BOOL) into int64s.
func (f *File) Int64(name string) ([]int64, []int, error) {
	i, ok := f.infos[name]
	if !ok {
		return nil, nil, &FormatError{File: f.path, Tensor: name, Msg: "no such tensor"}
	}
	raw := f.data[i.Begin:i.End]
	n := i.NumElements()
	out := make([]int64, n)
	for k := range out {
		switch i.DType {
		case tensor.I64:
			out[k] = int64(le64(raw[8*k:]))
		case tensor.I32:
			out[k] = int64(int32(le32(raw[4*k:])))
		case tensor.I16:
			out[k] = int64(int16(uint16(raw[2*k]) | uint16(raw[2*k+1])<<8))
		case tensor.I8:
			out[k] = int64(int8(raw[k]))
		case tensor.U8, tensor.Bool:
			out[k] = int64(raw[k])
		default:
			return nil, nil, &FormatError{File: f.path, Tensor: name, Msg: fmt.Sprintf("dtype %s is not an integer type", i.DType)}
		}
	}
	return out, i.Shape, nil
}

// Float64 decodes a float tensor into float64 values (F64 exactly).
func (f *File) Float64(name string) ([]float64, []int, error) {
	i, ok := f.infos[name]
	if !ok {
		return nil, nil, &FormatError{File: f.path, Tensor: name, Msg: "no such tensor"}
	}
	if i.DType == tensor.F64 {
		raw := f.data[i.Begin:i.End]
		out := make([]float64, i.NumElements())
		for k := range out {
			out[k] = math.Float64frombits(le64(raw[8*k:]))
		}
		return out, i.Shape, nil
	}
	if !i.DType.IsFloat() {
		ints, shape, err := f.Int64(name)
		if err != nil {
			return nil, nil, err
		}
		out := make([]float64, len(ints))
		for k, v := range ints {
			out[k] = float64(v)
		}
		return out, shape, nil
	}
	vals, shape, err := f.Float32(name)
	if err != nil {
		return nil, nil, err
	}
	out := make([]float64, len(vals))
	for k, v := range vals {
		out[k] = float64(v)
	}
	return out, shape, nil
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func le64(b []byte) uint64 { return uint64(le32(b)) | uint64(le32(b[4:]))<<32 }

type headerEntry struct {
	DType       string  `json:"dtype"`
	Shape       []int64 `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

func parse(path string, whole []byte) (*File, error) {
	fail := func(tensorName, format string, args ...any) error {
		return &FormatError{File: path, Tensor: tensorName, Msg: fmt.Sprintf(format, args...)}
	}
	if len(whole) < 8 {
		return nil, fail("", "file too short (%d bytes) for the 8-byte header length", len(whole))
	}
	hlen := le64(whole)
	if hlen > MaxHeaderSize {
		return nil, fail("", "header length %d exceeds the %d-byte limit", hlen, MaxHeaderSize)
	}
	if hlen > uint64(len(whole)-8) {
		return nil, fail("", "header length %d runs past the end of the file (%d bytes): truncated?", hlen, len(whole))
	}
	header := whole[8 : 8+hlen]
	if len(header) == 0 || header[0] != '{' {
		return nil, fail("", "header does not start with '{'")
	}
	data := whole[8+hlen:]

	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(header))
	if err := dec.Decode(&raw); err != nil {
		return nil, fail("", "header is not valid JSON: %v", err)
	}
	f := &File{path: path, whole: whole, data: data, infos: make(map[string]*Info, len(raw)), metadata: map[string]string{}}
	if m, ok := raw["__metadata__"]; ok {
		if err := json.Unmarshal(m, &f.metadata); err != nil {
			return nil, fail("", "__metadata__ is not a map of strings: %v", err)
		}
		if f.metadata == nil {
			f.metadata = map[string]string{}
		}
		delete(raw, "__metadata__")
	}
	infos := make([]*Info, 0, len(raw))
	for name, msg := range raw {
		var e headerEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fail(name, "bad header entry: %v", err)
		}
		dt, err := tensor.ParseDType(e.DType)
		if err != nil {
			return nil, fail(name, "%v", err)
		}
		if len(e.DataOffsets) != 2 {
			return nil, fail(name, "data_offsets must have 2 entries, has %d", len(e.DataOffsets))
		}
		begin, end := e.DataOffsets[0], e.DataOffsets[1]
		if begin < 0 || end < begin || end > int64(len(data)) {
			return nil, fail(name, "data_offsets [%d,%d] outside the %d-byte data area: truncated file?", begin, end, len(data))
		}
		shape := make([]int, len(e.Shape))
		n := int64(1)
		for k, d := range e.Shape {
			if d < 0 || d > math.MaxInt32 {
				return nil, fail(name, "bad dimension %d in shape %v", d, e.Shape)
			}
			shape[k] = int(d)
			if d != 0 && n > math.MaxInt64/d/8 {
				return nil, fail(name, "shape %v is too large", e.Shape)
			}
			n *= d
		}
		if want := n * int64(dt.Size()); want != end-begin {
			return nil, fail(name, "%s %v needs %d bytes, data_offsets give %d", dt, e.Shape, want, end-begin)
		}
		info := &Info{Name: name, DType: dt, Shape: shape, Begin: begin, End: end}
		f.infos[name] = info
		infos = append(infos, info)
		f.names = append(f.names, name)
	}
	// No overlap: sorted by (start, end) offset, each tensor must begin at
	// or after the previous one's end. An empty tensor may share its start
	// with the tensor that follows it.
	sort.Slice(infos, func(a, b int) bool {
		if infos[a].Begin != infos[b].Begin {
			return infos[a].Begin < infos[b].Begin
		}
		return infos[a].End < infos[b].End
	})
	for k := 1; k < len(infos); k++ {
		prev, cur := infos[k-1], infos[k]
		if cur.Begin < prev.End {
			return nil, fail(cur.Name, "data [%d,%d] overlaps tensor %s [%d,%d]", cur.Begin, cur.End, prev.Name, prev.Begin, prev.End)
		}
	}
	sort.Strings(f.names)
	return f, nil
}

// ErrNotFound is wrapped by errors for missing tensors.
var ErrNotFound = errors.New("tensor not found")
