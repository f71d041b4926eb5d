package convert

import (
	"maps"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pigment-sd/pigment/checkpoint"
	"github.com/pigment-sd/pigment/component"
	"github.com/pigment-sd/pigment/format/pigmentpkg"
	"github.com/pigment-sd/pigment/palette"
)

func TestParseRecipe(t *testing.T) {
	tests := []struct {
		in   string
		want map[string]int
		err  string
	}{
		{in: `{}`, want: map[string]int{}},
		{in: ` {"unet/*attn1*": 8, "unet/conv_in.weight": 0} `, want: map[string]int{"unet/*attn1*": 8, "unet/conv_in.weight": 0}},
		{in: `{"vae/decoder.*": 2.0}`, want: map[string]int{"vae/decoder.*": 2}},
		{in: ``, err: "want a JSON object"},
		{in: `[]`, err: "want a JSON object"},
		{in: `{"unet/*": 4`, err: "recipe"},
		{in: `{"unet/*": 4} x`, err: "data after the JSON object"},
		{in: `{"unet/*": 4}{}`, err: "data after the JSON object"},
		{in: `{"unet/*": 4, "unet/*": 6}`, err: `"unet/*" appears twice`},
		{in: `{"unet/*": 5}`, err: "5 bits is not supported"},
		{in: `{"unet/*": -1}`, err: "-1 bits is not supported"},
		{in: `{"unet/*": 4.5}`, err: "not a whole number"},
		{in: `{"unet/*": "4"}`, err: "not a whole number"},
		{in: `{"unet/*": null}`, err: "not a whole number"},
		{in: `{"unet/*": {"bits": 4}}`, err: "not a whole number"},
		{in: `{"conv_in.weight": 4}`, err: "want folder/tensor"},
		{in: `{"unet/[a-": 4}`, err: "syntax error in pattern"},
	}
	for _, tc := range tests {
		got, err := ParseRecipe([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseRecipe(%q) = %v, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || !maps.Equal(got, tc.want) {
			t.Errorf("ParseRecipe(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func FuzzParseRecipe(f *testing.F) {
	for _, s := range []string{`{}`, `{"unet/*attn1*": 8, "unet/conv_in.weight": 0}`, `{"a/b": 4, "a/b": 4}`, `{"x/[": 1}`, `[1]`, `{"a/b": 1e3}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRecipe(data)
		if err != nil {
			return
		}
		// Whatever parses is a valid recipe.
		if _, err := newRecipe(r); err != nil {
			t.Fatalf("ParseRecipe accepted %q but the recipe is invalid: %v", data, err)
		}
	})
}

// TestRecipe converts with a default of 4 bits and a recipe that mixes
// widths: a glob, an exact name beating the glob, a longer glob beating a
// shorter one, 0 to keep a tensor float, and entries that reach a folder
// outside Components and tensors below MinSize.
func TestRecipe(t *testing.T) {
	m := openModel(t, tinyDir(t, "tiny-sd15"), checkpoint.Options{})
	const exact = "unet/down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight"
	recipe := map[string]int{
		"unet/*attn1*":                  8,
		exact:                           2,
		"unet/*":                        3,
		"unet/*.to_out.0.weight":        6,
		"unet/conv_in.weight":           0,
		"text_encoder/*self_attn*":      1,
		"vae/decoder.conv_out.weight":   8,
		"vae/*":                         0,
		"unet/time_embedding.linear_1*": 0,
	}
	out, man := convertOK(t, m, Options{Bits: 4, Mode: palette.Uniform, Components: []component.Name{component.UNet}, Recipe: recipe})
	if !maps.Equal(man.Recipe.Overrides, recipe) {
		t.Errorf("manifest overrides = %v, want %v", man.Recipe.Overrides, recipe)
	}
	want := func(folder, name string, r *pigmentpkg.TensorRecord) int {
		key := folder + "/" + name
		weight := strings.HasSuffix(name, ".weight") && len(r.Shape) >= 2 && !strings.Contains(name, "embeddings")
		switch {
		case !weight:
			return 0
		case key == exact:
			return 2
		case key == "unet/conv_in.weight", strings.HasPrefix(key, "unet/time_embedding.linear_1"):
			return 0
		case strings.HasPrefix(key, "unet/") && strings.HasSuffix(key, ".to_out.0.weight"):
			return 6 // the longer glob wins over unet/*attn1*
		case strings.HasPrefix(key, "unet/") && strings.Contains(key, "attn1"):
			return 8
		case strings.HasPrefix(key, "unet/"):
			return 3
		case strings.HasPrefix(key, "text_encoder/") && strings.Contains(key, "self_attn"):
			return 1 // below MinSize and outside Components: the recipe decides
		case key == "vae/decoder.conv_out.weight":
			return 8
		}
		return 0
	}
	counts := map[int]int{}
	for folder, c := range man.Components {
		w, err := pigmentpkg.OpenWeights(filepath.Join(out, folder, pigmentpkg.WeightsFile))
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		for name, r := range c.Tensors {
			bits := want(folder, name, r)
			counts[bits]++
			if r.Bits != bits {
				t.Errorf("%s/%s: %d bits, want %d", folder, name, r.Bits, bits)
			}
			info, ok := w.Palette(name)
			if (bits != 0) != ok || (ok && info.Bits != bits) {
				t.Errorf("%s/%s: stored as %+v (palettized %v), want %d bits", folder, name, info, ok, bits)
			}
		}
	}
	t.Logf("tensors by width: %v", counts)
	for _, b := range []int{1, 2, 3, 6, 8} {
		if counts[b] == 0 {
			t.Errorf("no tensor got %d bits", b)
		}
	}
}

// TestRecipeErrors: entries that match nothing, and exact names of tensors
// that are not Linear or Conv weights, are errors naming them.
func TestRecipeErrors(t *testing.T) {
	m := openModel(t, tinyDir(t, "tiny-sd15"), checkpoint.Options{})
	tests := []struct {
		recipe map[string]int
		want   string
	}{
		{map[string]int{"unet/no_such.weight": 4, "unet/*": 4}, `match no tensor: "unet/no_such.weight"`},
		{map[string]int{"vae_decoder/*": 4}, `match no tensor: "vae_decoder/*"`},
		{map[string]int{"unet/conv_in.bias": 4}, `"unet/conv_in.bias": unet/conv_in.bias is not a Linear or Conv weight`},
		{map[string]int{"text_encoder/text_model.embeddings.token_embedding.weight": 8}, "is not a Linear or Conv weight"},
	}
	for _, tc := range tests {
		out := filepath.Join(t.TempDir(), "pkg")
		_, err := Convert(t.Context(), m, out, Options{Bits: 4, Mode: palette.Uniform, Recipe: tc.recipe})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("recipe %v: err = %v, want %q", tc.recipe, err, tc.want)
		}
	}
	// 0 on a norm or bias is harmless: it stays float anyway.
	if _, err := Convert(t.Context(), m, filepath.Join(t.TempDir(), "pkg"), Options{Bits: 4, Mode: palette.Uniform, Recipe: map[string]int{"unet/conv_in.bias": 0}}); err != nil {
		t.Errorf("keeping a bias float: %v", err)
	}
}
