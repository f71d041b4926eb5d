// Package catalog turns what a user names as a model into a local model
// path: a file or folder as it is, a Hugging Face Hub repo id
// (owner/name[@revision]) pulled into the shared cache (only the files a
// model needs, chosen by checkpoint.HubFiles), or nothing for the default
// model, converted once to a 6-bit pigment package kept beside the cache.
// The command line and the server resolve models through it.
package catalog

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"github.com/pigment-sd/pigment/checkpoint"
	"github.com/pigment-sd/pigment/convert"
	"github.com/pigment-sd/pigment/format/pigmentpkg"
	"github.com/pigment-sd/pigment/hub"
	"github.com/pigment-sd/pigment/kernels"
)

// DefaultRepo is the model used when none is named: one of the four
// official models of Apple's palettized set.
const DefaultRepo = "stabilityai/stable-diffusion-2-1-base"

// Resolver resolves model references. The zero value is not usable; make
// one with New.
type Resolver struct {
	hub *hub.Client
	// Pull downloads the files of a repo matching include into the cache
	// and returns the snapshot folder. It defaults to the Hub client's
	// Snapshot; a command line tool sets it to draw progress.
	Pull func(ctx context.Context, c *hub.Client, repoID, rev string, include []string) (string, error)
	// Log receives one-line notes (such as the default model's one-time
	// conversion); nil discards them.
	Log io.Writer
}

// New returns a Resolver using the Hub client c (nil: one configured from
// the environment, as huggingface_hub reads it).
func New(c *hub.Client) *Resolver {
	if c == nil {
		c = hub.NewClient(hub.OptionsFromEnv(os.Getenv))
	}
	return &Resolver{hub: c}
}

// Hub returns the resolver's Hub client.
func (r *Resolver) Hub() *hub.Client { return r.hub }

func (r *Resolver) logf(format string, args ...any) {
	if r.Log != nil {
		fmt.Fprintf(r.Log, format+"\n", args...)
	}
}

func (r *Resolver) pull(ctx context.Context, repoID, rev string, include []string) (string, error) {
	if r.Pull != nil {
		return r.Pull(ctx, r.hub, repoID, rev, include)
	}
	return r.hub.Snapshot(ctx, repoID, rev, hub.SnapshotOptions{Include: include})
}

// Resolve turns ref into a local path: an existing file or folder as it
// is; a Hub repo id pulled into the cache first (only the files a model
// needs: the variant's weights when the repo has them, fp16 when no
// variant is asked for), or found in the cache when the Hub cannot be
// reached.
func (r *Resolver) Resolve(ctx context.Context, ref, variant string) (string, error) {
	if ref == "" {
		return "", fmt.Errorf("no model given")
	}
	if _, err := os.Stat(ref); err == nil {
		return ref, nil
	}
	repoID, rev, ok := hub.ParseRepoRef(ref)
	if !ok {
		return "", fmt.Errorf("model %q: no such file or folder, and not a Hub repo id (owner/name)", ref)
	}
	files, _, err := r.hub.ListFiles(ctx, repoID, rev)
	if err != nil {
		if dir, ok := r.cachedSnapshot(ctx, repoID, rev); ok {
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
	include, single, err := checkpoint.HubFiles(paths, variant)
	if err != nil {
		return "", fmt.Errorf("%s: %w", repoID, err)
	}
	dir, err := r.pull(ctx, repoID, rev, include)
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
func (r *Resolver) cachedSnapshot(ctx context.Context, repoID, rev string) (string, bool) {
	p, err := r.hub.Download(ctx, repoID, rev, "model_index.json")
	if err != nil {
		return "", false
	}
	return path.Dir(p), true
}

// PackagesDir is where converted packages of Hub models are kept: beside
// the Hugging Face cache (HF_HUB_CACHE/../pigment).
func (r *Resolver) PackagesDir() string {
	return filepath.Join(filepath.Dir(r.hub.CacheDir()), "pigment")
}

// DefaultOptions configure the default model's one-time conversion.
type DefaultOptions struct {
	// Kernels run the conversion's output check.
	Kernels kernels.Kernels
	// Progress observes the conversion (see convert.Options.Progress).
	Progress func(convert.Event)
}

// Default pulls the default model's fp16 weights and returns the path of
// its 6-bit pigment package, converting it the first time. The package
// is named by repo and commit, so a new revision gets a new package.
func (r *Resolver) Default(ctx context.Context, opt DefaultOptions) (string, error) {
	snapshot, err := r.Resolve(ctx, DefaultRepo, "fp16")
	if err != nil {
		return "", err
	}
	pkg := filepath.Join(r.PackagesDir(), hub.RepoFolderName(DefaultRepo), fmt.Sprintf("%s-%dbit", filepath.Base(snapshot), convert.DefaultBits))
	if pigmentpkg.IsPackage(pkg) {
		return pkg, nil
	}
	r.logf("converting %s to a %d-bit pigment package (once): %s", DefaultRepo, convert.DefaultBits, pkg)
	if err := os.MkdirAll(filepath.Dir(pkg), 0o755); err != nil {
		return "", err
	}
	m, err := checkpoint.Open(snapshot, checkpoint.Options{Variant: "fp16"})
	if err != nil {
		return "", err
	}
	defer m.Close()
	if _, err := convert.Convert(ctx, m, pkg, convert.Options{Bits: convert.DefaultBits, Kernels: opt.Kernels, Progress: opt.Progress}); err != nil {
		return "", fmt.Errorf("convert the default model: %w", err)
	}
	return pkg, nil
}
