// Package ckpt reads PyTorch checkpoints (.ckpt, .pt, .bin) written by
// torch.save in its zip format: a pickle <archive>/data.pkl describing the
// saved object, and one zip entry <archive>/data/<key> per tensor storage.
//
// The pickle is read by a restricted unpickler that never imports or calls
// anything. It rebuilds tensors (torch._utils._rebuild_tensor_v2,
// _rebuild_parameter), dicts (collections.OrderedDict) and plain values;
// other classes, such as the training callbacks and numpy scalars found in
// Stable Diffusion checkpoints, become inert placeholders that are never
// called; references to code such as os.system, subprocess or builtins.eval
// make Open fail with ErrForbidden.
//
// Open validates every tensor's storage bounds before any data is read.
// Tensor names are the flattened dict keys joined with "."; a top-level
// "state_dict" entry, as in PyTorch Lightning checkpoints, is unwrapped and
// the rest of the top level (optimizer states, callbacks) ignored. Data
// copies a tensor out of its storage as contiguous little-endian bytes,
// gathering strided views.
//
// The legacy (pre-1.6, non-zip) torch.save format is detected and refused
// with ErrLegacyFormat.
package ckpt

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/pigment-sd/pigment/tensor"
)

// Limits on untrusted input.
const (
	maxPickleSize = 256 << 20 // bytes of data.pkl
	maxDepth      = 64        // nesting of dicts holding tensors
	maxDims       = 64        // dimensions of a tensor
	// maxExpandedBytes bounds a tensor larger than its storage (a view
	// with zero strides, as torch's expand makes): Data allocates the full
	// tensor.
	maxExpandedBytes = 64 << 20
)

// ErrLegacyFormat is wrapped by the error for a checkpoint in the legacy
// (pre-PyTorch 1.6) non-zip format, which this package does not read.
var ErrLegacyFormat = errors.New("legacy (non-zip) PyTorch format is not supported; re-save it with a recent torch.save or convert it to safetensors")

// FormatError reports a malformed or refused checkpoint.
type FormatError struct {
	File   string // path, or "" for in-memory data
	Tensor string // tensor name, if the problem is with one tensor
	Err    error
}

func (e *FormatError) Error() string {
	s := "ckpt"
	if e.File != "" {
		s += " " + e.File
	}
	if e.Tensor != "" {
		s += ": tensor " + e.Tensor
	}
	return s + ": " + e.Err.Error()
}

func (e *FormatError) Unwrap() error { return e.Err }

// File is an open checkpoint. Names, Info and Data are safe for concurrent
// use.
type File struct {
	path    string
	r       io.ReaderAt
	closer  io.Closer
	tensors map[string]*entry
	names   []string
	swap    bool // storages are big-endian
}

// entry is one validated tensor.
type entry struct {
	dtype  tensor.DType
	shape  []int
	stride []int64 // elements
	zf     *zip.File
	start  int64 // offset of a stored entry's data in the file, -1 if compressed
	lo, hi int64 // byte range of the storage the view reaches
	nbytes int64 // bytes of the contiguous result
}

// Open opens, unpickles and validates the checkpoint at path.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, &FormatError{File: path, Err: err}
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, &FormatError{File: path, Err: err}
	}
	f, err := newFile(path, fh, st.Size())
	if err != nil {
		fh.Close()
		return nil, err
	}
	f.closer = fh
	return f, nil
}

// Parse reads a checkpoint held in memory. The File refers to buf, which
// must not change while the File is used.
func Parse(buf []byte) (*File, error) {
	return newFile("", bytes.NewReader(buf), int64(len(buf)))
}

// Close releases the file.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	err := f.closer.Close()
	f.closer = nil
	return err
}

// Path is the checkpoint's path ("" for in-memory data).
func (f *File) Path() string { return f.path }

// Names lists the tensor names in sorted order.
func (f *File) Names() []string { return append([]string(nil), f.names...) }

// Info describes the named tensor.
func (f *File) Info(name string) (dtype tensor.DType, shape []int, ok bool) {
	e, ok := f.tensors[name]
	if !ok {
		return "", nil, false
	}
	return e.dtype, slices.Clone(e.shape), true
}

