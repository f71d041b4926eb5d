package safetensors

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pigment-sd/pigment/tensor"
)

func f16Data(v ...float32) []byte {
	b := make([]byte, 0, 2*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint16(b, tensor.Float32ToFloat16(x))
	}
	return b
}

func bf16Data(v ...float32) []byte {
	b := make([]byte, 0, 2*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint16(b, tensor.Float32ToBFloat16(x))
	}
	return b
}

func TestWriteRoundTrip(t *testing.T) {
	// Values exactly representable in every dtype they are stored in, so
	// the round trip is exact.
	streamed := f16Data(1, 2, 3, 4, 5, 6)
	tensors := []Tensor{
		F32("z.f32", []int{2, 3}, []float32{1, -2, 3.5, 0, 1e-3, 65536}),
		{Name: "a.f16", DType: tensor.F16, Shape: []int{4}, Data: f16Data(0.5, -1, 2, 65504)},
		{Name: "b.bf16", DType: tensor.BF16, Shape: []int{2, 1}, Data: bf16Data(1.5, -3)},
		I64("c.i64", []int{3}, []int64{49406, -1, 1 << 40}),
		{Name: "d.u8", DType: tensor.U8, Shape: []int{3}, Data: []byte{0, 128, 255}},
		F32("e.scalar", nil, []float32{7}),
		{Name: "f.empty", DType: tensor.F32, Shape: []int{0, 5}, Data: []byte{}},
		{Name: "g.streamed", DType: tensor.F16, Shape: []int{3, 2}, WriteData: func(w io.Writer) error {
			// Two writes, as a converter streaming rows would do.
			if _, err := w.Write(streamed[:4]); err != nil {
				return err
			}
			_, err := w.Write(streamed[4:])
			return err
		}},
	}
	meta := map[string]string{"format": "pt", "pigment.version": "1", "quote": `"\` + "\n"}
	path := filepath.Join(t.TempDir(), "out.safetensors")
	if err := WriteFile(path, tensors, meta); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Path() != path {
		t.Errorf("Path() = %q", f.Path())
	}
	var names []string
	for _, tt := range tensors {
		names = append(names, tt.Name)
	}
	slices.Sort(names)
	if !slices.Equal(f.Names(), names) {
		t.Fatalf("Names() = %v, want %v", f.Names(), names)
	}
	for _, tt := range tensors {
		info, ok := f.Info(tt.Name)
		if !ok {
			t.Fatalf("no %s", tt.Name)
		}
		wantShape := tt.Shape
		if wantShape == nil {
			wantShape = []int{}
		}
		if info.DType != tt.DType || !slices.Equal(info.Shape, wantShape) {
			t.Errorf("%s: %s %v, want %s %v", tt.Name, info.DType, info.Shape, tt.DType, wantShape)
		}
		want := tt.Data
		if tt.WriteData != nil {
			want = streamed
		}
		got, err := f.Data(tt.Name)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("Data(%s) = %v, %v; want %v", tt.Name, got, err, want)
		}
		if info.Begin%int64(tt.DType.Size()) != 0 {
			t.Errorf("%s starts at %d, not aligned to its element size", tt.Name, info.Begin)
		}
	}
	if got := f.Metadata(); len(got) != len(meta) || got["quote"] != meta["quote"] || got["format"] != "pt" {
		t.Errorf("Metadata() = %q, want %q", got, meta)
	}
	// Decoded values: fp16 and bf16 values chosen to be exact.
	for name, want := range map[string][]float32{
		"a.f16":  {0.5, -1, 2, 65504},
		"b.bf16": {1.5, -3},
		"z.f32":  {1, -2, 3.5, 0, 1e-3, 65536},
	} {
		got, _, err := f.Float32(name)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("Float32(%s) = %v, %v; want %v", name, got, err, want)
		}
	}
	if got, _, err := f.Int64("c.i64"); err != nil || !slices.Equal(got, []int64{49406, -1, 1 << 40}) {
		t.Errorf("Int64(c.i64) = %v, %v", got, err)
	}
	// The header is padded to 8 bytes so the data area is aligned.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := binary.LittleEndian.Uint64(raw); n%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", n)
	}
}

// Encode output parses back with Parse and is deterministic.
func TestEncodeDeterministic(t *testing.T) {
	ts := []Tensor{F32("b", []int{1}, []float32{1}), F32("a", []int{2}, []float32{2, 3})}
	var b1, b2 bytes.Buffer
	if err := Encode(&b1, ts, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	slices.Reverse(ts)
	if err := Encode(&b2, ts, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b1.Bytes(), b2.Bytes()) {
		t.Fatal("Encode depends on the order of its input")
	}
	f, err := Parse(b1.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _ := f.Float32("a"); !slices.Equal(got, []float32{2, 3}) {
		t.Errorf("a = %v", got)
	}
}

func TestEncodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tensors []Tensor
		want    string
	}{
		{"empty name", []Tensor{F32("", []int{1}, []float32{1})}, "invalid tensor name"},
		{"metadata name", []Tensor{F32("__metadata__", []int{1}, []float32{1})}, "invalid tensor name"},
		{"duplicate", []Tensor{F32("a", []int{1}, []float32{1}), F32("a", []int{1}, []float32{2})}, "duplicate tensor"},
		{"unknown dtype", []Tensor{{Name: "a", DType: "F8", Shape: []int{1}, Data: []byte{0}}}, "unknown dtype"},
		{"short data", []Tensor{{Name: "a", DType: tensor.F32, Shape: []int{2}, Data: make([]byte, 7)}}, "7 bytes for F32 [2] (want 8)"},
		{"negative dimension", []Tensor{{Name: "a", DType: tensor.U8, Shape: []int{-1, 0}, WriteData: func(io.Writer) error { return nil }}}, "bad shape"},
		{"WriteData short", []Tensor{{Name: "a", DType: tensor.F32, Shape: []int{2}, WriteData: func(w io.Writer) error {
			_, err := w.Write(make([]byte, 4))
			return err
		}}}, "wrote 4 bytes, want 8"},
		{"WriteData fails", []Tensor{{Name: "a", DType: tensor.F32, Shape: []int{2}, WriteData: func(io.Writer) error {
			return errors.New("source gone")
		}}}, "tensor a: source gone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "x.safetensors")
			// An older file at the path survives a failed write.
			if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			err := WriteFile(path, tc.tensors, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("WriteFile error = %v, want %q", err, tc.want)
			}
			if b, err := os.ReadFile(path); err != nil || string(b) != "old" {
				t.Fatalf("the old file was changed: %q, %v", b, err)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 {
				t.Fatalf("temporary files left behind: %v", entries)
			}
		})
	}
}

// A failing WriteData leaves no file at all when there was none.
func TestWriteFileFailureLeavesNoFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.safetensors")
	err := WriteFile(path, []Tensor{
		F32("a", []int{1}, []float32{1}),
		{Name: "b", DType: tensor.F32, Shape: []int{1 << 10}, WriteData: func(w io.Writer) error {
			if _, err := w.Write(make([]byte, 100)); err != nil {
				return err
			}
			return errors.New("disk on fire")
		}},
	}, nil)
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("file exists after a failed write: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
}

type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n < len(p) {
		n := w.n
		w.n = 0
		return n, errors.New("short write")
	}
	w.n -= len(p)
	return len(p), nil
}

// Encode reports the writer's errors wherever they happen.
func TestEncodeWriterErrors(t *testing.T) {
	ts := []Tensor{F32("a", []int{4}, []float32{1, 2, 3, 4}), {Name: "b", DType: tensor.U8, Shape: []int{4}, WriteData: func(w io.Writer) error {
		_, err := w.Write([]byte{1, 2, 3, 4})
		return err
	}}}
	var full bytes.Buffer
	if err := Encode(&full, ts, nil); err != nil {
		t.Fatal(err)
	}
	for n := 0; n < full.Len(); n++ {
		if err := Encode(&failWriter{n: n}, ts, nil); err == nil {
			t.Fatalf("Encode with a writer failing after %d bytes succeeded", n)
		}
	}
}

func FuzzParse(f *testing.F) {
	var buf bytes.Buffer
	if err := Encode(&buf, []Tensor{
		F32("w", []int{2, 2}, []float32{1, 2, 3, 4}),
		{Name: "h", DType: tensor.F16, Shape: []int{2}, Data: f16Data(1, 2)},
		I64("ids", []int{1}, []int64{49406}),
		{Name: "e", DType: tensor.BF16, Shape: []int{0}, Data: []byte{}},
	}, map[string]string{"format": "pt"}); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(file(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}`, make([]byte, 8)))
	f.Add(file(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)))
	f.Add(file(`{"__metadata__":{"a":"b"}}`, nil))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		sf, err := Parse(data)
		if err != nil {
			return
		}
		dataStart := len(data) - len(sf.data)
		type span struct{ b, e int64 }
		var spans []span
		for _, name := range sf.Names() {
			info, ok := sf.Info(name)
			if !ok {
				t.Fatalf("Info(%s) not ok", name)
			}
			b, err := sf.Data(name)
			if err != nil {
				t.Fatalf("Data(%s): %v", name, err)
			}
			if int64(len(b)) != info.End-info.Begin || len(b) != info.NumElements()*info.DType.Size() {
				t.Fatalf("Data(%s) has %d bytes for %s %v", name, len(b), info.DType, info.Shape)
			}
			if info.Begin < 0 || int64(dataStart)+info.End > int64(len(data)) {
				t.Fatalf("%s [%d,%d] outside the file", name, info.Begin, info.End)
			}
			if cap(b) != len(b) {
				t.Fatalf("Data(%s) exposes bytes past its end", name)
			}
			if len(b) > 0 {
				spans = append(spans, span{info.Begin, info.End})
			}
			// The typed readers never panic.
			sf.Float32(name)
			sf.Int64(name)
			sf.Float64(name)
		}
		slices.SortFunc(spans, func(x, y span) int { return cmp.Compare(x.b, y.b) })
		for i := 1; i < len(spans); i++ {
			if spans[i].b < spans[i-1].e {
				t.Fatalf("tensors overlap: %v", spans)
			}
		}
	})
}
