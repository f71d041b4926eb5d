package safetensors

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pigment-sd/pigment/tensor"
)

// file assembles a safetensors file from a header and a data area.
func file(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

func TestParseErrors(t *testing.T) {
	eight := make([]byte, 8)
	for _, tc := range []struct {
		name   string
		buf    []byte
		tensor string // the tensor the error names, if any
		want   string // substring of the error
	}{
		{"empty file", nil, "", "file too short (0 bytes)"},
		{"truncated length", []byte{1, 0, 0}, "", "file too short (3 bytes)"},
		{"header length past EOF", append(binary.LittleEndian.AppendUint64(nil, 100), `{"a":1}`...), "", "runs past the end of the file"},
		{"header length huge", binary.LittleEndian.AppendUint64(nil, 1<<63), "", "exceeds the"},
		{"header over limit", binary.LittleEndian.AppendUint64(nil, MaxHeaderSize+1), "", "exceeds the 104857600-byte limit"},
		{"empty header", file("", nil), "", "does not start with '{'"},
		{"header not an object", file(`[1,2]`, nil), "", "does not start with '{'"},
		{"bad JSON", file(`{"a":`, nil), "", "not valid JSON"},
		{"JSON of the wrong shape", file(`{"a":[1]}`, nil), "a", "bad header entry"},
		{"unknown dtype", file(`{"a":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}}`, eight), "a", `unknown dtype "F8"`},
		{"missing dtype", file(`{"a":{"shape":[1],"data_offsets":[0,1]}}`, eight), "a", `unknown dtype ""`},
		{"one offset", file(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0]}}`, eight), "a", "2 entries, has 1"},
		{"offsets past data", file(`{"a":{"dtype":"U8","shape":[9],"data_offsets":[0,9]}}`, eight), "a", "outside the 8-byte data area"},
		{"negative offset", file(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}}`, eight), "a", "outside"},
		{"end before begin", file(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[4,2]}}`, eight), "a", "outside"},
		{"overlap", file(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}`, eight), "b", "overlaps tensor a"},
		{"same range", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, eight), "", "overlaps"},
		{"empty inside another", file(`{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[0],"data_offsets":[3,3]}}`, eight), "b", "overlaps tensor a"},
		{"size mismatch", file(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, eight), "a", "F32 [3] needs 12 bytes, data_offsets give 8"},
		{"size mismatch F16", file(`{"a":{"dtype":"F16","shape":[2,3],"data_offsets":[0,8]}}`, eight), "a", "needs 12 bytes"},
		{"negative dimension", file(`{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}}`, eight), "a", "bad dimension -1"},
		{"huge dimension", file(`{"a":{"dtype":"U8","shape":[4294967296],"data_offsets":[0,8]}}`, eight), "a", "bad dimension"},
		{"shape overflow", file(`{"a":{"dtype":"F64","shape":[2147483647,2147483647,2147483647],"data_offsets":[0,8]}}`, eight), "a", "too large"},
		{"metadata not strings", file(`{"__metadata__":{"a":1}}`, nil), "", "__metadata__ is not a map of strings"},
		{"metadata a list", file(`{"__metadata__":["a"]}`, nil), "", "__metadata__ is not a map of strings"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse(tc.buf)
			if err == nil {
				t.Fatalf("Parse succeeded with %v, want error containing %q", f.Names(), tc.want)
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T %v is not a *FormatError", err, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to contain %q", err, tc.want)
			}
			if tc.tensor != "" && fe.Tensor != tc.tensor {
				t.Fatalf("error names tensor %q, want %q", fe.Tensor, tc.tensor)
			}
		})
	}
}

// Open reports errors with the file's path.
func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.safetensors")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.safetensors")
	good := file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 8))
	if err := os.WriteFile(truncated, good[:len(good)-1], 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{empty, "file too short"},
		{truncated, "tensor a: data_offsets [0,8] outside the 7-byte data area: truncated file?"},
		{filepath.Join(dir, "missing.safetensors"), "no such file"},
		{dir, "not a regular file"},
	} {
		_, err := Open(tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("Open(%s) = %v, want an error naming the file and containing %q", tc.path, err, tc.want)
		}
	}
}