// Data returns the named tensor's elements as contiguous row-major
// little-endian bytes, copied out of its storage.
func (f *File) Data(name string) ([]byte, error) {
	e, ok := f.tensors[name]
	if !ok {
		return nil, &FormatError{File: f.path, Tensor: name, Err: errors.New("no such tensor")}
	}
	if e.nbytes == 0 {
		return []byte{}, nil
	}
	raw, err := f.readRange(e)
	if err != nil {
		return nil, &FormatError{File: f.path, Tensor: name, Err: fmt.Errorf("read storage %s: %w", e.zf.Name, err)}
	}
	out := raw
	if int64(len(raw)) != e.nbytes || !contiguous(e.shape, e.stride) {
		out = gather(raw, e.shape, e.stride, e.dtype.Size(), e.nbytes)
	}
	if f.swap {
		swapBytes(out, e.dtype.Size())
	}
	return out, nil
}

// readRange reads the bytes [e.lo, e.hi) of the tensor's storage.
func (f *File) readRange(e *entry) ([]byte, error) {
	buf := make([]byte, e.hi-e.lo)
	if e.start >= 0 {
		n, err := f.r.ReadAt(buf, e.start+e.lo)
		if n == len(buf) {
			return buf, nil
		}
		return nil, err
	}
	rc, err := e.zf.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if _, err := io.CopyN(io.Discard, rc, e.lo); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(rc, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// contiguous reports whether a view with these strides is row-major
// contiguous (dimensions of size 1 may have any stride).
func contiguous(shape []int, stride []int64) bool {
	want := int64(1)
	for d := len(shape) - 1; d >= 0; d-- {
		if shape[d] != 1 && stride[d] != want {
			return false
		}
		want *= int64(shape[d])
	}
	return true
}

// gather copies a strided view out of raw, which starts at the view's first
// element, into a new contiguous buffer of n bytes.
func gather(raw []byte, shape []int, stride []int64, esize int, n int64) []byte {
	out := make([]byte, n)
	nd := len(shape)
	if nd == 0 {
		copy(out, raw[:esize])
		return out
	}
	// Copy runs along the last dimension when it is contiguous.
	run, runStride := 1, stride[nd-1]
	if stride[nd-1] == 1 {
		run, runStride = shape[nd-1], 0
	}
	idx := make([]int, nd-1)
	var pos int64 // element offset into raw
	for o := 0; o < len(out); {
		if run > 1 {
			o += copy(out[o:], raw[pos*int64(esize):(pos+int64(run))*int64(esize)])
		} else {
			p := pos
			for k := 0; k < shape[nd-1]; k++ {
				o += copy(out[o:], raw[p*int64(esize):(p+1)*int64(esize)])
				p += runStride
			}
		}
		// Advance the outer dimensions like an odometer.
		for d := nd - 2; d >= 0; d-- {
			idx[d]++
			pos += stride[d]
			if idx[d] < shape[d] {
				break
			}
			pos -= stride[d] * int64(shape[d])
			idx[d] = 0
		}
	}
	return out
}

func swapBytes(b []byte, size int) {
	if size <= 1 {
		return
	}
	for i := 0; i+size <= len(b); i += size {
		for j, k := i, i+size-1; j < k; j, k = j+1, k-1 {
			b[j], b[k] = b[k], b[j]
		}
	}
}

// legacyMagic is the first pickle of the legacy format: PROTO 2, LONG1 of
// torch's magic number 0x1950a86a20f9469cfc6c.
var legacyMagic = []byte{0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19}

func newFile(path string, r io.ReaderAt, size int64) (*File, error) {
	fail := func(tensorName string, err error) error {
		return &FormatError{File: path, Tensor: tensorName, Err: err}
	}
	head := make([]byte, 512)
	n, err := r.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return nil, fail("", err)
	}
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, legacyMagic):
		return nil, fail("", ErrLegacyFormat)
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return nil, fail("", fmt.Errorf("tar archive: %w", ErrLegacyFormat))
	case !bytes.HasPrefix(head, []byte("PK\x03\x04")) && !bytes.HasPrefix(head, []byte("PK\x05\x06")):
		return nil, fail("", errors.New("not a PyTorch checkpoint (no zip signature)"))
	}
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) { // names are never used as paths here
		return nil, fail("", fmt.Errorf("zip: %w (truncated or corrupt file?)", err))
	}
	if len(zr.File) == 0 {
		return nil, fail("", errors.New("empty zip archive"))
	}
	prefix, _, ok := strings.Cut(zr.File[0].Name, "/")
	if !ok {
		return nil, fail("", fmt.Errorf("first zip entry %q is not inside an archive folder", zr.File[0].Name))
	}
	entries := make(map[string]*zip.File, len(zr.File))
	for _, zf := range zr.File {
		entries[zf.Name] = zf
	}

	f := &File{path: path, r: r, tensors: map[string]*entry{}}
	if bo, ok := entries[prefix+"/byteorder"]; ok {
		b, err := readEntry(bo, 16)
		if err != nil {
			return nil, fail("", fmt.Errorf("byteorder: %w", err))
		}
		switch strings.TrimSpace(string(b)) {
		case "little":
		case "big":
			f.swap = true
		default:
			return nil, fail("", fmt.Errorf("unknown byteorder %q", b))
		}
	}
	pkl, ok := entries[prefix+"/data.pkl"]
	if !ok {
		return nil, fail("", fmt.Errorf("no %s/data.pkl in the archive", prefix))
	}
	data, err := readEntry(pkl, maxPickleSize)
	if err != nil {
		return nil, fail("", fmt.Errorf("%s: %w", pkl.Name, err))
	}
	u := &unpickler{persistentLoad: persistentStorage, call: callGlobal}
	root, err := u.unpickle(data)
	if err != nil {
		return nil, fail("", fmt.Errorf("%s: %w", pkl.Name, err))
	}
	refs, err := flatten(root)
	if err != nil {
		return nil, fail("", err)
	}
	for name, t := range refs {
		e, err := validate(t, entries, prefix, size)
		if err != nil {
			return nil, fail(name, err)
		}
		f.tensors[name] = e
		f.names = append(f.names, name)
	}
	sort.Strings(f.names)
	return f, nil
}

