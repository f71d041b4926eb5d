package checkpoint

import (
	"fmt"
	"path/filepath"

	"github.com/pigment-sd/pigment/component"
	"github.com/pigment-sd/pigment/format/pigmentpkg"
)

// KindPigment is the kind of a pigment package (see package pigmentpkg).
const KindPigment = "pigment"

// openPackage opens a pigment package: a folder with pigment.json whose
// components hold config.json and weights.safetensors with float and
// palettized tensors. Palettized tensors stay compressed in memory; layers
// expand the rows they use.
func openPackage(dir string, opt Options) (m *Model, err error) {
	man, err := pigmentpkg.ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	m = &Model{Path: dir, Kind: KindPigment, Family: man.Source.Family, Components: map[component.Name]*Component{}, Manifest: man}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	for _, name := range opt.Components {
		if _, ok := man.Components[string(name)]; !ok {
			return nil, fmt.Errorf("pigment package %s: no component %s (it has %v)", dir, name, keys(man.Components))
		}
		cdir := filepath.Join(dir, string(name))
		raw, cfg, err := readJSONObject(filepath.Join(cdir, pigmentpkg.ConfigFile))
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", name, err)
		}
		if raw, _, err = applyOverrides(raw, cfg, opt.Config[name]); err != nil {
			return nil, fmt.Errorf("load %s: %w", name, err)
		}
		path := filepath.Join(cdir, pigmentpkg.WeightsFile)
		w, err := pigmentpkg.OpenWeights(path)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", name, err)
		}
		m.closers = append(m.closers, w.Close)
		m.Components[name] = &Component{Name: name, Config: raw, Weights: w, Files: []string{path}, evictors: []func() error{w.Evict}}
	}
	if err := m.readScheduler(dir, opt); err != nil {
		return nil, err
	}
	if m.TokenizerDir, err = findTokenizer(dir); err != nil {
		return nil, err
	}
	return m, nil
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
