package catalog

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/pigment-sd/pigment/hub"
	"github.com/pigment-sd/pigment/hub/hubtest"
)

func TestResolve(t *testing.T) {
	files := map[string][]byte{
		"model_index.json":                                 []byte(`{"_class_name": "StableDiffusionPipeline"}`),
		"scheduler/scheduler_config.json":                  []byte(`{"_class_name": "PNDMScheduler"}`),
		"unet/config.json":                                 []byte(`{}`),
		"unet/diffusion_pytorch_model.safetensors":         []byte("float32 weights"),
		"unet/diffusion_pytorch_model.fp16.safetensors":    []byte("float16 weights"),
		"vae/config.json":                                  []byte(`{}`),
		"vae/diffusion_pytorch_model.safetensors":          []byte("vae weights"),
		"text_encoder/config.json":                         []byte(`{}`),
		"text_encoder/model.safetensors":                   []byte("text weights"),
		"safety_checker/model.safetensors":                 []byte("not needed"),
		"feature_extractor/preprocessor_config.json":       []byte(`{}`),
		"unet/diffusion_pytorch_model.non_ema.safetensors": []byte("not needed"),
	}
	srv := hubtest.NewServer(t, files, hubtest.Options{RepoID: "owner/model"})
	cache := t.TempDir()
	r := New(hub.NewClient(hub.Options{Endpoint: srv.URL, CacheDir: cache, MaxRetries: -1}))
	ctx := context.Background()

	// A path is returned as it is.
	if got, err := r.Resolve(ctx, cache, ""); err != nil || got != cache {
		t.Errorf("Resolve(path) = %q, %v", got, err)
	}
	if _, err := r.Resolve(ctx, "no/such/dir/x", ""); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("Resolve(missing path) error = %v", err)
	}
	if _, err := r.Resolve(ctx, "", ""); err == nil {
		t.Error("Resolve(\"\") succeeded")
	}

	// A repo id pulls the files a model needs, fp16 weights first.
	dir, err := r.Resolve(ctx, "owner/model", "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			got = append(got, filepath.ToSlash(rel))
		}
		return err
	})
	sort.Strings(got)
	want := []string{"model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json", "text_encoder/model.safetensors",
		"unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors", "vae/config.json", "vae/diffusion_pytorch_model.safetensors"}
	if !slices.Equal(got, want) {
		t.Errorf("pulled %q, want %q", got, want)
	}

	// With the Hub gone, the cached snapshot is found.
	srv.Close()
	again, err := r.Resolve(ctx, "owner/model", "")
	if err != nil || again != dir {
		t.Errorf("offline Resolve = %q, %v; want the cached %q", again, err, dir)
	}
	if _, err := r.Resolve(ctx, "owner/other", ""); err == nil {
		t.Error("offline Resolve of an uncached repo succeeded")
	}
	if r.PackagesDir() != filepath.Join(filepath.Dir(cache), "pigment") {
		t.Errorf("PackagesDir %s", r.PackagesDir())
	}
}