// readEntry reads a whole zip entry of at most limit bytes.
func readEntry(zf *zip.File, limit int64) ([]byte, error) {
	if zf.UncompressedSize64 > uint64(limit) {
		return nil, fmt.Errorf("%d bytes, more than the %d-byte limit", zf.UncompressedSize64, limit)
	}
	rc, err := zf.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("more than the %d-byte limit", limit)
	}
	return b, nil
}

// flatten collects the tensors of the unpickled object by dotted name.
func flatten(root any) (map[string]*tensorRef, error) {
	d, ok := root.(*dict)
	if !ok {
		return nil, fmt.Errorf("top-level object is %s, not a dict of tensors", typeName(root))
	}
	if sd, ok := d.get("state_dict"); ok {
		if sdd, ok := sd.(*dict); ok {
			d = sdd
		}
	}
	out := map[string]*tensorRef{}
	seen := map[*dict]string{}
	var walk func(prefix string, d *dict, depth int) error
	walk = func(prefix string, d *dict, depth int) error {
		if depth > maxDepth {
			return fmt.Errorf("dicts nested deeper than %d at %q", maxDepth, prefix)
		}
		if other, ok := seen[d]; ok {
			return fmt.Errorf("the same dict appears as %q and %q", other, prefix)
		}
		seen[d] = prefix
		for i, k := range d.keys {
			var key string
			switch k := k.(type) {
			case string:
				key = k
			case int64:
				key = strconv.FormatInt(k, 10)
			default:
				continue // e.g. a class used as a key by training callbacks
			}
			name := key
			if prefix != "" {
				name = prefix + "." + key
			}
			switch v := d.vals[i].(type) {
			case *tensorRef:
				if _, dup := out[name]; dup { // e.g. "a.b" and {"a": {"b": ...}}
					return fmt.Errorf("tensor name %q occurs twice", name)
				}
				out[name] = v
			case *dict:
				if err := walk(name, v, depth+1); err != nil {
					return err
				}
			case *object:
				if strings.HasPrefix(v.class.module, "torch._utils") || strings.HasPrefix(v.class.module, "torch._tensor") {
					return fmt.Errorf("tensor %s: unsupported tensor kind %s", name, v.class)
				}
			}
		}
		return nil
	}
	if err := walk("", d, 0); err != nil {
		return nil, err
	}
	return out, nil
}

