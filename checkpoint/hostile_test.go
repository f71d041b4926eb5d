package checkpoint

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/pigment-sd/pigment/component"
	"github.com/pigment-sd/pigment/format/safetensors"
	"github.com/pigment-sd/pigment/internal/fixtures"
	"github.com/pigment-sd/pigment/tensor"
)

// link makes dst a symbolic link to src, creating dst's folder.
func link(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(src, dst); err != nil {
		t.Fatal(err)
	}
}

func writeText(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// truncated copies the first half of a file.
func truncated(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
}

// tinyShapes returns the names and shapes of tiny-sd15.safetensors.
func tinyShapes(t testing.TB) map[string][]int {
	t.Helper()
	f, err := safetensors.Open(fixtures.Path(t, "tiny-sd15.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := map[string][]int{}
	for _, n := range f.Names() {
		i, _ := f.Info(n)
		s[n] = i.Shape
	}
	return s
}

func TestOpenErrors(t *testing.T) {
	sd15 := fixtureDir(t, "tiny-sd15")
	sd21 := fixtureDir(t, "tiny-sd21")
	single := fixtures.Path(t, "tiny-sd15.safetensors")
	unetFile := filepath.Join(sd15, "unet", "diffusion_pytorch_model.safetensors")
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns the path to open
		opt   Options
		want  []string // substrings of the error
	}{
		{"missing path", func(t *testing.T, dir string) string { return filepath.Join(dir, "nope") }, Options{}, []string{"nope"}},
		{"empty folder", func(t *testing.T, dir string) string { return dir }, Options{}, []string{"not a diffusers model folder"}},
		{"component folder", func(t *testing.T, dir string) string { return filepath.Join(sd15, "unet") }, Options{}, []string{"one component's folder"}},
		{"unknown component", func(t *testing.T, dir string) string { return sd15 }, Options{Components: []component.Name{"safety_checker"}}, []string{"safety_checker"}},
		{"bad prediction type", func(t *testing.T, dir string) string { return single }, Options{PredictionType: "sample"}, []string{"sample"}},
		{"no model_index, missing component", func(t *testing.T, dir string) string {
			link(t, filepath.Join(sd15, "unet", "config.json"), filepath.Join(dir, "unet", "config.json"))
			link(t, unetFile, filepath.Join(dir, "unet", "diffusion_pytorch_model.safetensors"))
			return dir
		}, Options{}, []string{"load text_encoder", filepath.Join("text_encoder", "config.json")}},
		{"missing weights", func(t *testing.T, dir string) string {
			link(t, filepath.Join(sd15, "model_index.json"), filepath.Join(dir, "model_index.json"))
			link(t, filepath.Join(sd15, "unet", "config.json"), filepath.Join(dir, "unet", "config.json"))
			return dir
		}, Options{Components: []component.Name{component.UNet}}, []string{"load unet", "no weight file", "diffusion_pytorch_model.safetensors"}},
		{"bad config", func(t *testing.T, dir string) string {
			writeText(t, filepath.Join(dir, "unet", "config.json"), "{not json")
			link(t, unetFile, filepath.Join(dir, "unet", "diffusion_pytorch_model.safetensors"))
			return dir
		}, Options{Components: []component.Name{component.UNet}}, []string{filepath.Join("unet", "config.json"), "not a JSON object"}},
		{"truncated diffusers weights", func(t *testing.T, dir string) string {
			link(t, filepath.Join(sd15, "unet", "config.json"), filepath.Join(dir, "unet", "config.json"))
			truncated(t, unetFile, filepath.Join(dir, "unet", "diffusion_pytorch_model.safetensors"))
			return dir
		}, Options{Components: []component.Name{component.UNet}}, []string{filepath.Join("unet", "diffusion_pytorch_model.safetensors"), "truncated"}},
		{"sdxl folder", func(t *testing.T, dir string) string {
			writeText(t, filepath.Join(dir, "model_index.json"), `{"_class_name": "StableDiffusionXLPipeline"}`)
			return dir
		}, Options{}, []string{"SDXL"}},
		{"truncated single file", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "model.safetensors")
			truncated(t, single, p)
			return p
		}, Options{}, []string{"model.safetensors", "truncated"}},
		{"garbage torch file", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "model.ckpt")
			writeText(t, p, "PK\x03\x04 not really a zip")
			return p
		}, Options{}, []string{"model.ckpt"}},
		{"unknown layout", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "lora.safetensors")
			writeFile(t, p, []safetensors.Tensor{safetensors.F32("lora_unet_down.alpha", []int{1}, []float32{1})}, nil)
			return p
		}, Options{}, []string{"lora.safetensors", "not a Stable Diffusion checkpoint", "lora_unet_down.alpha"}},
		{"diffusers weight file", func(t *testing.T, dir string) string { return unetFile }, Options{}, []string{"diffusers component weight file"}},
		{"wrong shape in file", func(t *testing.T, dir string) string {
			const bad = "model.diffusion_model.output_blocks.3.1.transformer_blocks.0.attn2.to_k.weight"
			tensors := copyTensors(t, single, keep)
			for i := range tensors {
				if tensors[i].Name == bad {
					tensors[i].Shape = []int{16, 64}
				}
			}
			p := filepath.Join(dir, "bad.safetensors")
			writeFile(t, p, tensors, nil)
			return p
		}, Options{}, []string{"bad.safetensors", "output_blocks.3.1.transformer_blocks.0.attn2.to_k.weight",
			"up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight", "shape [16 64], want [32 32]"}},
		{"config dir disagrees", func(t *testing.T, dir string) string { return single }, Options{ConfigDir: sd21},
			[]string{filepath.Join("tiny-sd21", "text_encoder", "config.json"), "num_hidden_layers is 2", "give 3"}},
		{"override disagrees", func(t *testing.T, dir string) string { return single },
			Options{Components: []component.Name{component.UNet}, Config: map[component.Name]map[string]any{component.UNet: {"block_out_channels": []int{32, 32}}}},
			[]string{"block_out_channels is [32,32]", "give [32,64]"}},
		{"shard index lists a missing tensor", func(t *testing.T, dir string) string {
			link(t, filepath.Join(sd15, "unet", "config.json"), filepath.Join(dir, "unet", "config.json"))
			link(t, unetFile, filepath.Join(dir, "unet", "part1.safetensors"))
			writeText(t, filepath.Join(dir, "unet", "diffusion_pytorch_model.safetensors.index.json"),
				`{"weight_map": {"conv_in.weight": "part1.safetensors", "nope.weight": "part1.safetensors"}}`)
			return dir
		}, Options{Components: []component.Name{component.UNet}}, []string{"part1.safetensors", "nope.weight"}},
		{"shard index escapes the folder", func(t *testing.T, dir string) string {
			link(t, filepath.Join(sd15, "unet", "config.json"), filepath.Join(dir, "unet", "config.json"))
			writeText(t, filepath.Join(dir, "unet", "diffusion_pytorch_model.safetensors.index.json"),
				`{"weight_map": {"conv_in.weight": "../../secret.safetensors"}}`)
			return dir
		}, Options{Components: []component.Name{component.UNet}}, []string{"conv_in.weight", "not a file name"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.setup(t, t.TempDir())
			m, err := Open(path, tc.opt)
			if err == nil {
				m.Close()
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// Layout problems found from names and shapes alone.
func TestPlanErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(s map[string][]int)
		want []string
	}{
		{"missing tensor", func(s map[string][]int) { delete(s, "first_stage_model.decoder.mid.attn_1.q.bias") },
			[]string{"vae", "missing tensors decoder.mid_block.attentions.0.to_q.bias"}},
		{"extra unet tensor", func(s map[string][]int) { s["model.diffusion_model.input_blocks.1.0.lora.weight"] = []int{4} },
			[]string{"unet", "model.diffusion_model.input_blocks.1.0.lora.weight", "unrecognised"}},
		{"extra attention tensor", func(s map[string][]int) {
			s["model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.bias"] = []int{32}
		}, []string{"input_blocks.1.1.transformer_blocks.0.attn1.to_q.bias", "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.bias", "unexpected"}},
		{"conv where linear", func(s map[string][]int) {
			s["cond_stage_model.transformer.text_model.encoder.layers.1.mlp.fc1.weight"] = []int{37, 32, 1, 1}
		}, []string{"cond_stage_model.transformer.text_model.encoder.layers.1.mlp.fc1.weight", "shape [37 32 1 1], want [37 32]"}},
		{"rank-0 conv_in", func(s map[string][]int) { s["model.diffusion_model.input_blocks.0.0.weight"] = []int{} },
			[]string{"model.diffusion_model.input_blocks.0.0.weight", "want rank 4"}},
		{"missing downsampler", func(s map[string][]int) {
			delete(s, "model.diffusion_model.input_blocks.3.0.op.weight")
			delete(s, "model.diffusion_model.input_blocks.3.0.op.bias")
		}, []string{"unet", "input_blocks.* (-1)", "not numbered 0..n-1"}},
		{"gap in blocks", func(s map[string][]int) {
			for n := range s {
				if strings.HasPrefix(n, "first_stage_model.encoder.down.1.") {
					delete(s, n)
				}
			}
		}, []string{"vae"}},
		{"half attention level", func(s map[string][]int) {
			for n := range s {
				if strings.HasPrefix(n, "model.diffusion_model.input_blocks.2.1.") {
					delete(s, n)
				}
			}
		}, []string{"level 0 has attention in some blocks only"}},
		{"sdxl", func(s map[string][]int) {
			s["conditioner.embedders.0.transformer.text_model.final_layer_norm.weight"] = []int{768}
		},
			[]string{"SDXL"}},
		{"label_emb", func(s map[string][]int) { s["model.diffusion_model.label_emb.0.0.weight"] = []int{128, 32} },
			[]string{"label_emb"}},
		{"two text encoders", func(s map[string][]int) { s["cond_stage_model.model.token_embedding.weight"] = []int{10, 32} },
			[]string{"unknown text encoder layout"}},
		{"no vae", func(s map[string][]int) {
			for n := range s {
				if strings.HasPrefix(n, vaePrefix) {
					delete(s, n)
				}
			}
		}, []string{"no VAE", vaePrefix}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := tinyShapes(t)
			tc.edit(s)
			_, err := planSingleFile(s, component.Folders(), hints{})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// A sharded UNet (two files and an index) loads as the single file does.
func TestShardedWeights(t *testing.T) {
	sd15 := fixtureDir(t, "tiny-sd15")
	dir := t.TempDir()
	tensors := copyTensors(t, filepath.Join(sd15, "unet", "diffusion_pytorch_model.safetensors"), keep)
	half := len(tensors) / 2
	writeFile(t, filepath.Join(dir, "unet", "diffusion_pytorch_model-00001-of-00002.safetensors"), tensors[:half], nil)
	writeFile(t, filepath.Join(dir, "unet", "diffusion_pytorch_model-00002-of-00002.safetensors"), tensors[half:], nil)
	var b strings.Builder
	b.WriteString(`{"metadata": {"total_size": 1}, "weight_map": {`)
	for i, ts := range tensors {
		if i > 0 {
			b.WriteString(",")
		}
		shard := "1"
		if i >= half {
			shard = "2"
		}
		b.WriteString(strconv.Quote(ts.Name) + `: "diffusion_pytorch_model-0000` + shard + `-of-00002.safetensors"`)
	}
	b.WriteString("}}")
	writeText(t, filepath.Join(dir, "unet", "diffusion_pytorch_model.safetensors.index.json"), b.String())
	link(t, filepath.Join(sd15, "unet", "config.json"), filepath.Join(dir, "unet", "config.json"))

	m := open(t, dir, Options{Components: []component.Name{component.UNet}})
	folder := open(t, sd15, Options{Components: []component.Name{component.UNet}})
	sameSources(t, "unet", m.Components[component.UNet].Weights, folder.Components[component.UNet].Weights)
	if n := len(m.Components[component.UNet].Files); n != 2 {
		t.Errorf("%d files", n)
	}
}

// A folder holding only the fp16 variant opens it when no variant is
// asked for, with a note.
func TestVariantOnlyFolder(t *testing.T) {
	sd15 := fixtureDir(t, "tiny-sd15")
	dir := t.TempDir()
	link(t, filepath.Join(sd15, "unet", "config.json"), filepath.Join(dir, "unet", "config.json"))
	link(t, filepath.Join(sd15, "unet", "diffusion_pytorch_model.fp16.safetensors"), filepath.Join(dir, "unet", "diffusion_pytorch_model.fp16.safetensors"))
	m := open(t, dir, Options{Components: []component.Name{component.UNet}})
	w, _ := m.Components[component.UNet].Weights.Tensor("conv_in.weight")
	if w.DType() != tensor.F16 {
		t.Errorf("dtype %s", w.DType())
	}
	found := false
	for _, n := range m.Notes {
		found = found || strings.Contains(n, "no plain weights; using diffusion_pytorch_model.fp16.safetensors")
	}
	if !found {
		t.Errorf("notes %q", m.Notes)
	}
}

// parseShapes reads "name d0 d1 ..." lines.
func parseShapes(text string) map[string][]int {
	s := map[string][]int{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		var dims []int
		for _, d := range f[1:] {
			n, err := strconv.Atoi(d)
			if err != nil {
				break
			}
			dims = append(dims, n)
		}
		s[f[0]] = dims
	}
	return s
}

func FuzzPlanSingleFile(f *testing.F) {
	s := tinyShapes(f)
	names := make([]string, 0, len(s))
	for n := range s {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		b.WriteString(n)
		for _, d := range s[n] {
			b.WriteString(" " + strconv.Itoa(d))
		}
		b.WriteString("\n")
	}
	f.Add(b.String())
	f.Add("model.diffusion_model.input_blocks.0.0.weight 4 4 3 3\nmodel.diffusion_model.out.2.weight 4 4 3 3\n")
	f.Add("cond_stage_model.model.token_embedding.weight 10 8\ncond_stage_model.model.positional_embedding 7 8\ncond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight 24 8\n")
	f.Add("first_stage_model.encoder.down.0.block.0.conv1.weight 0 -1 3 3\n")
	f.Fuzz(func(t *testing.T, text string) {
		shapes := parseShapes(text)
		p, err := planSingleFile(shapes, component.Folders(), hints{name: "x-768.safetensors"})
		if err != nil {
			return
		}
		for _, c := range p.comps {
			for _, e := range c.entries {
				if _, ok := shapes[e.src]; !ok {
					t.Fatalf("entry %s names no tensor", e.src)
				}
			}
		}
	})
}

// Hub SD 1.x/2.x VAEs were saved by diffusers before v0.14, with
// query/key/value/proj_attn attention names; they load under v0.21 names.
func TestDeprecatedAttentionNames(t *testing.T) {
	sd15 := fixtureDir(t, "tiny-sd15")
	dir := t.TempDir()
	old := strings.NewReplacer(".to_q.", ".query.", ".to_k.", ".key.", ".to_v.", ".value.", ".to_out.0.", ".proj_attn.")
	renamed := 0
	tensors := copyTensors(t, filepath.Join(sd15, "vae", "diffusion_pytorch_model.safetensors"), func(n string) string {
		if strings.Contains(n, "mid_block.attentions.0.") {
			if o := old.Replace(n); o != n {
				renamed++
				return o
			}
		}
		return n
	})
	if renamed != 16 {
		t.Fatalf("renamed %d tensors, want 16", renamed)
	}
	writeFile(t, filepath.Join(dir, "vae", "diffusion_pytorch_model.safetensors"), tensors, nil)
	link(t, filepath.Join(sd15, "vae", "config.json"), filepath.Join(dir, "vae", "config.json"))
	m := open(t, dir, Options{Components: []component.Name{component.VAE}})
	folder := open(t, sd15, Options{Components: []component.Name{component.VAE}})
	sameSources(t, "vae", m.Components[component.VAE].Weights, folder.Components[component.VAE].Weights)
}
