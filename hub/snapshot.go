package hub

import (
	"context"
	"fmt"
	"os"
	"sync"
)

// SnapshotOptions selects what Snapshot downloads and where.
type SnapshotOptions struct {
	// Include keeps only files matching at least one of these patterns
	// (all files when empty); Exclude drops files matching any of them.
	// Patterns follow Match; one ending in "/" matches a whole folder.
	Include, Exclude []string
	// LocalDir, if set, receives plain copies of the files at their
	// repository paths instead of the cache, as huggingface_hub's
	// local_dir: bookkeeping goes to LocalDir/.cache/huggingface/download.
	LocalDir string
	// Progress, if set, replaces the client's progress callback for this
	// call.
	Progress func(ProgressEvent)
}

// Snapshot downloads the files of a model repository at a revision ("" means
// "main") that opt selects, several at once, and returns the folder that
// holds them: the cache's models--owner--name/snapshots/<commit>, or
// opt.LocalDir. Files already present are not downloaded again.
//
// In offline mode the cached snapshot is returned if the cache knows the
// revision; the same happens when the Hub cannot be reached at all. The
// first failing file cancels the others; what was downloaded stays, and
// interrupted files resume on the next call.
func (c *Client) Snapshot(ctx context.Context, repoID, revision string, opt SnapshotOptions) (string, error) {
	revision, err := checkArgs(repoID, revision)
	if err != nil {
		return "", err
	}
	dir := c.repoDir(repoID)
	fromCache := func() (string, bool) {
		if opt.LocalDir != "" {
			return opt.LocalDir, exists(opt.LocalDir)
		}
		commit, err := cachedCommit(dir, revision)
		if err != nil {
			return "", false
		}
		p := snapshotDir(dir, commit)
		return p, exists(p)
	}
	if c.offline {
		if p, ok := fromCache(); ok {
			return p, nil
		}
		return "", c.notCached(repoID, revision, "")
	}

	files, commit, err := c.ListFiles(ctx, repoID, revision)
	if err != nil {
		if isNetworkError(err) {
			if p, ok := fromCache(); ok {
				return p, nil
			}
		}
		return "", fmt.Errorf("snapshot %s: %w", repoID, err)
	}
	paths := make([]string, len(files))
	byPath := make(map[string]RepoFile, len(files))
	for i, f := range files {
		paths[i] = f.Path
		byPath[f.Path] = f
	}
	selected := FilterPaths(paths, opt.Include, opt.Exclude)

	target := snapshotDir(dir, commit)
	if opt.LocalDir != "" {
		target = opt.LocalDir
	} else if err := writeRef(dir, revision, commit); err != nil {
		return "", fmt.Errorf("snapshot %s: %w", repoID, err)
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return "", fmt.Errorf("snapshot %s: %w", repoID, err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
		sem      = make(chan struct{}, c.concurrency)
	)
	for _, p := range selected {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		f := byPath[p]
		wg.Go(func() {
			defer func() { <-sem }()
			var err error
			if opt.LocalDir != "" {
				err = c.ensureLocalFile(ctx, repoID, commit, f, opt.LocalDir, opt.Progress)
			} else {
				err = c.ensureFile(ctx, repoID, commit, f, nil, opt.Progress)
			}
			if err != nil {
				once.Do(func() {
					firstErr = err
					cancel()
				})
			}
		})
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		return "", fmt.Errorf("snapshot %s at %s: %w", repoID, revision, firstErr)
	}
	return target, nil
}
