package pigmentpkg

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/pigment-sd/pigment/internal/atomicfile"
)

// Manifest is pigment.json: what the package is, where it came from, how
// it was compressed and how well.
type Manifest struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
	Created string `json:"created,omitempty"`
	// Source describes the model the package was converted from.
	Source Source `json:"source"`
	// Recipe is the compression recipe as the user gave it.
	Recipe Recipe `json:"recipe"`
	// Components maps a component folder name (unet, text_encoder, vae) to
	// what was stored there.
	Components map[string]*Component `json:"components"`
	// Check holds the output-correctness check results, when it ran.
	Check *Check `json:"check,omitempty"`
}

// Source describes the converted model.
type Source struct {
	Path   string `json:"path"`
	Kind   string `json:"kind"`   // diffusers, single-file
	Family string `json:"family"` // sd1, sd2
}

// Recipe is a compression recipe.
type Recipe struct {
	Bits        int    `json:"bits"`
	Mode        string `json:"mode"`
	Granularity string `json:"granularity"` // per-tensor, per-grouped-channel
	GroupSize   int    `json:"group_size,omitempty"`
	TableDType  string `json:"table_dtype"`
	MinSize     int    `json:"min_size"`
	// Overrides maps tensor names or globs (component/name) to bits, 0
	// meaning "keep float".
	Overrides map[string]int `json:"overrides,omitempty"`
}

// Component is the record of one converted network.
type Component struct {
	Tensors map[string]*TensorRecord `json:"tensors"`
	// FloatBytes is what the component's weights take as float16.
	FloatBytes int64 `json:"float16_bytes"`
	// StoredBytes is the size of the stored tensors (tables and indices
	// included).
	StoredBytes int64 `json:"stored_bytes"`
	Params      int64 `json:"params"`
}

// TensorRecord describes how one tensor was stored.
type TensorRecord struct {
	Shape []int `json:"shape"`
	// Bits is the palette index width, or 0 for a tensor kept float.
	Bits      int    `json:"bits,omitempty"`
	Mode      string `json:"mode,omitempty"`
	GroupSize int    `json:"group_size,omitempty"`
	DType     string `json:"dtype"` // storage dtype of a float tensor, "PAL" for palettized
	Bytes     int64  `json:"bytes"`
	// SQNR is the signal-to-quantization-noise ratio of the palettized
	// weight against the source, in dB.
	SQNR float64 `json:"sqnr_db,omitempty"`
}

// Check is the output-correctness check: each converted component run
// beside its float original on fixed inputs.
type Check struct {
	ThresholdDB float64                 `json:"threshold_db"`
	Results     map[string]*CheckResult `json:"results"`
}

// CheckResult is one component's check.
type CheckResult struct {
	PSNR float64 `json:"psnr_db"`
	Pass bool    `json:"pass"`
}

// IsPackage reports whether dir holds a pigment manifest.
func IsPackage(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, ManifestFile))
	return err == nil
}

// ReadManifest reads and validates dir/pigment.json.
func ReadManifest(dir string) (*Manifest, error) {
	path := filepath.Join(dir, ManifestFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pigment package: %w", err)
	}
	m, err := ParseManifest(b)
	if err != nil {
		return nil, fmt.Errorf("pigment package %s: %w", path, err)
	}
	return m, nil
}

// ParseManifest decodes and validates a manifest.
func ParseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("bad JSON: %v", err)
	}
	if m.Format != FormatName {
		return nil, fmt.Errorf("format is %q, want %q", m.Format, FormatName)
	}
	if m.Version != Version {
		return nil, fmt.Errorf("format version %d is not supported (this pigment reads version %d)", m.Version, Version)
	}
	if len(m.Components) == 0 {
		return nil, errors.New("no components")
	}
	for name, c := range m.Components {
		if c == nil {
			return nil, fmt.Errorf("component %s: empty record", name)
		}
		if name == "" || name != filepath.Base(name) || name == "." || name == ".." {
			return nil, fmt.Errorf("component name %q is not a plain folder name", name)
		}
	}
	return &m, nil
}

// WriteManifest writes dir/pigment.json atomically.
func WriteManifest(dir string, m *Manifest) error {
	m.Format, m.Version = FormatName, Version
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, ManifestFile), 0o644, func(w io.Writer) error {
		_, err := w.Write(append(b, '\n'))
		return err
	})
}
