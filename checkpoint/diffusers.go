package checkpoint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// weightBases returns the safetensors and PyTorch file base names of a
// diffusers component folder.
func weightBases(comp string) (st, bin string) {
	if comp == TextEncoder {
		return "model", "pytorch_model"
	}
	return "diffusion_pytorch_model", "diffusion_pytorch_model"
}

// candidateNames lists the weight file names of variant v ("" for plain)
// in order of preference: a single safetensors file, a sharded safetensors
// index, a single .bin file, a sharded .bin index. Indexes end in .json.
func candidateNames(comp, v string) []string {
	st, bin := weightBases(comp)
	dv := ""
	if v != "" {
		dv = "." + v
	}
	return []string{
		st + dv + ".safetensors",
		st + ".safetensors.index" + dv + ".json",
		st + dv + ".safetensors.index.json",
		bin + dv + ".bin",
		bin + ".bin.index" + dv + ".json",
		bin + dv + ".bin.index.json",
	}
}

// otherVariants lists variants present in dir other than those in skip,
// such as "fp16" when only diffusion_pytorch_model.fp16.safetensors exists.
func otherVariants(dir, comp string, skip []string) []string {
	st, bin := weightBases(comp)
	ents, _ := os.ReadDir(dir)
	seen := map[string]bool{}
	for _, s := range skip {
		seen[s] = true
	}
	var out []string
	for _, e := range ents {
		name := e.Name()
		for _, base := range []string{st, bin} {
			for _, ext := range []string{".safetensors", ".bin"} {
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

// findWeights picks the weight file (or shard index) of a component folder.
// It returns the file and the variant it belongs to.
func findWeights(dir, comp, variant string) (string, string, error) {
	variants := []string{""}
	if variant != "" {
		variants = []string{variant, ""}
	}
	variants = append(variants, otherVariants(dir, comp, variants)...)
	for _, v := range variants {
		for _, name := range candidateNames(comp, v) {
			p := filepath.Join(dir, name)
			if st, err := os.Stat(p); err == nil && !st.IsDir() {
				return p, v, nil
			}
		}
	}
	return "", "", fmt.Errorf("%s: no weight file (looked for %s and variants)", dir, strings.Join(candidateNames(comp, variant), ", "))
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
	m = &Model{Path: dir, Kind: KindDiffusers, Components: map[string]*Component{}}
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
		for _, c := range AllComponents() {
			if isFile(filepath.Join(dir, c, "config.json")) {
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
		c, err := openComponentDir(m, filepath.Join(dir, name), name, opt)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", name, err)
		}
		m.Components[name] = c
	}

	// Family: from the configs, including those of components not loaded.
	var unetCfg, textCfg map[string]any
	if _, c, err := readJSONObject(filepath.Join(dir, UNet, "config.json")); err == nil {
		unetCfg = c
	}
	if _, c, err := readJSONObject(filepath.Join(dir, TextEncoder, "config.json")); err == nil {
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

func openComponentDir(m *Model, dir, name string, opt Options) (*Component, error) {
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
