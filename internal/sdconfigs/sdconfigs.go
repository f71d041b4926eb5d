// Package sdconfigs embeds the configuration files of the official Stable
// Diffusion models (SD 1.5, 2.1-base, 2.1) as the Hugging Face Hub has them,
// so benchmarks can build full-size networks with random weights and no
// download.
package sdconfigs

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
)

//go:embed stable-diffusion-v1-5 stable-diffusion-2-1-base stable-diffusion-2-1
var files embed.FS

// Names lists the embedded models, e.g. "stable-diffusion-v1-5".
func Names() []string {
	entries, _ := fs.ReadDir(files, ".")
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

// File returns one config file of a model, e.g.
// File("stable-diffusion-v1-5", "unet/config.json").
func File(model, path string) ([]byte, error) {
	b, err := files.ReadFile(model + "/" + path)
	if err != nil {
		return nil, fmt.Errorf("config %s/%s: %w", model, path, err)
	}
	return b, nil
}

// FS is the embedded tree: one folder per model, laid out as on the Hub.
func FS() fs.FS { return files }
