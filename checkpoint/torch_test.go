package checkpoint

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/pigment-sd/pigment/component"
	"github.com/pigment-sd/pigment/format/safetensors"
	"github.com/pigment-sd/pigment/internal/fixtures"
	"github.com/pigment-sd/pigment/tensor"
)

// writeTorch writes tensors as torch.save (zip format, pickle protocol 2)
// would: {"global_step": 470000, "state_dict": {name: tensor}} when
// lightning is set, else the bare {name: tensor} of a .bin file.
func writeTorch(t *testing.T, path string, tensors []safetensors.Tensor, lightning bool) {
	t.Helper()
	var p bytes.Buffer
	str := func(s string) {
		p.WriteByte('X') // BINUNICODE
		p.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(s))))
		p.WriteString(s)
	}
	integer := func(n int) {
		p.WriteByte('J') // BININT
		p.Write(binary.LittleEndian.AppendUint32(nil, uint32(int32(n))))
	}
	tuple := func(v []int) {
		p.WriteByte('(')
		for _, x := range v {
			integer(x)
		}
		p.WriteByte('t')
	}
	storage := map[tensor.DType]string{tensor.F32: "FloatStorage", tensor.F16: "HalfStorage", tensor.BF16: "BFloat16Storage", tensor.I64: "LongStorage"}

	p.Write([]byte{0x80, 2})
	if lightning {
		p.WriteByte('}')
		p.WriteByte('(')
		str("global_step")
		integer(470000)
		str("state_dict")
	}
	p.WriteByte('}')
	p.WriteByte('(')
	for k, ts := range tensors {
		str(ts.Name)
		p.WriteString("ctorch._utils\n_rebuild_tensor_v2\n")
		p.WriteByte('(')
		p.WriteByte('(')
		str("storage")
		fmt.Fprintf(&p, "ctorch\n%s\n", storage[ts.DType])
		str(fmt.Sprint(k))
		str("cpu")
		integer(tensor.NumElements(ts.Shape))
		p.WriteByte('t')
		p.WriteByte('Q') // BINPERSID
		integer(0)
		tuple(ts.Shape)
		stride := make([]int, len(ts.Shape))
		acc := 1
		for i := len(ts.Shape) - 1; i >= 0; i-- {
			stride[i] = acc
			acc *= ts.Shape[i]
		}
		tuple(stride)
		p.WriteByte(0x89) // NEWFALSE
		p.WriteString("ccollections\nOrderedDict\n")
		p.WriteByte(')')
		p.WriteByte('R')
		p.WriteByte('t')
		p.WriteByte('R')
	}
	p.WriteByte('u') // SETITEMS
	if lightning {
		p.WriteByte('u')
	}
	p.WriteByte('.')

	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	put := func(name string, data []byte) {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	put("archive/data.pkl", p.Bytes())
	put("archive/byteorder", []byte("little"))
	for k, ts := range tensors {
		put(fmt.Sprintf("archive/data/%d", k), ts.Data)
	}
	put("archive/version", []byte("3\n"))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func keep(n string) string { return n }

func TestSingleFileCkpt(t *testing.T) {
	dir := fixtureDir(t, "tiny-sd15")
	tensors := copyTensors(t, fixtures.Path(t, "tiny-sd15.safetensors"), keep)
	path := filepath.Join(t.TempDir(), "tiny-sd15.ckpt")
	writeTorch(t, path, tensors, true)

	m := open(t, path, Options{})
	folder := open(t, dir, Options{})
	for _, name := range component.Folders() {
		sameSources(t, string(name), m.Components[name].Weights, folder.Components[name].Weights)
	}
	if m.Family != FamilySD1 {
		t.Errorf("family %s", m.Family)
	}
}

// A diffusers folder with PyTorch .bin weights, as older Hub snapshots
// have them; the text encoder carries the position_ids buffer.
func TestDiffusersBin(t *testing.T) {
	src := fixtureDir(t, "tiny-sd15")
	dir := t.TempDir()
	files := map[string][2]string{
		string(component.TextEncoder): {"model.safetensors", "pytorch_model.bin"},
		string(component.UNet):        {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"},
		string(component.VAE):         {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"},
	}
	for comp, f := range files {
		tensors := copyTensors(t, filepath.Join(src, comp, f[0]), keep)
		if comp == string(component.TextEncoder) {
			ids := make([]int64, 77)
			for i := range ids {
				ids[i] = int64(i)
			}
			tensors = append(tensors, safetensors.I64("text_model.embeddings.position_ids", []int{1, 77}, ids))
		}
		writeTorch(t, filepath.Join(dir, comp, f[1]), tensors, false)
		cfg, _ := os.ReadFile(filepath.Join(src, comp, "config.json"))
		os.WriteFile(filepath.Join(dir, comp, "config.json"), cfg, 0o644)
	}
	m := open(t, dir, Options{})
	folder := open(t, src, Options{})
	for _, name := range component.Folders() {
		sameSources(t, string(name), m.Components[name].Weights, folder.Components[name].Weights)
	}
	// No model_index.json, scheduler or tokenizer: three notes.
	if len(m.Notes) != 3 {
		t.Errorf("notes %q", m.Notes)
	}
}
