package ckpt

import (
	"archive/zip"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pigment-sd/pigment/tensor"
)

// want is one expected tensor.
type want struct {
	dtype tensor.DType
	shape []int
	data  []byte
}

// sdLike builds what a Stable Diffusion training checkpoint looks like:
// tensors under "state_dict", training metadata around it (a Lightning
// callback keyed by its class, a numpy scalar, optimizer states, an
// argparse namespace), shared storages with views, a transposed view, a
// scalar, a parameter, an expanded view and an empty tensor.
func sdLike() (root any, storages map[string][]byte, wants map[string]want) {
	storages = map[string][]byte{
		"0": f32Bytes(iota32(12)...),
		"1": f16Bytes(0.5, -1, 2, 65504),
		"2": bf16Bytes(1.5, -3),
		"3": i64Bytes(1, -2, 1<<40),
		"4": {1, 0},
		"5": i32Bytes(7, -8),
		"6": f32Bytes(9, 8, 7),
		"7": {0xff, 0x01},
		"8": f32Bytes(42), // referenced only outside the state dict
	}
	t := func(st, key string, numel, off int64, shape, stride []int64) pTensor {
		return pTensor{storage: st, key: key, numel: numel, offset: off, shape: shape, stride: stride}
	}
	param := t("FloatStorage", "6", 3, 0, []int64{3}, []int64{1})
	param.param = true
	sd := pOrdered{
		{"model.diffusion_model.w", t("FloatStorage", "0", 12, 0, []int64{3, 4}, []int64{4, 1})},
		{"model.diffusion_model.view", t("FloatStorage", "0", 12, 5, []int64{2, 2}, []int64{4, 1})},
		{"model.diffusion_model.wT", t("FloatStorage", "0", 12, 0, []int64{4, 3}, []int64{1, 4})},
		{"model.diffusion_model.scalar", t("FloatStorage", "0", 12, 7, []int64{}, []int64{})},
		{"model.diffusion_model.col", t("FloatStorage", "0", 12, 1, []int64{3, 1}, []int64{4, 1})},
		{"model.diffusion_model.strided", t("FloatStorage", "0", 12, 1, []int64{2, 2}, []int64{8, 2})},
		{"model.diffusion_model.empty", t("FloatStorage", "0", 12, 0, []int64{0, 4}, []int64{4, 1})},
		{"first_stage_model.half", t("HalfStorage", "1", 4, 0, []int64{4}, []int64{1})},
		{"first_stage_model.bf", t("BFloat16Storage", "2", 2, 0, []int64{2}, []int64{1})},
		{"cond_stage_model.ids", t("LongStorage", "3", 3, 0, []int64{1, 3}, []int64{3, 1})},
		{"cond_stage_model.mask", t("BoolStorage", "4", 2, 0, []int64{2}, []int64{1})},
		{"i32", t("IntStorage", "5", 2, 0, []int64{2}, []int64{1})},
		{"param", param},
		{"expanded", t("FloatStorage", "6", 3, 0, []int64{2, 3}, []int64{0, 1})},
		{"i8", t("CharStorage", "7", 2, 0, []int64{2}, []int64{1})},
	}
	npScalar := pCall{mod: "numpy.core.multiarray", name: "scalar", args: pTuple{
		pCall{mod: "numpy", name: "dtype", args: pTuple{"f8", false, true}, state: pTuple{3, "<", nil, nil, nil, -1, -1, 0}},
		[]byte{0, 0, 0, 0, 0, 0, 0xf0, 0x3f},
	}}
	root = pDict{
		{"epoch", 3},
		{"global_step", 470000},
		{"pytorch-lightning_version", "1.4.2"},
		{"state_dict", sd},
		{"callbacks", pDict{{pGlobal{"pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint"}, pDict{
			{"monitor", nil},
			{"best_model_score", t("FloatStorage", "8", 1, 0, []int64{}, []int64{})},
			{"current_score", npScalar},
		}}}},
		{"optimizer_states", []any{pDict{{"state", pDict{}}, {"param_groups", []any{pDict{{"lr", 1e-4}}}}}}},
		{"lr_schedulers", []any{}},
		{"hparams", pCall{mod: "argparse", name: "Namespace", args: pTuple{}, state: pDict{{"lr", 1e-4}}}},
	}
	wants = map[string]want{
		"model.diffusion_model.w":       {tensor.F32, []int{3, 4}, f32Bytes(iota32(12)...)},
		"model.diffusion_model.view":    {tensor.F32, []int{2, 2}, f32Bytes(5, 6, 9, 10)},
		"model.diffusion_model.wT":      {tensor.F32, []int{4, 3}, f32Bytes(0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11)},
		"model.diffusion_model.scalar":  {tensor.F32, []int{}, f32Bytes(7)},
		"model.diffusion_model.col":     {tensor.F32, []int{3, 1}, f32Bytes(1, 5, 9)},
		"model.diffusion_model.strided": {tensor.F32, []int{2, 2}, f32Bytes(1, 3, 9, 11)},
		"model.diffusion_model.empty":   {tensor.F32, []int{0, 4}, []byte{}},
		"first_stage_model.half":        {tensor.F16, []int{4}, f16Bytes(0.5, -1, 2, 65504)},
		"first_stage_model.bf":          {tensor.BF16, []int{2}, bf16Bytes(1.5, -3)},
		"cond_stage_model.ids":          {tensor.I64, []int{1, 3}, i64Bytes(1, -2, 1<<40)},
		"cond_stage_model.mask":         {tensor.Bool, []int{2}, []byte{1, 0}},
		"i32":                           {tensor.I32, []int{2}, i32Bytes(7, -8)},
		"param":                         {tensor.F32, []int{3}, f32Bytes(9, 8, 7)},
		"expanded":                      {tensor.F32, []int{2, 3}, f32Bytes(9, 8, 7, 9, 8, 7)},
		"i8":                            {tensor.I8, []int{2}, []byte{0xff, 0x01}},
	}
	return root, storages, wants
}

