package clip

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pigment-sd/pigment/internal/fixtures"
	"github.com/pigment-sd/pigment/internal/randweights"
	"github.com/pigment-sd/pigment/internal/testmodel"
	"github.com/pigment-sd/pigment/kernels/ref"
	"github.com/pigment-sd/pigment/tensor"
	"github.com/pigment-sd/pigment/weights"
)

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFixtures runs the tiny text encoders on the fixture prompts and
// compares the embeddings, every layer output and last_hidden_state with
// transformers' float32 outputs, within testmodel.Tolerance (1e-4·max(1,
// std), the fixtures' stated margin: float64-vs-float32 noise is 6e-7·std).
// Both attention modes are run; the chunk of 16 splits the 77 queries.
func TestFixtures(t *testing.T) {
	for _, model := range []string{"tiny-sd15", "tiny-sd21"} {
		for _, kc := range testmodel.KernelCases() {
			mode := kc.Mode
			t.Run(model+"/"+kc.Name, func(t *testing.T) {
				cfg := readFile(t, fixtures.Path(t, model+"/text_encoder/config.json"))
				src := testmodel.FileSource(t, fixtures.Path(t, model+"/text_encoder/model.safetensors"))
				refs := testmodel.OpenFile(t, fixtures.Path(t, model+"/refs.safetensors"))

				acts := map[string]*tensor.Tensor{}
				m, err := New(cfg, src, kc.K, Options{Attention: mode, Chunk: 16,
					Hook: func(name string, x *tensor.Tensor) { acts[name] = x }})
				if err != nil {
					t.Fatal(err)
				}
				ids64, shape, err := refs.Int64("text_encoder.input_ids")
				if err != nil {
					t.Fatal(err)
				}
				ids := make([]int, len(ids64))
				for i, v := range ids64 {
					ids[i] = int(v)
				}
				out, err := m.Forward(ids, shape[0])
				if err != nil {
					t.Fatal(err)
				}
				testmodel.Compare(t, "last_hidden_state", out, testmodel.Ref(t, refs, "text_encoder.last_hidden_state"))
				names := []string{"embeddings"}
				for i := 0; i < m.Config().NumHiddenLayers; i++ {
					names = append(names, "layers."+string(rune('0'+i)))
				}
				for _, name := range names {
					got, ok := acts[name]
					if !ok {
						t.Errorf("hook did not report %s", name)
						continue
					}
					testmodel.Compare(t, name, got, testmodel.Ref(t, refs, "text_encoder.act."+name))
				}
			})
		}
	}
}

