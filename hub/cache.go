package hub

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pigment-sd/pigment/internal/atomicfile"
)

// RepoFolderName returns the name of a model repository's folder in the
// cache: "models--owner--name".
func RepoFolderName(repoID string) string {
	return "models--" + strings.ReplaceAll(repoID, "/", "--")
}

// repoDir is a repository's folder in the cache.
func (c *Client) repoDir(repoID string) string {
	return filepath.Join(c.cacheDir, RepoFolderName(repoID))
}

func blobPath(repoDir, etag string) string {
	return filepath.Join(repoDir, "blobs", etag)
}

func snapshotDir(repoDir, commit string) string {
	return filepath.Join(repoDir, "snapshots", commit)
}

func pointerPath(repoDir, commit, file string) string {
	return filepath.Join(snapshotDir(repoDir, commit), filepath.FromSlash(file))
}

func refPath(repoDir, revision string) string {
	return filepath.Join(repoDir, "refs", filepath.FromSlash(revision))
}

// readRef returns the commit that refs/<revision> records, or an error
// wrapping fs.ErrNotExist.
func readRef(repoDir, revision string) (string, error) {
	b, err := os.ReadFile(refPath(repoDir, revision))
	if err != nil {
		return "", err
	}
	commit := strings.TrimSpace(string(b))
	if !isCommitHash(commit) {
		return "", fmt.Errorf("%s: not a commit hash", refPath(repoDir, revision))
	}
	return commit, nil
}

// writeRef records that revision resolved to commit, unless it is a
// commit itself or already recorded.
func writeRef(repoDir, revision, commit string) error {
	if revision == commit {
		return nil
	}
	if old, err := readRef(repoDir, revision); err == nil && old == commit {
		return nil
	}
	p := refPath(repoDir, revision)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("write ref: %w", err)
	}
	return atomicfile.Write(p, 0o644, func(w io.Writer) error {
		_, err := io.WriteString(w, commit)
		return err
	})
}

// cachedCommit returns the commit a revision resolves to from the cache
// alone: the revision itself when it is a commit hash, else refs/<revision>.
func cachedCommit(repoDir, revision string) (string, error) {
	if isCommitHash(revision) {
		return revision, nil
	}
	return readRef(repoDir, revision)
}

// exists reports whether p names a file or folder, following symbolic
// links (a link to a removed blob does not exist).
func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// linkPointer makes pointer a relative symbolic link to blob, replacing
// whatever is there in one rename, so that concurrent writers of the same
// snapshot do not trip over each other. Where symbolic links cannot be
// made (Windows without the privilege), it makes a hard link, and failing
// that a copy.
func linkPointer(blob, pointer string) error {
	dir := filepath.Dir(pointer)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("link %s: %w", pointer, err)
	}
	rel, err := filepath.Rel(dir, blob)
	if err != nil {
		return fmt.Errorf("link %s: %w", pointer, err)
	}
	if target, err := os.Readlink(pointer); err == nil && target == rel && exists(pointer) {
		return nil
	}
	tmp, err := tempName(dir, filepath.Base(pointer))
	if err != nil {
		return fmt.Errorf("link %s: %w", pointer, err)
	}
	if err := os.Symlink(rel, tmp); err != nil {
		if err := os.Link(blob, tmp); err != nil {
			if err := copyFile(blob, tmp); err != nil {
				return fmt.Errorf("link %s: %w", pointer, err)
			}
		}
	}
	if err := os.Rename(tmp, pointer); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("link %s: %w", pointer, err)
	}
	return nil
}

// tempName returns an unused name in dir for a temporary entry.
func tempName(dir, base string) (string, error) {
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return "", err
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return "", err
	}
	return name, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(dst)
		return err
	}
	return out.Close()
}

// cachedFiles lists the files of a snapshot folder, for ListFiles in
// offline mode.
func cachedFiles(dir string) ([]RepoFile, error) {
	var files []RepoFile
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		st, err := os.Stat(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // a link to a removed blob
			}
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		f := RepoFile{Path: filepath.ToSlash(rel), Size: st.Size()}
		if target, err := os.Readlink(p); err == nil {
			if etag := filepath.Base(target); isSHA256(etag) {
				f.SHA256 = etag
			} else if isCommitHash(etag) {
				f.BlobID = etag
			}
		}
		files = append(files, f)
		return nil
	})
	return files, err
}
