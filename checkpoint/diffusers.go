package checkpoint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pigment-sd/pigment/component"
)

// weightBases returns the safetensors and PyTorch file base names of a
// diffusers component folder.
func weightBases(comp component.Name) (st, bin string) {
	if comp == component.TextEncoder {
		return "model", "pytorch_model"
	}
	return "diffusion_pytorch_model", "diffusion_pytorch_model"
}

// candidateNames lists the weight file names of variant v ("" for plain)
// and extension ext (".safetensors" or ".bin") in order of preference: a
// single file, then a sharded index. Indexes end in .json.
func candidateNames(comp component.Name, v, ext string) []string {
	st, bin := weightBases(comp)
	base := st
	if ext == ".bin" {
		base = bin
	}
	dv := ""
	if v != "" {
		dv = "." + v
	}
	return []string{
		base + dv + ext,
		base + ext + ".index" + dv + ".json",
		base + dv + ext + ".index.json",
	}
}

// weightExts are the weight formats in order of preference: safetensors
// (memory-mapped, no code) before PyTorch pickles.
var weightExts = []string{".safetensors", ".bin"}

// otherVariants lists the variants of comp's weight files among names
// other than those in skip, such as "fp16" when only
// diffusion_pytorch_model.fp16.safetensors exists.
func otherVariants(names []string, comp component.Name, skip []string) []string {
	st, bin := weightBases(comp)
	seen := map[string]bool{}
	for _, s := range skip {
		seen[s] = true
	}
	var out []string
	for _, name := range names {
		for _, base := range []string{st, bin} {
			for _, ext := range weightExts {
				v, ok := strings.CutPrefix(name, base+".")
				if !ok {
					continue
				}
				v, ok = strings.CutSuffix(v, ext)
				if !ok || v == "" || strings.ContainsAny(v, ".-") || seen[v] {
					continue
				}
				seen[v] = true
				out = append(out, v)
			}
		}
	}
	sort.Strings(out)
	return out
}

// selectWeights picks the weight file (or shard index) of a diffusers
// component folder holding the files names: safetensors before .bin;
// within a format the variant asked for, then the plain files, then any
// other variant; a single file before a shard index. It returns the file
// name and the variant it belongs to. This one rule chooses both what is
// opened from a folder and what is downloaded from the Hub.
func selectWeights(names []string, comp component.Name, variant string) (name, v string, ok bool) {
	has := make(map[string]bool, len(names))
	for _, n := range names {
		has[n] = true
	}
	variants := []string{""}
	if variant != "" {
		variants = []string{variant, ""}
	}
	variants = append(variants, otherVariants(names, comp, variants)...)
	for _, ext := range weightExts {
		for _, v := range variants {
			for _, n := range candidateNames(comp, v, ext) {
				if has[n] {
					return n, v, true
				}
			}
		}
	}
	return "", "", false
}

// findWeights picks the weight file (or shard index) of a component folder.
// It returns the file and the variant it belongs to.
func findWeights(dir string, comp component.Name, variant string) (string, string, error) {
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		// Entries may be symbolic links (the Hub cache's are): what
		// they name must be a file.
		if st, err := os.Stat(filepath.Join(dir, e.Name())); err == nil && !st.IsDir() {
			names = append(names, e.Name())
		}
	}
	if name, v, ok := selectWeights(names, comp, variant); ok {
		return filepath.Join(dir, name), v, nil
	}
	return "", "", fmt.Errorf("%s: no weight file (looked for %s and variants)", dir, strings.Join(candidateNames(comp, variant, ".safetensors"), ", "))
}

