package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/pigment-sd/pigment/component"
	"github.com/pigment-sd/pigment/weights"
)

// openSingleFile opens an original-layout checkpoint (see the package
// comment).
func openSingleFile(path string, opt Options) (m *Model, err error) {
	f, err := openTensorFile(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	m = &Model{Path: path, Kind: KindSingleFile, Components: map[component.Name]*Component{}}
	m.closers = append(m.closers, f.Close)
	opened := m
	defer func() {
		if err != nil {
			opened.Close()
		}
	}()

	// Some .ckpt files keep the weights under a "state_dict." level.
	names := f.Names()
	base := "state_dict."
	for _, n := range names {
		if !strings.HasPrefix(n, base) {
			base = ""
			break
		}
	}
	if len(names) == 0 {
		base = ""
	}
	shapes := make(map[string][]int, len(names))
	for _, n := range names {
		_, s, _ := f.Info(n)
		shapes[strings.TrimPrefix(n, base)] = s
	}

	h := hints{name: filepath.Base(path), metadata: f.Metadata(), prediction: opt.PredictionType}
	for _, n := range []string{
		clipPrefix + "text_model.embeddings.token_embedding.weight",
		clipPrefix + "embeddings.token_embedding.weight",
		openCLIPPrefix + "token_embedding.weight",
	} {
		if dt, _, ok := f.Info(base + n); ok {
			h.textDType = dt
		}
	}
	p, err := planSingleFile(shapes, opt.Components, h)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	m.Family = p.family
	m.Notes = append(m.Notes, p.notes...)

	for _, name := range opt.Components {
		cp := p.comps[name]
		cfg, err := singleFileConfig(m, name, cp.config, opt)
		if err != nil {
			return nil, fmt.Errorf("checkpoint %s: load %s: %w", path, name, err)
		}
		src := make(weights.Map, len(cp.entries))
		for _, e := range cp.entries {
			e.src = base + e.src
			t, err := makeTensor(f, e)
			if err != nil {
				return nil, fmt.Errorf("load %s: %w", name, err)
			}
			src[e.dst] = t
		}
		m.Components[name] = &Component{Name: name, Config: cfg, Weights: src, Files: []string{path}, evictors: []func() error{f.Evict}}
	}

	if opt.ConfigDir != "" {
		sp := filepath.Join(opt.ConfigDir, "scheduler", "scheduler_config.json")
		raw, _, err := readJSONObject(sp)
		switch {
		case err == nil:
			m.Scheduler = raw
		case errors.Is(err, fs.ErrNotExist):
			m.note("no %s; using the generated scheduler config", sp)
		default:
			return nil, err
		}
		m.TokenizerDir = tokenizerDir(filepath.Join(opt.ConfigDir, "tokenizer"))
	}
	if m.Scheduler == nil {
		if m.Scheduler, err = encodeConfig(p.scheduler); err != nil {
			return nil, err
		}
	}
	if m.TokenizerDir == "" {
		m.note("single-file checkpoints carry no tokenizer: use a bundled CLIP tokenizer (%s)", m.Family)
	}
	return m, nil
}

// singleFileConfig returns a component's config: from Options.ConfigDir
// when it has one, else the generated one, with Options.Config applied;
// it must agree with the tensors on the structural keys.
func singleFileConfig(m *Model, name component.Name, generated map[string]any, opt Options) ([]byte, error) {
	raw, err := encodeConfig(generated)
	if err != nil {
		return nil, err
	}
	var inferred map[string]any
	if err := json.Unmarshal(raw, &inferred); err != nil {
		return nil, err
	}
	cfg, origin := maps.Clone(inferred), "generated config"
	if opt.ConfigDir != "" {
		p := filepath.Join(opt.ConfigDir, string(name), "config.json")
		r, c, err := readJSONObject(p)
		switch {
		case err == nil:
			raw, cfg, origin = r, c, p
		case errors.Is(err, fs.ErrNotExist):
			m.note("no %s; using the generated %s config", p, name)
		default:
			return nil, err
		}
	}
	if len(opt.Config[name]) > 0 {
		origin += " with overrides"
	}
	raw, cfg, err = applyOverrides(raw, cfg, opt.Config[name])
	if err != nil {
		return nil, err
	}
	for _, k := range structuralKeys(name) {
		v, ok := cfg[k]
		if ok && !reflect.DeepEqual(v, inferred[k]) {
			got, _ := json.Marshal(v)
			want, _ := json.Marshal(inferred[k])
			return nil, fmt.Errorf("%s: %s is %s, but the checkpoint's tensors give %s", origin, k, got, want)
		}
	}
	return raw, nil
}