// TestRealConfigs parses the real SD text encoder configs and checks the
// parameter count of the weights the network reads against the published
// models, then builds each from zero-storage weights.
func TestRealConfigs(t *testing.T) {
	for _, tc := range []struct {
		model  string
		params int64
		layers int
		act    string
	}{
		{"stable-diffusion-v1-5", 123060480, 12, "quick_gelu"}, // CLIP ViT-L/14 text tower
		{"stable-diffusion-2-1-base", 340387840, 23, "gelu"},   // OpenCLIP ViT-H/14, last layer dropped
		{"stable-diffusion-2-1", 340387840, 23, "gelu"},
	} {
		t.Run(tc.model, func(t *testing.T) {
			data := readFile(t, fixtures.Path(t, filepath.Join("configs", tc.model, "text_encoder", "config.json")))
			cfg, err := ParseConfig(data)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.NumHiddenLayers != tc.layers || cfg.HiddenAct != tc.act {
				t.Errorf("config: %d layers %s, want %d %s", cfg.NumHiddenLayers, cfg.HiddenAct, tc.layers, tc.act)
			}
			shapes := WeightShapes(cfg)
			if got := randweights.NumParams(shapes); got != tc.params {
				t.Errorf("parameters = %d, want %d", got, tc.params)
			}
			if _, err := New(data, randweights.Zeros(shapes), ref.New()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func tinyConfig() []byte {
	return []byte(`{"vocab_size": 100, "hidden_size": 8, "intermediate_size": 12,
		"num_hidden_layers": 2, "num_attention_heads": 2, "max_position_embeddings": 6}`)
}

// TestRandomWeights runs a tiny encoder built from testmodel.Random and
// checks that the causal mask holds: changing a later token leaves earlier
// positions exactly unchanged.
func TestRandomWeights(t *testing.T) {
	cfg, err := ParseConfig(tinyConfig())
	if err != nil {
		t.Fatal(err)
	}
	src := randweights.New(nil, WeightShapes(cfg), 1, tensor.F16)
	m, err := New(tinyConfig(), src, ref.New())
	if err != nil {
		t.Fatal(err)
	}
	a, err := m.Forward([]int{1, 2, 3, 4, 5, 6}, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Forward([]int{1, 2, 3, 4, 99, 0}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if d := testmodel.MaxAbsDiff(a.Data[:4*8], b.Data[:4*8]); d != 0 {
		t.Errorf("positions before the change moved by %g", d)
	}
	if d := testmodel.MaxAbsDiff(a.Data[4*8:], b.Data[4*8:]); d == 0 {
		t.Error("positions after the change did not move")
	}
	// The arena reuses its buffers: a second pass allocates nothing.
	before := m.Arena().Stats().Allocs
	if _, err := m.Forward([]int{1, 2, 3, 4, 5, 6}, 1); err != nil {
		t.Fatal(err)
	}
	if after := m.Arena().Stats().Allocs; after != before {
		t.Errorf("second pass allocated %d arena buffers", after-before)
	}
}

func TestErrors(t *testing.T) {
	cfg, _ := ParseConfig(tinyConfig())
	shapes := WeightShapes(cfg)
	good := randweights.Zeros(shapes)

	t.Run("missing", func(t *testing.T) {
		m := weights.Map{}
		for _, n := range good.Names() {
			if n != "text_model.encoder.layers.1.mlp.fc2.weight" {
				m[n], _ = good.Tensor(n)
			}
		}
		_, err := New(tinyConfig(), m, ref.New())
		var me *weights.MissingError
		if !errors.As(err, &me) || me.Name != "text_model.encoder.layers.1.mlp.fc2.weight" {
			t.Fatalf("err = %v, want a MissingError for layers.1.mlp.fc2.weight", err)
		}
		if want := "clip: weight text_model.encoder.layers.1.mlp.fc2.weight: missing"; err.Error() != want {
			t.Errorf("err = %q, want %q", err, want)
		}
	})
	t.Run("shape", func(t *testing.T) {
		m := weights.Map{}
		for _, n := range good.Names() {
			m[n], _ = good.Tensor(n)
		}
		m["text_model.encoder.layers.0.self_attn.q_proj.weight"] = weights.NewDense(make([]float32, 8*9), 8, 9)
		_, err := New(tinyConfig(), m, ref.New())
		if err == nil || !strings.Contains(err.Error(), "text_model.encoder.layers.0.self_attn.q_proj.weight: shape [8,9], want [8,8]") {
			t.Fatalf("err = %v", err)
		}
	})
	m, err := New(tinyConfig(), good, ref.New())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		ids   []int
		batch int
	}{
		{"bad batch", []int{1, 2, 3}, 2},
		{"zero batch", []int{1}, 0},
		{"too long", []int{1, 2, 3, 4, 5, 6, 7}, 1},
		{"id out of range", []int{1, 100}, 1},
		{"negative id", []int{-1}, 1},
	} {
		if _, err := m.Forward(tc.ids, tc.batch); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		json string
		ok   bool
	}{
		{`{}`, true},
		{`{"hidden_act": "relu"}`, false},
		{`{"hidden_size": 10, "num_attention_heads": 3}`, false},
		{`{"num_hidden_layers": 0}`, false},
		{`{"layer_norm_eps": -1}`, false},
		{`{"vocab_size": "x"}`, false},
		{`[`, false},
	} {
		_, err := ParseConfig([]byte(tc.json))
		if (err == nil) != tc.ok {
			t.Errorf("ParseConfig(%s): err = %v", tc.json, err)
		}
	}
	cfg, _ := ParseConfig([]byte(`{}`))
	if cfg != DefaultConfig() {
		t.Errorf("defaults: %+v", cfg)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Add(tinyConfig())
	f.Add([]byte(`{"hidden_size": 768, "num_attention_heads": 12, "hidden_act": "gelu"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			return
		}
		if WeightShapes(cfg) == nil {
			t.Fatalf("valid config %+v has no weight shapes", cfg)
		}
	})
}