func checkTensors(t *testing.T, f *File, wants map[string]want) {
	t.Helper()
	var names []string
	for n := range wants {
		names = append(names, n)
	}
	slices.Sort(names)
	if got := f.Names(); !slices.Equal(got, names) {
		t.Fatalf("Names() = %q\nwant %q", got, names)
	}
	for name, w := range wants {
		dt, shape, ok := f.Info(name)
		if !ok || dt != w.dtype || !slices.Equal(shape, w.shape) {
			t.Errorf("Info(%s) = %s %v %v, want %s %v", name, dt, shape, ok, w.dtype, w.shape)
		}
		data, err := f.Data(name)
		if err != nil {
			t.Errorf("Data(%s): %v", name, err)
			continue
		}
		if !bytes.Equal(data, w.data) {
			t.Errorf("Data(%s) = % x\nwant % x", name, data, w.data)
		}
	}
	if _, _, ok := f.Info("missing"); ok {
		t.Error("Info(missing) ok")
	}
	if _, err := f.Data("missing"); err == nil {
		t.Error("Data(missing) succeeded")
	}
}

func TestOpen(t *testing.T) {
	root, storages, wants := sdLike()
	for _, tc := range []struct {
		name    string
		proto   int
		prefix  string
		deflate bool
	}{
		{"proto2", 2, "archive", false},
		{"proto4-frames", 4, "archive", false},
		{"deflated", 2, "archive", true},
		{"named-archive", 2, "v1-5-pruned-emaonly", false},
		{"proto5", 5, "x", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := archive{prefix: tc.prefix, pickle: encodePickle(tc.proto, root), storages: storages, deflate: tc.deflate, byteorder: "little"}
			path := filepath.Join(t.TempDir(), "model.ckpt")
			if err := os.WriteFile(path, a.bytes(t), 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			if f.Path() != path {
				t.Errorf("Path() = %q", f.Path())
			}
			checkTensors(t, f, wants)
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
		})
	}
}

