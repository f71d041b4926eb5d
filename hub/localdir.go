package hub

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pigment-sd/pigment/internal/atomicfile"
)

// In local-dir mode each file's bookkeeping lives in
// <dir>/.cache/huggingface/download/<path>.metadata, as huggingface_hub
// writes it: the commit, the etag and a Unix timestamp, one per line.

func localMetaDir(localDir string) string {
	return filepath.Join(localDir, ".cache", "huggingface", "download")
}

type localMeta struct {
	commit, etag string
}

func readLocalMeta(path string) (localMeta, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return localMeta{}, false
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 2 {
		return localMeta{}, false
	}
	return localMeta{commit: strings.TrimSpace(lines[0]), etag: strings.TrimSpace(lines[1])}, true
}

func writeLocalMeta(path, commit, etag string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "%s\n%s\n%.6f\n", commit, etag, float64(time.Now().UnixNano())/1e9)
		return err
	})
}

// ensureLocalFile puts one file at localDir/<path> as a plain file, unless
// the metadata says the same version is already there.
func (c *Client) ensureLocalFile(ctx context.Context, repoID, commit string, f RepoFile, localDir string, progress func(ProgressEvent)) error {
	dest := filepath.Join(localDir, filepath.FromSlash(f.Path))
	metaPath := filepath.Join(localMetaDir(localDir), filepath.FromSlash(f.Path)+".metadata")
	cached := func() {
		c.report(progress, ProgressEvent{File: f.Path, Done: f.Size, Total: f.Size, Finished: true, Cached: true})
	}
	present := func(etag string, size int64) bool {
		md, ok := readLocalMeta(metaPath)
		if !ok {
			return false
		}
		st, err := os.Stat(dest)
		if err != nil || !st.Mode().IsRegular() || (size >= 0 && st.Size() != size) {
			return false
		}
		return md.commit == commit || (etag != "" && md.etag == etag)
	}
	if present(f.etag(), f.Size) {
		cached()
		return nil
	}
	meta, err := c.fileMetadata(ctx, repoID, commit, f.Path)
	if err != nil {
		return err
	}
	if f.Size < 0 {
		f.Size = meta.size
	}
	want, err := expectedSHA256(f, meta)
	if err != nil {
		return err
	}
	if present(meta.etag, meta.size) {
		cached()
		return writeLocalMeta(metaPath, commit, meta.etag)
	}
	if err := os.MkdirAll(filepath.Dir(metaPath), 0o755); err != nil {
		return fmt.Errorf("download %s: %w", f.Path, err)
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return fmt.Errorf("download %s: %w", f.Path, err)
	}
	base := strings.TrimSuffix(metaPath, ".metadata")
	unlock, err := lockFile(ctx, base+".lock")
	if err != nil {
		return fmt.Errorf("download %s: %w", f.Path, err)
	}
	defer unlock()
	if !present(meta.etag, meta.size) {
		what := request{repoID: repoID, revision: commit, file: f.Path}
		if err := c.fetch(ctx, what, meta, want, base+"."+meta.etag+".incomplete", dest, progress); err != nil {
			return err
		}
	}
	if err := writeLocalMeta(metaPath, commit, meta.etag); err != nil {
		return fmt.Errorf("download %s: %w", f.Path, err)
	}
	c.report(progress, ProgressEvent{File: f.Path, Done: meta.size, Total: meta.size, Finished: true})
	return nil
}
