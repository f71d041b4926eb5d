package convert

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/pigment-sd/pigment/checkpoint"
	"github.com/pigment-sd/pigment/component"
	"github.com/pigment-sd/pigment/format/pigmentpkg"
	"github.com/pigment-sd/pigment/internal/atomicfile"
	"github.com/pigment-sd/pigment/scheduler"
)

// checkTarget fails when out exists and may not be replaced.
func checkTarget(out string, force bool) error {
	st, err := os.Lstat(out)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !force {
		return fmt.Errorf("%s already exists (use Force to replace it)", out)
	}
	if !st.IsDir() {
		return fmt.Errorf("%s exists and is not a folder; not replacing it", out)
	}
	if pigmentpkg.IsPackage(out) {
		return nil
	}
	ents, err := os.ReadDir(out)
	if err != nil {
		return err
	}
	if len(ents) > 0 {
		return fmt.Errorf("%s exists and is not a pigment package; not replacing it", out)
	}
	return nil
}

// install renames the finished package tmp to out, replacing an existing
// out (checked by checkTarget) when force is set.
func install(tmp, out string, force bool) error {
	if err := checkTarget(out, force); err != nil {
		return err
	}
	parent := filepath.Dir(out)
	old := ""
	if _, err := os.Lstat(out); err == nil {
		// Move the old package into a fresh folder beside out, so its name
		// cannot clash with anything.
		if old, err = os.MkdirTemp(parent, filepath.Base(out)+".old-"); err != nil {
			return err
		}
		if err := os.Rename(out, filepath.Join(old, "package")); err != nil {
			os.Remove(old)
			return fmt.Errorf("move the old %s aside: %w", out, err)
		}
	}
	if err := os.Rename(tmp, out); err != nil {
		if old != "" {
			os.Rename(filepath.Join(old, "package"), out)
			os.Remove(old)
		}
		return err
	}
	if err := syncDir(parent); err != nil {
		return err
	}
	if old != "" {
		if err := os.RemoveAll(old); err != nil {
			return fmt.Errorf("remove the replaced package %s: %w", old, err)
		}
	}
	return nil
}

// syncTree fsyncs every folder under dir (files are synced as they are
// written), so the renames that made them are durable.
func syncTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return syncDir(p)
		}
		return nil
	})
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// writeFile writes data to path atomically.
func writeFile(path string, data []byte) error {
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// writeSupport writes model_index.json, the scheduler config and the
// tokenizer files.
func writeSupport(dir string, m *checkpoint.Model) error {
	tokFiles, err := tokenizerFiles(m.TokenizerDir)
	if err != nil {
		return err
	}
	index, err := modelIndex(m, len(tokFiles) > 0)
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, "model_index.json"), index); err != nil {
		return err
	}
	if len(m.Scheduler) > 0 {
		if err := os.Mkdir(filepath.Join(dir, "scheduler"), 0o755); err != nil {
			return err
		}
		if err := writeFile(filepath.Join(dir, "scheduler", "scheduler_config.json"), m.Scheduler); err != nil {
			return err
		}
	}
	if len(tokFiles) > 0 {
		if err := os.Mkdir(filepath.Join(dir, "tokenizer"), 0o755); err != nil {
			return err
		}
		for _, name := range tokFiles {
			data, err := os.ReadFile(filepath.Join(m.TokenizerDir, name))
			if err != nil {
				return fmt.Errorf("copy tokenizer: %w", err)
			}
			if err := writeFile(filepath.Join(dir, "tokenizer", name), data); err != nil {
				return err
			}
		}
	}
	return nil
}

// tokenizerFiles lists the regular files of the tokenizer folder.
func tokenizerFiles(dir string) ([]string, error) {
	if dir == "" {
		return nil, nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("copy tokenizer: %w", err)
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// modelIndex returns the source's model_index.json, or a minimal one for
// sources without it (single files).
func modelIndex(m *checkpoint.Model, tokenizer bool) ([]byte, error) {
	if m.Kind == checkpoint.KindDiffusers {
		data, err := os.ReadFile(filepath.Join(m.Path, "model_index.json"))
		if err == nil {
			return data, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	idx := map[string]any{"_class_name": "StableDiffusionPipeline"}
	classes := map[component.Name][2]string{
		component.TextEncoder: {"transformers", "CLIPTextModel"},
		component.UNet:        {"diffusers", "UNet2DConditionModel"},
		component.VAE:         {"diffusers", "AutoencoderKL"},
	}
	for _, f := range folders(m) {
		idx[string(f)] = classes[f]
	}
	if tokenizer {
		idx["tokenizer"] = [2]string{"transformers", "CLIPTokenizer"}
	}
	if len(m.Scheduler) > 0 {
		if class, err := scheduler.ConfigClassName(m.Scheduler); err == nil {
			idx["scheduler"] = [2]string{"diffusers", class}
		}
	}
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