// validate checks a tensor's dtype, shape, strides and storage bounds.
func validate(t *tensorRef, entries map[string]*zip.File, prefix string, fileSize int64) (*entry, error) {
	st := t.storage
	if st.dtype == "" {
		return nil, fmt.Errorf("storage type %s is not supported", st.typeName)
	}
	esize := int64(st.dtype.Size())
	if len(t.shape) > maxDims {
		return nil, fmt.Errorf("%d dimensions, more than %d", len(t.shape), maxDims)
	}
	if t.offset < 0 {
		return nil, fmt.Errorf("negative storage offset %d", t.offset)
	}
	shape := make([]int, len(t.shape))
	numel := int64(1)
	for i, d := range t.shape {
		if d < 0 || t.stride[i] < 0 {
			return nil, fmt.Errorf("bad size %v or stride %v", t.shape, t.stride)
		}
		if d != 0 && numel > math.MaxInt64/esize/d {
			return nil, fmt.Errorf("size %v is too large", t.shape)
		}
		numel *= d
		shape[i] = int(d)
	}
	// extent: number of storage elements from the first element to the
	// last one the view reaches, inclusive.
	var extent int64
	if numel > 0 {
		extent = 1
		for i, d := range t.shape {
			s := t.stride[i]
			if s != 0 && d-1 > (math.MaxInt64-extent)/s {
				return nil, fmt.Errorf("size %v with stride %v is too large", t.shape, t.stride)
			}
			extent += (d - 1) * s
		}
	}
	if st.numel > math.MaxInt64/esize {
		return nil, fmt.Errorf("storage %s: element count %d is too large", st.key, st.numel)
	}
	if t.offset > st.numel || extent > st.numel-t.offset {
		return nil, fmt.Errorf("view at offset %d with size %v and stride %v reaches element %d of storage %s, which has %d elements",
			t.offset, t.shape, t.stride, t.offset+extent, st.key, st.numel)
	}
	sbytes := st.numel * esize
	if nb := numel * esize; nb > sbytes && nb > maxExpandedBytes {
		return nil, fmt.Errorf("expanded view of %d bytes over a storage of %d bytes (limit %d)", nb, sbytes, maxExpandedBytes)
	}
	zf, ok := entries[prefix+"/data/"+st.key]
	if !ok {
		return nil, fmt.Errorf("storage %s: no zip entry %s/data/%s", st.key, prefix, st.key)
	}
	if zf.UncompressedSize64 < uint64(sbytes) {
		return nil, fmt.Errorf("storage %s: zip entry has %d bytes, %s of %d elements needs %d",
			st.key, zf.UncompressedSize64, st.typeName, st.numel, sbytes)
	}
	start := int64(-1)
	if zf.Method == zip.Store {
		off, err := zf.DataOffset()
		if err != nil {
			return nil, fmt.Errorf("storage %s: %w", st.key, err)
		}
		if off < 0 || off > fileSize || int64(zf.UncompressedSize64) > fileSize-off {
			return nil, fmt.Errorf("storage %s: zip entry runs past the end of the file (truncated?)", st.key)
		}
		start = off
	} else if zf.Method != zip.Deflate {
		return nil, fmt.Errorf("storage %s: unsupported zip compression method %d", st.key, zf.Method)
	}
	return &entry{
		dtype:  st.dtype,
		shape:  shape,
		stride: append([]int64(nil), t.stride...),
		zf:     zf,
		start:  start,
		lo:     t.offset * esize,
		hi:     (t.offset + extent) * esize,
		nbytes: numel * esize,
	}, nil
}
