package checkpoint

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/pigment-sd/pigment/component"
)

func TestHubFiles(t *testing.T) {
	diffusers := []string{"model_index.json", "scheduler/scheduler_config.json", "tokenizer/vocab.json", "tokenizer/merges.txt",
		"unet/config.json", "unet/diffusion_pytorch_model.bin", "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
		"vae/config.json", "vae/diffusion_pytorch_model.bin",
		"text_encoder/config.json", "text_encoder/model.safetensors", "text_encoder/model.fp16.bin",
		"v1-5-pruned.ckpt", "feature_extractor/preprocessor_config.json"}
	sharded := []string{"model_index.json", "unet/config.json",
		"unet/diffusion_pytorch_model.safetensors.index.fp16.json",
		"unet/diffusion_pytorch_model-00001-of-00002.fp16.safetensors", "unet/diffusion_pytorch_model-00002-of-00002.fp16.safetensors",
		"unet/diffusion_pytorch_model-00001-of-00002.safetensors", "unet/diffusion_pytorch_model.safetensors.index.json"}
	cases := []struct {
		name    string
		paths   []string
		variant string
		want    []string
		single  string
		err     bool
	}{
		{"fp16", diffusers, "fp16", []string{"model_index.json", "scheduler/*", "tokenizer/*",
			"text_encoder/config.json", "text_encoder/model.safetensors",
			"unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors",
			"vae/config.json", "vae/diffusion_pytorch_model.bin"}, "", false},
		{"plain", diffusers, "", []string{"model_index.json", "scheduler/*", "tokenizer/*",
			"text_encoder/config.json", "text_encoder/model.safetensors",
			"unet/config.json", "unet/diffusion_pytorch_model.safetensors",
			"vae/config.json", "vae/diffusion_pytorch_model.bin"}, "", false},
		{"sharded fp16", sharded, "fp16", []string{"model_index.json", "scheduler/*", "tokenizer/*", "text_encoder/config.json",
			"unet/config.json", "unet/diffusion_pytorch_model.safetensors.index.fp16.json",
			"unet/diffusion_pytorch_model-00001-of-00002.fp16.safetensors", "unet/diffusion_pytorch_model-00002-of-00002.fp16.safetensors",
			"vae/config.json"}, "", false},
		{"single", []string{"README.md", "sd.ckpt", "sd.safetensors"}, "", []string{"sd.safetensors"}, "sd.safetensors", false},
		{"ambiguous", []string{"a.safetensors", "b.safetensors"}, "", nil, "", true},
		{"nothing", []string{"README.md"}, "", nil, "", true},
		{"package", []string{"pigment.json", "unet/weights.safetensors"}, "", []string{"*"}, "", false},
	}
	for _, c := range cases {
		got, single, err := HubFiles(c.paths, c.variant)
		if (err != nil) != c.err {
			t.Errorf("%s: err %v", c.name, err)
			continue
		}
		if !slices.Equal(got, c.want) || single != c.single {
			t.Errorf("%s: got %q %q, want %q %q", c.name, got, single, c.want, c.single)
		}
	}
}

// TestWeightChoiceAgrees checks that a folder holding the files HubFiles
// chose opens the same weight file that HubFiles chose, for every variant
// asked for: one rule for downloads and for opening.
func TestWeightChoiceAgrees(t *testing.T) {
	names := []string{"diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin",
		"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.ema.safetensors"}
	for _, variant := range []string{"", "fp16", "ema", "bf16"} {
		for n := 1; n <= len(names); n++ {
			present := names[len(names)-n:]
			dir := t.TempDir()
			var paths []string
			for _, f := range present {
				if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
					t.Fatal(err)
				}
				paths = append(paths, "unet/"+f)
			}
			inc, _, err := HubFiles(append(paths, "model_index.json"), variant)
			if err != nil {
				t.Fatal(err)
			}
			local, _, err := findWeights(dir, component.UNet, variant)
			if err != nil {
				t.Fatal(err)
			}
			if want := "unet/" + filepath.Base(local); !slices.Contains(inc, want) {
				t.Errorf("variant %q, files %v: folder opens %s, download chose %v", variant, present, want, inc)
			}
		}
	}
}