// HubFiles picks the files of a Hub repository (its paths) that pigment
// needs to open it: for a diffusers repo the index, configs, tokenizer,
// scheduler and one weight file set per component, chosen as a local
// folder's would be (selectWeights; variant "" prefers plain files); for
// a pigment package everything; for a repo of single-file checkpoints
// the one checkpoint, whose path is also returned as single.
func HubFiles(paths []string, variant string) (include []string, single string, err error) {
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
		sort.SliceStable(ckpts, func(i, j int) bool { // safetensors first
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
	for _, comp := range component.Folders() {
		folder := string(comp) + "/"
		include = append(include, folder+"config.json")
		var names []string
		for _, p := range paths {
			if dir, base := path.Split(p); dir == folder && base != "config.json" {
				names = append(names, base)
			}
		}
		name, v, ok := selectWeights(names, comp, variant)
		if !ok {
			continue
		}
		include = append(include, folder+name)
		if strings.HasSuffix(name, ".json") {
			for _, shard := range shardFiles(names, comp, name, v) {
				include = append(include, folder+shard)
			}
		}
	}
	return include, "", nil
}

// shardFiles lists the shards among names that a shard index of variant
// v points to: diffusion_pytorch_model-00001-of-00002.fp16.safetensors
// for diffusion_pytorch_model.safetensors.index.fp16.json.
func shardFiles(names []string, comp component.Name, index, v string) []string {
	ext := ".safetensors"
	if strings.Contains(index, ".bin") {
		ext = ".bin"
	}
	st, bin := weightBases(comp)
	base := st
	if ext == ".bin" {
		base = bin
	}
	suffix := ext
	if v != "" {
		suffix = "." + v + ext
	}
	var out []string
	for _, n := range names {
		mid, ok := strings.CutPrefix(n, base+"-")
		if !ok {
			continue
		}
		if mid, ok = strings.CutSuffix(mid, suffix); ok && !strings.Contains(mid, ".") {
			out = append(out, n)
		}
	}
	return out
}

// openWeightFiles opens a weight file, or all shards named by an index.
func openWeightFiles(path string) ([]tensorFile, error) {
	if !strings.HasSuffix(path, ".json") {
		f, err := openTensorFile(path)
		if err != nil {
			return nil, err
		}
		return []tensorFile{f}, nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("%s: bad shard index: %w", path, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("%s: shard index has no weight_map", path)
	}
	dir := filepath.Dir(path)
	byFile := map[string][]string{}
	for name, file := range idx.WeightMap {
		if file == "" || file != filepath.Base(file) || file == ".." {
			return nil, fmt.Errorf("%s: tensor %s: shard %q is not a file name in the index's folder", path, name, file)
		}
		byFile[file] = append(byFile[file], name)
	}
	files := make([]string, 0, len(byFile))
	for f := range byFile {
		files = append(files, f)
	}
	sort.Strings(files)
	var out []tensorFile
	closeAll := func() {
		for _, f := range out {
			f.Close()
		}
	}
	for _, name := range files {
		f, err := openTensorFile(filepath.Join(dir, name))
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("shard of %s: %w", path, err)
		}
		out = append(out, f)
		for _, n := range byFile[name] {
			if _, _, ok := f.Info(n); !ok {
				closeAll()
				return nil, fmt.Errorf("%s: tensor %s, listed in %s, is missing", f.Path(), n, filepath.Base(path))
			}
		}
	}
	return out, nil
}

// readJSONObject reads a JSON object file.
func readJSONObject(path string) ([]byte, map[string]any, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, nil, fmt.Errorf("%s: not a JSON object: %w", path, err)
	}
	if m == nil {
		return nil, nil, fmt.Errorf("%s: not a JSON object", path)
	}
	return raw, m, nil
}

// applyOverrides merges overrides into a config and re-encodes it; raw is
// returned unchanged when there are none.
func applyOverrides(raw []byte, m map[string]any, over map[string]any) ([]byte, map[string]any, error) {
	if len(over) == 0 {
		return raw, m, nil
	}
	for k, v := range over {
		m[k] = v
	}
	out, err := encodeConfig(m)
	if err != nil {
		return nil, nil, err
	}
	// Decode again so that m holds JSON values (float64, []any).
	var norm map[string]any
	if err := json.Unmarshal(out, &norm); err != nil {
		return nil, nil, err
	}
	return out, norm, nil
}

// encodeConfig writes a config as diffusers does: sorted keys, two-space
// indentation, trailing newline.
func encodeConfig(m map[string]any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return buf.Bytes(), nil
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// readScheduler sets m.Scheduler from dir/scheduler/scheduler_config.json,
// or, when the folder has none, to the default config of m.Family (with a
// note).
func (m *Model) readScheduler(dir string, opt Options) error {
	schedPath := filepath.Join(dir, "scheduler", "scheduler_config.json")
	raw, _, err := readJSONObject(schedPath)
	switch {
	case err == nil:
		m.Scheduler = raw
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	pred := "epsilon"
	if m.Family == FamilySD2 {
		pred = "v_prediction"
	}
	if opt.PredictionType != "" {
		pred = opt.PredictionType
	}
	if m.Scheduler, err = encodeConfig(schedulerConfig(pred)); err != nil {
		return err
	}
	m.note("no %s; using the default %s scheduler config (%s)", schedPath, m.Family, pred)
	return nil
}

// findTokenizer returns the tokenizer/ folder of a model folder, "" when
// there is none, and an error when it exists without the files a CLIP
// tokenizer needs.
func findTokenizer(dir string) (string, error) {
	tdir := filepath.Join(dir, "tokenizer")
	if st, err := os.Stat(tdir); err != nil || !st.IsDir() {
		return "", nil
	}
	if tokenizerDir(tdir) == "" {
		return "", fmt.Errorf("%s: incomplete tokenizer: vocab.json and merges.txt are both needed", tdir)
	}
	return tdir, nil
}

// tokenizerDir returns dir if it holds a CLIP tokenizer, else "".
func tokenizerDir(dir string) string {
	if isFile(filepath.Join(dir, "vocab.json")) && isFile(filepath.Join(dir, "merges.txt")) {
		return dir
	}
	return ""
}

func openDiffusers(dir string, opt Options) (m *Model, err error) {
	m = &Model{Path: dir, Kind: KindDiffusers, Components: map[component.Name]*Component{}}
	opened := m
	defer func() {
		if err != nil {
			opened.Close()
		}
	}()

	indexPath := filepath.Join(dir, "model_index.json")
	if _, index, ierr := readJSONObject(indexPath); ierr == nil {
		cls, _ := index["_class_name"].(string)
		if strings.Contains(cls, "XL") || index["text_encoder_2"] != nil {
			return nil, fmt.Errorf("%s: %s (SDXL) models are not supported", indexPath, cls)
		}
	} else if errors.Is(ierr, fs.ErrNotExist) {
		found := false
		for _, c := range component.Folders() {
			if isFile(filepath.Join(dir, string(c), "config.json")) {
				found = true
			}
		}
		if !found {
			if isFile(filepath.Join(dir, "config.json")) {
				return nil, fmt.Errorf("%s: looks like one component's folder (config.json, no model_index.json): open the model folder above it", dir)
			}
			return nil, fmt.Errorf("%s: not a diffusers model folder: no model_index.json and no unet/, vae/ or text_encoder/ with config.json", dir)
		}
		m.note("no model_index.json in %s; using the component folders found", dir)
	} else {
		return nil, ierr
	}

	for _, name := range opt.Components {
		c, err := openComponentDir(m, filepath.Join(dir, string(name)), name, opt)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", name, err)
		}
		m.Components[name] = c
	}

	// Family: from the configs, including those of components not loaded.
	var unetCfg, textCfg map[string]any
	if _, c, err := readJSONObject(filepath.Join(dir, string(component.UNet), "config.json")); err == nil {
		unetCfg = c
	}
	if _, c, err := readJSONObject(filepath.Join(dir, string(component.TextEncoder), "config.json")); err == nil {
		textCfg = c
	}
	m.Family = familyFromConfigs(unetCfg, textCfg)

	if err := m.readScheduler(dir, opt); err != nil {
		return nil, err
	}
	if m.TokenizerDir, err = findTokenizer(dir); err != nil {
		return nil, err
	}
	if m.TokenizerDir == "" {
		m.note("no tokenizer/ folder in %s; the bundled CLIP tokenizer is used", dir)
	}
	return m, nil
}

func openComponentDir(m *Model, dir string, name component.Name, opt Options) (*Component, error) {
	cfgPath := filepath.Join(dir, "config.json")
	raw, cfg, err := readJSONObject(cfgPath)
	if err != nil {
		return nil, err
	}
	raw, _, err = applyOverrides(raw, cfg, opt.Config[name])
	if err != nil {
		return nil, err
	}
	path, v, err := findWeights(dir, name, opt.Variant)
	if err != nil {
		return nil, err
	}
	if v != opt.Variant {
		want := "plain"
		if opt.Variant != "" {
			want = opt.Variant
		}
		m.note("%s: no %s weights; using %s", name, want, filepath.Base(path))
	}
	files, err := openWeightFiles(path)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		m.closers = append(m.closers, f.Close)
	}
	src, renamed, err := identitySource(files)
	if err != nil {
		return nil, err
	}
	if renamed {
		m.note("%s: renamed pre-0.14 diffusers attention weights (query, key, value, proj_attn) to to_q, to_k, to_v, to_out.0", name)
	}
	c := &Component{Name: name, Config: raw, Weights: src}
	for _, f := range files {
		c.Files = append(c.Files, f.Path())
		c.evictors = append(c.evictors, f.Evict)
	}
	return c, nil
}

// familyFromConfigs applies the family rule to diffusers configs.
func familyFromConfigs(unet, text map[string]any) string {
	if text != nil {
		if act, _ := text["hidden_act"].(string); act == "gelu" {
			return FamilySD2
		}
		if w, _ := text["hidden_size"].(float64); w == 1024 {
			return FamilySD2
		}
	}
	if unet != nil {
		switch v := unet["cross_attention_dim"].(type) {
		case float64:
			if v == 1024 {
				return FamilySD2
			}
		case []any:
			if len(v) > 0 && v[0] == float64(1024) {
				return FamilySD2
			}
		}
	}
	return FamilySD1
}
