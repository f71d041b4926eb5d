package checkpoint

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/pigment-sd/pigment/component"
	"github.com/pigment-sd/pigment/format/safetensors"
	"github.com/pigment-sd/pigment/internal/fixtures"
	"github.com/pigment-sd/pigment/tensor"
	"github.com/pigment-sd/pigment/weights"
)

func fixtureDir(t *testing.T, name string) string {
	t.Helper()
	return filepath.Dir(fixtures.Path(t, name+"/model_index.json"))
}

func open(t *testing.T, path string, opt Options) *Model {
	t.Helper()
	m, err := Open(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m
}

func decodeJSON(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("bad JSON: %v\n%s", err, raw)
	}
	return m
}

func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return decodeJSON(t, raw)
}

// sameKeys checks that got has every key of want with an equal value.
func sameKeys(t *testing.T, what string, got, want map[string]any) {
	t.Helper()
	for k, w := range want {
		if g, ok := got[k]; !ok || !reflect.DeepEqual(g, w) {
			gj, _ := json.Marshal(g)
			wj, _ := json.Marshal(w)
			t.Errorf("%s: %s = %s, want %s", what, k, gj, wj)
		}
	}
}

func rawBytes(t *testing.T, name string, w weights.Tensor) []byte {
	t.Helper()
	r, ok := w.(*weights.Raw)
	if !ok {
		t.Fatalf("%s: %T, want *weights.Raw (no copies)", name, w)
	}
	return r.Bytes()
}

// sameSources checks that two sources hold the same names, shapes, dtypes
// and bytes.
func sameSources(t *testing.T, what string, got, want weights.Source) {
	t.Helper()
	gn, wn := got.Names(), want.Names()
	if !slices.Equal(gn, wn) {
		t.Fatalf("%s: %d names, want %d; first difference: %s", what, len(gn), len(wn), firstDiff(gn, wn))
	}
	for _, n := range wn {
		g, _ := got.Tensor(n)
		w, _ := want.Tensor(n)
		if !slices.Equal(g.Shape(), w.Shape()) || g.DType() != w.DType() {
			t.Errorf("%s: %s: %s %v, want %s %v", what, n, g.DType(), g.Shape(), w.DType(), w.Shape())
			continue
		}
		if !bytes.Equal(rawBytes(t, n, g), rawBytes(t, n, w)) {
			t.Errorf("%s: %s: data differs", what, n)
		}
	}
}

func firstDiff(a, b []string) string {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return a[i] + " vs " + b[i]
		}
	}
	return "length"
}

func TestOpenDiffusers(t *testing.T) {
	tests := []struct {
		name, dir, variant string
		family             string
		counts             map[component.Name]int
		unetDType          tensor.DType
		notes              int
	}{
		{"sd15", "tiny-sd15", "", FamilySD1, map[component.Name]int{component.TextEncoder: 52, component.UNet: 304, component.VAE: 156}, tensor.F32, 0},
		{"sd15-fp16", "tiny-sd15", "fp16", FamilySD1, map[component.Name]int{component.TextEncoder: 52, component.UNet: 304, component.VAE: 156}, tensor.F16, 2},
		{"sd21", "tiny-sd21", "", FamilySD2, nil, tensor.F32, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := fixtureDir(t, tc.dir)
			m := open(t, dir, Options{Variant: tc.variant})
			if m.Kind != KindDiffusers || m.Family != tc.family {
				t.Errorf("kind %s family %s, want %s %s", m.Kind, m.Family, KindDiffusers, tc.family)
			}
			if len(m.Notes) != tc.notes {
				t.Errorf("notes %q, want %d", m.Notes, tc.notes)
			}
			if m.TokenizerDir != filepath.Join(dir, "tokenizer") {
				t.Errorf("tokenizer dir %q", m.TokenizerDir)
			}
			sched, _ := os.ReadFile(filepath.Join(dir, "scheduler", "scheduler_config.json"))
			if !bytes.Equal(m.Scheduler, sched) {
				t.Errorf("scheduler config differs from the file")
			}
			for _, name := range component.Folders() {
				c := m.Components[name]
				if c == nil {
					t.Fatalf("no %s", name)
				}
				cfg, _ := os.ReadFile(filepath.Join(dir, string(name), "config.json"))
				if !bytes.Equal(c.Config, cfg) {
					t.Errorf("%s config differs from the file", name)
				}
				if want, ok := tc.counts[name]; ok && len(c.Weights.Names()) != want {
					t.Errorf("%s: %d tensors, want %d", name, len(c.Weights.Names()), want)
				}
				want := tensor.F32
				if name == component.UNet {
					want = tc.unetDType
				}
				for _, n := range c.Weights.Names() {
					w, _ := c.Weights.Tensor(n)
					if w.DType() != want {
						t.Fatalf("%s: %s is %s, want %s", name, n, w.DType(), want)
					}
					rawBytes(t, n, w)
				}
			}
			if tc.variant == "fp16" && !strings.HasSuffix(m.Components[component.UNet].Files[0], "diffusion_pytorch_model.fp16.safetensors") {
				t.Errorf("unet files %v", m.Components[component.UNet].Files)
			}
		})
	}
}