// A plain state dict at the top level, with nested dicts flattened by ".",
// integer keys, and a top-level "state_dict" that is not a dict (so not
// unwrapped).
func TestOpenPlainStateDict(t *testing.T) {
	tt := func(key string, off int64) pTensor {
		return pTensor{storage: "FloatStorage", key: key, numel: 4, offset: off, shape: []int64{2}, stride: []int64{1}}
	}
	root := pOrdered{
		{"unet", pDict{{"conv", pDict{{"weight", tt("0", 0)}, {"bias", tt("0", 2)}}}}},
		{"layers", pDict{{0, tt("1", 0)}}},
		{"state_dict", "not a dict"},
		{"note", []any{tt("1", 2)}}, // tensors in lists are not exposed
	}
	st := map[string][]byte{"0": f32Bytes(1, 2, 3, 4), "1": f32Bytes(5, 6, 7, 8)}
	f, err := Parse(archive{pickle: encodePickle(2, root), storages: st}.bytes(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checkTensors(t, f, map[string]want{
		"unet.conv.weight": {tensor.F32, []int{2}, f32Bytes(1, 2)},
		"unet.conv.bias":   {tensor.F32, []int{2}, f32Bytes(3, 4)},
		"layers.0":         {tensor.F32, []int{2}, f32Bytes(5, 6)},
	})
}

// byteorder "big" (torch.save on a big-endian machine): Data still returns
// little-endian bytes.
func TestBigEndian(t *testing.T) {
	be := func(b []byte, size int) []byte {
		out := append([]byte(nil), b...)
		swapBytes(out, size)
		return out
	}
	root := pOrdered{
		{"f", pTensor{storage: "FloatStorage", key: "0", numel: 3, shape: []int64{3}, stride: []int64{1}}},
		{"h", pTensor{storage: "HalfStorage", key: "1", numel: 2, shape: []int64{2, 1}, stride: []int64{1, 1}}},
		{"l", pTensor{storage: "LongStorage", key: "2", numel: 2, offset: 1, shape: []int64{}, stride: []int64{}}},
	}
	st := map[string][]byte{
		"0": be(f32Bytes(1, -2, 3), 4),
		"1": be(f16Bytes(0.25, 8), 2),
		"2": be(i64Bytes(3, -4), 8),
	}
	f, err := Parse(archive{pickle: encodePickle(2, root), storages: st, byteorder: "big"}.bytes(t))
	if err != nil {
		t.Fatal(err)
	}
	checkTensors(t, f, map[string]want{
		"f": {tensor.F32, []int{3}, f32Bytes(1, -2, 3)},
		"h": {tensor.F16, []int{2, 1}, f16Bytes(0.25, 8)},
		"l": {tensor.I64, []int{}, i64Bytes(-4)},
	})
}

// TestOSSystem checks that a pickle calling os.system is refused and that
// nothing runs: the command would create a file.
func TestOSSystem(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "pwned")
	cmd := "touch " + marker
	for _, tc := range []struct {
		name   string
		pickle []byte
	}{
		{"GLOBAL+REDUCE", encodePickle(2, pCall{mod: "os", name: "system", args: pTuple{cmd}})},
		{"STACK_GLOBAL+REDUCE", encodePickle(4, pCall{mod: "os", name: "system", args: pTuple{cmd}})},
		{"posix", encodePickle(2, pCall{mod: "posix", name: "system", args: pTuple{cmd}})},
		{"inside state dict", encodePickle(2, pDict{{"state_dict", pOrdered{{"w", pCall{mod: "subprocess", name: "check_output", args: pTuple{[]any{"touch", marker}}}}}}})},
		{"INST", append([]byte("(V"+cmd+"\nios\nsystem\n"), '.')},
		{"eval", encodePickle(2, pCall{mod: "builtins", name: "eval", args: pTuple{"__import__('os').system('" + cmd + "')"}})},
		{"getattr", encodePickle(2, pCall{mod: "__builtin__", name: "getattr", args: pTuple{pGlobal{"__builtin__", "object"}, "__subclasses__"}})},
		{"__import__", encodePickle(4, pCall{mod: "builtins", name: "__import__", args: pTuple{"os"}})},
		{"exec", encodePickle(2, pCall{mod: "builtins", name: "exec", args: pTuple{"pass"}})},
		{"nt", encodePickle(2, pCall{mod: "nt", name: "system", args: pTuple{cmd}})},
		{"runpy", encodePickle(2, pCall{mod: "runpy", name: "_run_code", args: pTuple{"pass", pDict{}}})},
		{"torch.hub", encodePickle(2, pCall{mod: "torch.hub", name: "load", args: pTuple{"x", "y"}})},
		{"numpy.testing", encodePickle(2, pCall{mod: "numpy.testing._private.utils", name: "runstring", args: pTuple{"pass", pDict{}}})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(archive{pickle: tc.pickle}.bytes(t))
			if !errors.Is(err, ErrForbidden) {
				t.Fatalf("err = %v, want ErrForbidden", err)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("the command ran")
			}
		})
	}
}

