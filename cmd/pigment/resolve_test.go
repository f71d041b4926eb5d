package main

import (
	"slices"
	"testing"
)

func TestModelFiles(t *testing.T) {
	diffusers := []string{"model_index.json", "scheduler/scheduler_config.json", "tokenizer/vocab.json", "tokenizer/merges.txt",
		"unet/config.json", "unet/diffusion_pytorch_model.bin", "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
		"vae/config.json", "vae/diffusion_pytorch_model.bin",
		"text_encoder/config.json", "text_encoder/model.safetensors", "text_encoder/model.fp16.bin",
		"v1-5-pruned.ckpt", "feature_extractor/preprocessor_config.json"}
	cases := []struct {
		name    string
		paths   []string
		variant string
		want    []string
		single  string
		err     bool
	}{
		{"fp16", diffusers, "fp16", []string{"model_index.json", "scheduler/*", "tokenizer/*", "unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors",
			"vae/config.json", "vae/diffusion_pytorch_model.bin", "text_encoder/config.json", "text_encoder/model.safetensors"}, "", false},
		{"plain", diffusers, "", []string{"model_index.json", "scheduler/*", "tokenizer/*", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
			"vae/config.json", "vae/diffusion_pytorch_model.bin", "text_encoder/config.json", "text_encoder/model.safetensors"}, "", false},
		{"single", []string{"README.md", "sd.ckpt", "sd.safetensors"}, "", []string{"sd.safetensors"}, "sd.safetensors", false},
		{"ambiguous", []string{"a.safetensors", "b.safetensors"}, "", nil, "", true},
		{"nothing", []string{"README.md"}, "", nil, "", true},
		{"package", []string{"pigment.json", "unet/weights.safetensors"}, "", []string{"*"}, "", false},
	}
	for _, c := range cases {
		got, single, err := modelFiles(c.paths, c.variant)
		if (err != nil) != c.err {
			t.Errorf("%s: err %v", c.name, err)
			continue
		}
		if !slices.Equal(got, c.want) || single != c.single {
			t.Errorf("%s: got %q %q, want %q %q", c.name, got, single, c.want, c.single)
		}
	}
}