func TestParseValid(t *testing.T) {
	data := make([]byte, 12)
	for i := range data {
		data[i] = byte(i)
	}
	for _, tc := range []struct {
		name   string
		buf    []byte
		names  []string
		meta   map[string]string
		ranges map[string][2]int64
	}{
		{"no tensors", file(`{}`, nil), nil, map[string]string{}, nil},
		{"metadata null", file(`{"__metadata__":null}`, nil), nil, map[string]string{}, nil},
		{"metadata and padding", file(`{"__metadata__":{"format":"pt"}}   `, nil), nil, map[string]string{"format": "pt"}, nil},
		{"scalar and vector", file(`{"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"v":{"dtype":"I16","shape":[4],"data_offsets":[4,12]}}`, data),
			[]string{"s", "v"}, map[string]string{}, map[string][2]int64{"s": {0, 4}, "v": {4, 12}}},
		{"unordered offsets", file(`{"b":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}`, data),
			[]string{"a", "b"}, map[string]string{}, map[string][2]int64{"a": {2, 4}, "b": {0, 2}}},
		// An empty tensor may sit where the next tensor starts, as writers
		// that lay tensors out by name produce.
		{"empty tensor before another", file(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"c":{"dtype":"F32","shape":[0,3],"data_offsets":[4,4]}}`, data),
			[]string{"a", "b", "c"}, map[string]string{}, map[string][2]int64{"a": {0, 0}, "b": {0, 4}, "c": {4, 4}}},
		{"two empty tensors", file(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"BF16","shape":[0],"data_offsets":[0,0]}}`, data),
			[]string{"a", "b"}, map[string]string{}, map[string][2]int64{"a": {0, 0}, "b": {0, 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse(tc.buf)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if !slices.Equal(f.Names(), tc.names) {
				t.Errorf("Names() = %v, want %v", f.Names(), tc.names)
			}
			if len(f.Metadata()) != len(tc.meta) {
				t.Errorf("Metadata() = %v, want %v", f.Metadata(), tc.meta)
			}
			for k, v := range tc.meta {
				if f.Metadata()[k] != v {
					t.Errorf("Metadata()[%s] = %q, want %q", k, f.Metadata()[k], v)
				}
			}
			for name, r := range tc.ranges {
				b, err := f.Data(name)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(b, data[r[0]:r[1]]) {
					t.Errorf("Data(%s) = %v, want %v", name, b, data[r[0]:r[1]])
				}
			}
			if _, err := f.Data("missing"); err == nil {
				t.Error("Data(missing) succeeded")
			}
			if _, ok := f.Info("missing"); ok {
				t.Error("Info(missing) ok")
			}
		})
	}
}

// The typed readers decode every dtype they accept and refuse the others.
func TestReaders(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.safetensors")
	i16 := []byte{0xfe, 0xff, 0x02, 0x00}
	i32 := binary.LittleEndian.AppendUint32(nil, 0xfffffff9)
	f64 := binary.LittleEndian.AppendUint64(nil, 0x3ff8000000000000) // 1.5
	err := WriteFile(path, []Tensor{
		{Name: "i16", DType: tensor.I16, Shape: []int{2}, Data: i16},
		{Name: "i32", DType: tensor.I32, Shape: []int{1}, Data: i32},
		{Name: "i8", DType: tensor.I8, Shape: []int{2}, Data: []byte{0xff, 3}},
		{Name: "bool", DType: tensor.Bool, Shape: []int{2}, Data: []byte{1, 0}},
		{Name: "f64", DType: tensor.F64, Shape: []int{1}, Data: f64},
		F32("f32", []int{2}, []float32{0.5, -2}),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for name, want := range map[string][]int64{"i16": {-2, 2}, "i32": {-7}, "i8": {-1, 3}, "bool": {1, 0}} {
		got, _, err := f.Int64(name)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("Int64(%s) = %v, %v; want %v", name, got, err, want)
		}
		gotF, _, err := f.Float64(name)
		if err != nil || len(gotF) != len(want) || gotF[0] != float64(want[0]) {
			t.Errorf("Float64(%s) = %v, %v; want %v", name, gotF, err, want)
		}
	}
	if v, _, err := f.Float64("f64"); err != nil || v[0] != 1.5 {
		t.Errorf("Float64(f64) = %v, %v", v, err)
	}
	if v, _, err := f.Float32("f64"); err != nil || v[0] != 1.5 {
		t.Errorf("Float32(f64) = %v, %v", v, err)
	}
	if v, _, err := f.Float64("f32"); err != nil || !slices.Equal(v, []float64{0.5, -2}) {
		t.Errorf("Float64(f32) = %v, %v", v, err)
	}
	if _, _, err := f.Int64("f32"); err == nil {
		t.Error("Int64 of a float tensor succeeded")
	}
	if _, _, err := f.Float32("i16"); err == nil {
		t.Error("Float32 of an integer tensor succeeded")
	}
	for _, read := range []func(string) error{
		func(n string) error { _, _, err := f.Float32(n); return err },
		func(n string) error { _, _, err := f.Float64(n); return err },
		func(n string) error { _, _, err := f.Int64(n); return err },
	} {
		if err := read("missing"); err == nil {
			t.Error("reading a missing tensor succeeded")
		}
	}
}