// The fp16 variant holds the same tensors as the plain file, rounded.
func TestOpenDiffusersVariantValues(t *testing.T) {
	dir := fixtureDir(t, "tiny-sd15")
	f32 := open(t, dir, Options{Components: []component.Name{component.UNet}})
	f16 := open(t, dir, Options{Components: []component.Name{component.UNet}, Variant: "fp16"})
	a, b := f32.Components[component.UNet].Weights, f16.Components[component.UNet].Weights
	if !slices.Equal(a.Names(), b.Names()) {
		t.Fatal("variant names differ")
	}
	for _, n := range a.Names() {
		x, _ := a.Tensor(n)
		y, _ := b.Tensor(n)
		xv, yv := weights.ReadAll(x), weights.ReadAll(y)
		for i := range xv {
			// fp16 has an 11-bit significand: relative rounding error
			// at most 2^-11 for normal values, 2^-24 absolute below.
			if d := float64(xv[i] - yv[i]); d*d > (float64(xv[i])*float64(xv[i])/(1<<22))+1e-14 {
				t.Fatalf("%s[%d]: %g vs fp16 %g", n, i, xv[i], yv[i])
			}
		}
	}
}

func TestSingleFileMatchesDiffusers(t *testing.T) {
	dir := fixtureDir(t, "tiny-sd15")
	file := fixtures.Path(t, "tiny-sd15.safetensors")
	folder := open(t, dir, Options{})

	t.Run("generated", func(t *testing.T) {
		// sample_size is not in the tensors; the rest must be inferred.
		m := open(t, file, Options{Config: map[component.Name]map[string]any{
			component.UNet: {"sample_size": 16}, component.VAE: {"sample_size": 32},
		}})
		if m.Kind != KindSingleFile || m.Family != FamilySD1 || m.TokenizerDir != "" {
			t.Errorf("kind %s family %s tokenizer %q", m.Kind, m.Family, m.TokenizerDir)
		}
		total := 0
		for _, name := range component.Folders() {
			c := m.Components[name]
			sameSources(t, string(name), c.Weights, folder.Components[name].Weights)
			total += len(c.Weights.Names())
			got := decodeJSON(t, c.Config)
			want := readJSON(t, filepath.Join(dir, string(name), "config.json"))
			if !reflect.DeepEqual(got, want) {
				sameKeys(t, string(name)+" config", got, want)
				sameKeys(t, string(name)+" config (extra keys)", want, got)
			}
		}
		if total != 512 {
			t.Errorf("%d tensors, want 512", total)
		}
		if got, want := decodeJSON(t, m.Scheduler), readJSON(t, filepath.Join(dir, "scheduler", "scheduler_config.json")); !reflect.DeepEqual(got, want) {
			t.Errorf("scheduler %v, want %v", got, want)
		}
	})
	t.Run("config-dir", func(t *testing.T) {
		m := open(t, file, Options{ConfigDir: dir, Components: []component.Name{component.UNet, component.TextEncoder}})
		if len(m.Components) != 2 || m.TokenizerDir != filepath.Join(dir, "tokenizer") {
			t.Fatalf("components %d tokenizer %q", len(m.Components), m.TokenizerDir)
		}
		for name, c := range m.Components {
			cfg, _ := os.ReadFile(filepath.Join(dir, string(name), "config.json"))
			if !bytes.Equal(c.Config, cfg) {
				t.Errorf("%s config is not the ConfigDir's", name)
			}
		}
	})
}