func TestBadFiles(t *testing.T) {
	f32 := func(key string, numel, off int64, shape, stride []int64) pTensor {
		return pTensor{storage: "FloatStorage", key: key, numel: numel, offset: off, shape: shape, stride: stride}
	}
	good := f32("0", 4, 0, []int64{4}, []int64{1})
	st4 := map[string][]byte{"0": f32Bytes(1, 2, 3, 4)}
	sd := func(items ...pItem) []byte { return encodePickle(2, pDict{{"state_dict", pOrdered(items)}}) }
	deep := any(pDict{{"w", good}})
	for range 100 {
		deep = pDict{{"d", deep}}
	}

	for _, tc := range []struct {
		name string
		a    archive
		want string // substring of the error
	}{
		{"storage too small", archive{pickle: sd(pItem{"w", f32("0", 5, 0, []int64{5}, []int64{1})}), storages: st4}, "tensor w: storage 0: zip entry has 16 bytes"},
		{"view past storage", archive{pickle: sd(pItem{"w", f32("0", 4, 1, []int64{2, 2}, []int64{2, 1})}), storages: st4}, "tensor w: view at offset 1"},
		{"strided view past storage", archive{pickle: sd(pItem{"w", f32("0", 4, 0, []int64{2, 2}, []int64{3, 1})}), storages: st4}, "reaches element 5"},
		{"offset past storage", archive{pickle: sd(pItem{"w", f32("0", 4, 9, []int64{0}, []int64{1})}), storages: st4}, "view at offset 9"},
		{"negative offset", archive{pickle: sd(pItem{"w", f32("0", 4, -1, []int64{1}, []int64{1})}), storages: st4}, "negative storage offset"},
		{"negative stride", archive{pickle: sd(pItem{"w", f32("0", 4, 3, []int64{2}, []int64{-1})}), storages: st4}, "bad size"},
		{"negative size", archive{pickle: sd(pItem{"w", f32("0", 4, 0, []int64{-2}, []int64{1})}), storages: st4}, "bad size"},
		{"huge size", archive{pickle: sd(pItem{"w", f32("0", 4, 0, []int64{1 << 40, 1 << 40}, []int64{0, 0})}), storages: st4}, "too large"},
		{"huge stride", archive{pickle: sd(pItem{"w", f32("0", 4, 0, []int64{3}, []int64{1 << 62})}), storages: st4}, "too large"},
		{"huge storage", archive{pickle: sd(pItem{"w", f32("0", 1<<62, 0, []int64{1}, []int64{1})}), storages: st4}, "too large"},
		{"expanded too far", archive{pickle: sd(pItem{"w", f32("0", 4, 0, []int64{1 << 20, 1 << 10}, []int64{0, 0})}), storages: st4}, "expanded view"},
		{"missing storage", archive{pickle: sd(pItem{"w", f32("7", 4, 0, []int64{4}, []int64{1})}), storages: st4}, "no zip entry archive/data/7"},
		{"unsupported storage", archive{pickle: sd(pItem{"w", pTensor{storage: "ComplexFloatStorage", key: "0", numel: 2, shape: []int64{2}, stride: []int64{1}}}), storages: st4}, "torch.ComplexFloatStorage is not supported"},
		{"not a storage type", archive{pickle: sd(pItem{"w", pTensor{storage: "Tensor", key: "0", numel: 2, shape: []int64{2}, stride: []int64{1}}}), storages: st4}, "not a storage type"},
		{"unsupported tensor kind", archive{pickle: sd(pItem{"q", pCall{mod: "torch._utils", name: "_rebuild_qtensor", args: pTuple{}}})}, "unsupported tensor kind"},
		{"rank mismatch", archive{pickle: sd(pItem{"w", f32("0", 4, 0, []int64{4}, []int64{1, 1})}), storages: st4}, "size has 1 dimensions, stride 2"},
		{"duplicate names", archive{pickle: sd(pItem{"a.b", good}, pItem{"a", pDict{{"b", good}}}), storages: st4}, `"a.b" occurs twice`},
		{"deep nesting", archive{pickle: encodePickle(2, deep), storages: st4}, "nested deeper than 64"},
		{"shared dict", archive{pickle: []byte("\x80\x02}q\x00(X\x01\x00\x00\x00x}q\x01X\x01\x00\x00\x00yh\x01u.")}, "same dict appears"},
		{"dict contains itself", archive{pickle: []byte("\x80\x02}q\x00X\x01\x00\x00\x00xh\x00s.")}, "same dict appears"},
		{"top level list", archive{pickle: encodePickle(2, []any{good}), storages: st4}, "top-level object is list"},
		{"truncated pickle", archive{pickle: sd(pItem{"w", good})[:40], storages: st4}, "truncated"},
		{"bad persistent id", archive{pickle: []byte("\x80\x02K\x01Q.")}, "persistent id is int"},
		{"bad byteorder", archive{pickle: sd(), byteorder: "middle"}, "unknown byteorder"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf := tc.a.bytes(t)
			path := filepath.Join(t.TempDir(), "bad.ckpt")
			if err := os.WriteFile(path, buf, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := Open(path)
			if err == nil {
				f.Close()
				t.Fatalf("Open succeeded, want error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q does not name the file and contain %q", err, tc.want)
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T is not a *FormatError", err)
			}
		})
	}
}

