package main

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pigment-sd/pigment/checkpoint"
	"github.com/pigment-sd/pigment/convert"
	"github.com/pigment-sd/pigment/format/pigmentpkg"
	"github.com/pigment-sd/pigment/hub"
	"github.com/pigment-sd/pigment/kernels/cpu"
)

// resolveModel turns what the user typed into a local path. A Hub repo id
// (owner/name[@revision]) is pulled into the Hugging Face cache first,
// only the files a model needs.
func resolveModel(cmd *cobra.Command, model, variant string) (string, error) {
	if model == "" {
		return "", fmt.Errorf("no model given (--model)")
	}
	if _, err := os.Stat(model); err == nil {
		return model, nil
	}
	repoID, rev, ok := hub.ParseRepoRef(model)
	if !ok {
		return "", fmt.Errorf("model %q: no such file or folder, and not a Hub repo id (owner/name)", model)
	}
	c := hub.NewClient(hub.OptionsFromEnv(os.Getenv))
	files, _, err := c.ListFiles(cmd.Context(), repoID, rev)
	if err != nil {
		if dir, ok := cachedSnapshot(cmd, c, repoID, rev); ok {
			return dir, nil
		}
		return "", err
	}
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = f.Path
	}
	// Without a variant asked for, fp16 weights are fetched when the repo
	// has them: half the download, and pigment keeps weights in their
	// stored precision anyway (computing in float32).
	if variant == "" {
		variant = "fp16"
	}
	include, single, err := modelFiles(paths, variant)
	if err != nil {
		return "", fmt.Errorf("%s: %w", repoID, err)
	}
	dir, err := pull(cmd, c, repoID, rev, include, nil, "")
	if err != nil {
		return "", err
	}
	if single != "" {
		return path.Join(dir, single), nil
	}
	return dir, nil
}

// cachedSnapshot finds a repo in the cache when the Hub cannot be listed
// (offline), by asking for the one file every diffusers repo has.
func cachedSnapshot(cmd *cobra.Command, c *hub.Client, repoID, rev string) (string, bool) {
	p, err := c.Download(cmd.Context(), repoID, rev, "model_index.json")
	if err != nil {
		return "", false
	}
	return path.Dir(p), true
}

// modelFiles picks the files of a repo that pigment needs: for a diffusers
// or pigment repo the configs, tokenizer, scheduler and one weight file
// set per component (safetensors before .bin; the variant when asked for
// and present, else the plain files, else any variant); for a repo of
// single-file checkpoints the one checkpoint (single is its path).
func modelFiles(paths []string, variant string) (include []string, single string, err error) {
	has := map[string]bool{}
	for _, p := range paths {
		has[p] = true
	}
	if has["pigment.json"] {
		return []string{"*"}, "", nil
	}
	if !has["model_index.json"] {
		var ckpts []string
		for _, p := range paths {
			if !strings.Contains(p, "/") && (strings.HasSuffix(p, ".safetensors") || strings.HasSuffix(p, ".ckpt")) {
				ckpts = append(ckpts, p)
			}
		}
		sort.Slice(ckpts, func(i, j int) bool { // safetensors first
			return strings.HasSuffix(ckpts[i], ".safetensors") && !strings.HasSuffix(ckpts[j], ".safetensors")
		})
		switch {
		case len(ckpts) == 0:
			return nil, "", fmt.Errorf("neither a diffusers model (no model_index.json) nor a single-file checkpoint")
		case len(ckpts) > 1 && strings.HasSuffix(ckpts[1], ".safetensors"):
			return nil, "", fmt.Errorf("several checkpoints (%s): download the one you want with `pigment pull --include FILE`", strings.Join(ckpts, ", "))
		}
		return []string{ckpts[0]}, ckpts[0], nil
	}
	include = []string{"model_index.json", "scheduler/*", "tokenizer/*"}
	for _, comp := range []string{"unet", "vae", "text_encoder"} {
		include = append(include, comp+"/config.json")
		var byKind = map[string][]string{}
		for _, p := range paths {
			dir, base := path.Split(p)
			if dir != comp+"/" || base == "config.json" {
				continue
			}
			byKind[weightKind(base, variant)] = append(byKind[weightKind(base, variant)], p)
		}
		for _, k := range []string{"variant.safetensors", "plain.safetensors", "other.safetensors", "variant.bin", "plain.bin", "other.bin"} {
			if fs := byKind[k]; len(fs) > 0 {
				include = append(include, fs...)
				break
			}
		}
	}
	return include, "", nil
}

// weightKind classifies a weight file name: which variant ("variant" for
// the one asked for, "plain" for none, "other") and which format.
func weightKind(base, variant string) string {
	var format string
	switch {
	case strings.HasSuffix(base, ".safetensors"), strings.HasSuffix(base, ".safetensors.index.json"):
		format = "safetensors"
	case strings.HasSuffix(base, ".bin"), strings.HasSuffix(base, ".bin.index.json"):
		format = "bin"
	default:
		return "none"
	}
	stem := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(base, ".index.json"), ".safetensors"), ".bin")
	// diffusion_pytorch_model.fp16, model.fp16, diffusion_pytorch_model-00001-of-00002.fp16
	v := ""
	if i := strings.LastIndexByte(stem, '.'); i >= 0 {
		v = stem[i+1:]
	}
	switch {
	case v == "" || strings.HasPrefix(v, "0"):
		if variant == "" {
			return "variant." + format
		}
		return "plain." + format
	case v == variant:
		return "variant." + format
	}
	return "other." + format
}

// defaultRepo is the model generate uses without --model: one of the four
// official models of Apple's palettized set.
const defaultRepo = "stabilityai/stable-diffusion-2-1-base"

// defaultModel pulls the default model's fp16 weights and returns the
// path of its 6-bit pigment package, converting it once. The package is
// kept beside the Hugging Face cache (HF_HUB_CACHE/../pigment), named by
// repo and commit, so a new revision gets a new package.
func defaultModel(cmd *cobra.Command) (string, error) {
	snapshot, err := resolveModel(cmd, defaultRepo, "fp16")
	if err != nil {
		return "", err
	}
	c := hub.NewClient(hub.OptionsFromEnv(os.Getenv))
	pkg := filepath.Join(filepath.Dir(c.CacheDir()), "pigment", hub.RepoFolderName(defaultRepo), filepath.Base(snapshot)+"-6bit")
	if pigmentpkg.IsPackage(pkg) {
		return pkg, nil
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "converting %s to a 6-bit pigment package (once): %s\n", defaultRepo, pkg)
	if err := os.MkdirAll(filepath.Dir(pkg), 0o755); err != nil {
		return "", err
	}
	m, err := checkpoint.Open(snapshot, checkpoint.Options{Variant: "fp16"})
	if err != nil {
		return "", err
	}
	defer m.Close()
	k := cpu.New(0)
	defer k.Close()
	if err := convertModel(cmd, m, pkg, convert.Options{Bits: 6, Kernels: k}, false); err != nil {
		return "", fmt.Errorf("convert the default model: %w", err)
	}
	return pkg, nil
}