// writeFile writes tensors to a safetensors file in a test folder.
func writeFile(t *testing.T, path string, tensors []safetensors.Tensor, meta map[string]string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := safetensors.WriteFile(path, tensors, meta); err != nil {
		t.Fatal(err)
	}
}

// copyTensors reads tensors of a file, renamed by rename ("" drops one).
func copyTensors(t *testing.T, path string, rename func(string) string) []safetensors.Tensor {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []safetensors.Tensor
	for _, n := range f.Names() {
		nn := rename(n)
		if nn == "" {
			continue
		}
		i, _ := f.Info(n)
		d, _ := f.Data(n)
		out = append(out, safetensors.Tensor{Name: nn, DType: i.DType, Shape: i.Shape, Data: bytes.Clone(d)})
	}
	return out
}

// An SD 2.x-style single file: OpenCLIP text tower (fused in_proj, an
// extra last block) built from the tiny-sd21 text encoder, with the
// tiny-sd15 UNet and VAE.
func TestSingleFileOpenCLIP(t *testing.T) {
	sd21 := fixtureDir(t, "tiny-sd21")
	sd15file := fixtures.Path(t, "tiny-sd15.safetensors")
	tensors := copyTensors(t, sd15file, func(n string) string {
		if strings.HasPrefix(n, "cond_stage_model.") {
			return ""
		}
		return n
	})
	te := filepath.Join(sd21, "text_encoder", "model.safetensors")
	f, err := safetensors.Open(te)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	get := func(n string) []byte {
		d, err := f.Data(n)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	cfg := readJSON(t, filepath.Join(sd21, "text_encoder", "config.json"))
	w, layers, inter := int(cfg["hidden_size"].(float64)), int(cfg["num_hidden_layers"].(float64)), int(cfg["intermediate_size"].(float64))
	p := "cond_stage_model.model."
	add := func(name string, data []byte, shape ...int) {
		tensors = append(tensors, safetensors.Tensor{Name: p + name, DType: tensor.F32, Shape: shape, Data: data})
	}
	add("token_embedding.weight", get("text_model.embeddings.token_embedding.weight"), 49408, w)
	add("positional_embedding", get("text_model.embeddings.position_embedding.weight"), 77, w)
	add("ln_final.weight", get("text_model.final_layer_norm.weight"), w)
	add("ln_final.bias", get("text_model.final_layer_norm.bias"), w)
	add("text_projection", make([]byte, 4*w*w), w, w)
	add("logit_scale", make([]byte, 4))
	for i := 0; i <= layers; i++ {
		src := fmt.Sprintf("text_model.encoder.layers.%d.", min(i, layers-1))
		dst := fmt.Sprintf("transformer.resblocks.%d.", i)
		var qkvW, qkvB []byte
		for _, n := range []string{"q_proj", "k_proj", "v_proj"} {
			qkvW = append(qkvW, get(src+"self_attn."+n+".weight")...)
			qkvB = append(qkvB, get(src+"self_attn."+n+".bias")...)
		}
		add(dst+"attn.in_proj_weight", qkvW, 3*w, w)
		add(dst+"attn.in_proj_bias", qkvB, 3*w)
		add(dst+"attn.out_proj.weight", get(src+"self_attn.out_proj.weight"), w, w)
		add(dst+"attn.out_proj.bias", get(src+"self_attn.out_proj.bias"), w)
		for _, r := range [][2]string{{"ln_1", "layer_norm1"}, {"ln_2", "layer_norm2"}} {
			add(dst+r[0]+".weight", get(src+r[1]+".weight"), w)
			add(dst+r[0]+".bias", get(src+r[1]+".bias"), w)
		}
		add(dst+"mlp.c_fc.weight", get(src+"mlp.fc1.weight"), inter, w)
		add(dst+"mlp.c_fc.bias", get(src+"mlp.fc1.bias"), inter)
		add(dst+"mlp.c_proj.weight", get(src+"mlp.fc2.weight"), w, inter)
		add(dst+"mlp.c_proj.bias", get(src+"mlp.fc2.bias"), w)
	}
	path := filepath.Join(t.TempDir(), "tiny-openclip.safetensors")
	writeFile(t, path, tensors, nil)

	m := open(t, path, Options{Components: []component.Name{component.TextEncoder}})
	if m.Family != FamilySD2 {
		t.Errorf("family %s", m.Family)
	}
	folder := open(t, sd21, Options{Components: []component.Name{component.TextEncoder}})
	sameSources(t, "text_encoder", m.Components[component.TextEncoder].Weights, folder.Components[component.TextEncoder].Weights)
	if got := decodeJSON(t, m.Components[component.TextEncoder].Config); !reflect.DeepEqual(got, cfg) {
		sameKeys(t, "text_encoder config", got, cfg)
	}
	// No hints in the name: v_prediction, as diffusers assumes.
	if got, want := decodeJSON(t, m.Scheduler), readJSON(t, filepath.Join(sd21, "scheduler", "scheduler_config.json")); !reflect.DeepEqual(got, want) {
		t.Errorf("scheduler %v, want %v", got, want)
	}
	if !slices.ContainsFunc(m.Notes, func(s string) bool { return strings.Contains(s, "assuming v_prediction") }) {
		t.Errorf("notes %q lack the prediction-type guess", m.Notes)
	}
}

func TestLDMGeneratorMatchesFixture(t *testing.T) {
	file := fixtures.Path(t, "tiny-sd15.safetensors")
	f, err := safetensors.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gen := ldmShapes{}
	g := readGenConfig(t, fixtureDir(t, "tiny-sd15"))
	gen.unet(g)
	gen.vae(g)
	gen.clip(g)
	if len(gen) != len(f.Names()) {
		t.Errorf("generator makes %d tensors, fixture has %d", len(gen), len(f.Names()))
	}
	for _, n := range f.Names() {
		i, _ := f.Info(n)
		if !slices.Equal(gen[n], i.Shape) {
			t.Errorf("%s: generator %v, fixture %v", n, gen[n], i.Shape)
		}
	}
}

// Real-size checkpoints, from names and shapes only: the inferred configs
// must equal the Hub's on every key the Hub's files have.
func TestInferRealSize(t *testing.T) {
	tests := []struct {
		config, file string
		openCLIP     bool
		family       string
	}{
		{"stable-diffusion-v1-5", "v1-5-pruned-emaonly.safetensors", false, FamilySD1},
		{"stable-diffusion-2-1-base", "v2-1_512-ema-pruned.safetensors", true, FamilySD2},
		{"stable-diffusion-2-1", "v2-1_768-ema-pruned.safetensors", true, FamilySD2},
	}
	for _, tc := range tests {
		t.Run(tc.config, func(t *testing.T) {
			dir := filepath.Dir(fixtures.Path(t, "configs/"+tc.config+"/model_index.json"))
			g := readGenConfig(t, dir)
			s := ldmShapes{}
			s.unet(g)
			s.vae(g)
			if tc.openCLIP {
				s.openCLIP(g)
			} else {
				s.clip(g)
				s.add("cond_stage_model.transformer.text_model.embeddings.position_ids", 1, 77)
			}
			// Leftovers real files carry, which the loader ignores.
			s.add("model_ema.decay")
			s.add("betas", 1000)
			s.add("alphas_cumprod", 1000)

			p, err := planSingleFile(s, component.Folders(), hints{name: tc.file})
			if err != nil {
				t.Fatal(err)
			}
			if p.family != tc.family {
				t.Errorf("family %s, want %s", p.family, tc.family)
			}
			for _, name := range component.Folders() {
				raw, err := encodeConfig(p.comps[name].config)
				if err != nil {
					t.Fatal(err)
				}
				sameKeys(t, string(name), decodeJSON(t, raw), readJSON(t, filepath.Join(dir, string(name), "config.json")))
			}
			raw, _ := encodeConfig(p.scheduler)
			sameKeys(t, "scheduler", decodeJSON(t, raw), readJSON(t, filepath.Join(dir, "scheduler", "scheduler_config.json")))
			if n := len(p.comps[component.UNet].entries); n != 686 {
				t.Errorf("unet: %d tensors, want 686", n)
			}
		})
	}
}

func TestPredictionTypeHints(t *testing.T) {
	tests := []struct {
		name string
		meta map[string]string
		opt  string
		want string
	}{
		{"v2-1_768-ema-pruned.safetensors", nil, "", "v_prediction"},
		{"v2-1_512-ema-pruned.ckpt", nil, "", "epsilon"},
		{"sd21-base.safetensors", nil, "", "epsilon"},
		{"mymodel-v.safetensors", nil, "", "v_prediction"},
		{"mymodel.safetensors", nil, "", "v_prediction"},
		{"mymodel.safetensors", map[string]string{"modelspec.prediction_type": "epsilon"}, "", "epsilon"},
		{"mymodel-768.safetensors", map[string]string{"modelspec.architecture": "stable-diffusion-v2-512"}, "", "epsilon"},
		{"mymodel.safetensors", map[string]string{"modelspec.architecture": "stable-diffusion-v2-768-v"}, "", "v_prediction"},
		{"v2-1_768.safetensors", nil, "epsilon", "epsilon"},
	}
	for _, tc := range tests {
		p := &plan{}
		if got := predictionType(FamilySD2, hints{name: tc.name, metadata: tc.meta, prediction: tc.opt}, p); got != tc.want {
			t.Errorf("%s %v %q: %s, want %s", tc.name, tc.meta, tc.opt, got, tc.want)
		}
	}
	if got := predictionType(FamilySD1, hints{name: "v1-5-768.safetensors"}, &plan{}); got != "epsilon" {
		t.Errorf("SD 1.x: %s", got)
	}
}

func TestHeadRules(t *testing.T) {
	for _, tc := range []struct{ width, heads int }{{768, 12}, {1024, 16}, {1280, 20}, {32, 4}, {40, 5}, {20, 1}} {
		if got := clipHeads(tc.width); got != tc.heads {
			t.Errorf("clipHeads(%d) = %d, want %d", tc.width, got, tc.heads)
		}
	}
	a := &unetArch{linear: true, channels: []int{320, 640, 1280, 1280}}
	if h, guessed := unetHeads(a); !reflect.DeepEqual(h, []int{5, 10, 20, 20}) || guessed {
		t.Errorf("SD 2 heads %v %v", h, guessed)
	}
	a.channels = []int{32, 64}
	if h, guessed := unetHeads(a); h != 8 || !guessed {
		t.Errorf("tiny linear heads %v %v", h, guessed)
	}
}

func TestInspect(t *testing.T) {
	m := open(t, fixtureDir(t, "tiny-sd15"), Options{Variant: "fp16"})
	s := Inspect(m)
	if s.Family != FamilySD1 || s.Scheduler != "PNDMScheduler" || s.PredictionType != "epsilon" || len(s.Components) != 3 {
		t.Fatalf("summary %+v", s)
	}
	var params, bytes int64
	for _, c := range s.Components {
		params += c.Params
		bytes += c.Bytes
		var sum int64
		for _, n := range c.DTypes {
			sum += n
		}
		if sum != c.Params {
			t.Errorf("%s: dtype counts %v do not add up to %d", c.Name, c.DTypes, c.Params)
		}
	}
	if params != s.Params || bytes != s.Bytes {
		t.Errorf("totals %d/%d, want %d/%d", s.Params, s.Bytes, params, bytes)
	}
	unet := s.Components[1]
	if unet.Name != component.UNet || unet.Class != "UNet2DConditionModel" || unet.Bytes != 2*unet.Params || unet.DTypes[tensor.F16] != unet.Params {
		t.Errorf("unet %+v", unet)
	}
	te := s.Components[0]
	if te.Class != "CLIPTextModel" || te.Bytes != 4*te.Params {
		t.Errorf("text encoder %+v", te)
	}
	str := s.String()
	for _, want := range []string{"family sd1", "UNet2DConditionModel", "AutoencoderKL", "F16", "note:"} {
		if !strings.Contains(str, want) {
			t.Errorf("summary text lacks %q:\n%s", want, str)
		}
	}
}