// rezip copies a zip, renaming entries.
func rezip(t *testing.T, buf []byte, rename func(string) string) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(buf), int64(len(buf)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for _, zf := range zr.File {
		b, err := readEntry(zf, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		w, err := zw.Create(rename(zf.Name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestNotAZipCheckpoint(t *testing.T) {
	root, storages, _ := sdLike()
	good := archive{pickle: encodePickle(2, root), storages: storages}.bytes(t)
	legacy := append(append([]byte(nil), legacyMagic...), ".\x80\x02M\xe9\x03."...)
	tarHead := make([]byte, 1024)
	copy(tarHead[257:], "ustar")
	for _, tc := range []struct {
		name string
		buf  []byte
		want string
		is   error
	}{
		{"empty", nil, "no zip signature", nil},
		{"text", []byte("hello"), "no zip signature", nil},
		{"legacy", legacy, "legacy", ErrLegacyFormat},
		{"tar", tarHead, "legacy", ErrLegacyFormat},
		{"zip header only", good[:30], "truncated or corrupt", nil},
		{"no data.pkl", rezip(t, good, func(n string) string { return strings.Replace(n, "data.pkl", "other.pkl", 1) }), "no archive/data.pkl", nil},
		{"no archive folder", rezip(t, good, func(n string) string { return strings.TrimPrefix(n, "archive/") }), "not inside an archive folder", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.buf)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want errors.Is %v", err, tc.is)
			}
		})
	}
}

// Every truncation of a valid checkpoint fails cleanly.
func TestTruncated(t *testing.T) {
	root, storages, _ := sdLike()
	for _, deflate := range []bool{false, true} {
		good := archive{pickle: encodePickle(2, root), storages: storages, deflate: deflate}.bytes(t)
		for n := 0; n < len(good); n += 3 {
			// The zip has no trailing comment, so every cut damages the
			// end-of-central-directory record or what it points to.
			if f, err := Parse(good[:n]); err == nil {
				f.Close()
				t.Fatalf("deflate=%v: %d of %d bytes parsed", deflate, n, len(good))
			}
		}
	}
}

// A storage entry shorter than its local header claims (a zip whose central
// directory lies about the size) fails in Data, not with a panic.
func TestDataReadError(t *testing.T) {
	root := pOrdered{{"w", pTensor{storage: "FloatStorage", key: "0", numel: 4, shape: []int64{4}, stride: []int64{1}}}}
	a := archive{pickle: encodePickle(2, root), storages: map[string][]byte{"0": f32Bytes(1, 2, 3, 4)}, deflate: true}
	buf := a.bytes(t)
	// Corrupt the deflated stream of the storage entry.
	i := bytes.Index(buf, []byte("archive/data/0"))
	if i < 0 {
		t.Fatal("entry not found")
	}
	start := i + len("archive/data/0")
	for k := start; k < start+4; k++ {
		buf[k] ^= 0xff
	}
	f, err := Parse(buf)
	if err != nil {
		return // the damage may already be caught by Open
	}
	if _, err := f.Data("w"); err == nil {
		t.Fatal("Data on a corrupt storage succeeded")
	}
}

// BenchmarkOpen opens a checkpoint shaped like SD 1.5's (about 1,100
// tensors, each on its own storage) without its bulk data.
func BenchmarkOpen(b *testing.B) {
	var sd pOrdered
	st := map[string][]byte{}
	for i := range 1100 {
		key := strconv.Itoa(i)
		sd = append(sd, pItem{"model.diffusion_model.layer" + key + ".weight", pTensor{storage: "HalfStorage", key: key, numel: 4, shape: []int64{2, 2}, stride: []int64{2, 1}}})
		st[key] = f16Bytes(1, 2, 3, 4)
	}
	buf := archive{pickle: encodePickle(2, pDict{{"state_dict", sd}, {"global_step", 470000}}), storages: st}.bytes(b)
	b.ReportAllocs()
	for b.Loop() {
		f, err := Parse(buf)
		if err != nil {
			b.Fatal(err)
		}
		if len(f.Names()) != 1100 {
			b.Fatal(len(f.Names()))
		}
	}
}
