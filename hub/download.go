package hub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// fileMeta is what a HEAD request on a file's resolve URL tells.
type fileMeta struct {
	commit   string // X-Repo-Commit
	etag     string // X-Linked-Etag or ETag, normalized: the blob's name
	size     int64  // X-Linked-Size or Content-Length; -1 when unknown
	location string // where to GET the bytes (the CDN for LFS files)
}

// resolveURL is {endpoint}/{repo}/resolve/{revision}/{path}.
func (c *Client) resolveURL(repoID, revision, file string) string {
	segs := strings.Split(file, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return c.endpoint + "/" + repoID + "/resolve/" + url.PathEscape(revision) + "/" + strings.Join(segs, "/")
}

// fileMetadata sends the HEAD request that hf_hub_download sends, without
// following a redirect to another host.
func (c *Client) fileMetadata(ctx context.Context, repoID, revision, file string) (fileMeta, error) {
	what := request{repoID: repoID, revision: revision, file: file, hub: true}
	resp, err := c.send(ctx, http.MethodHead, c.resolveURL(repoID, revision, file), nil, false)
	if err != nil {
		return fileMeta{}, fmt.Errorf("metadata of %s in %s at %s: %w", file, repoID, revision, err)
	}
	defer closeBody(resp)
	var m fileMeta
	switch {
	case isRedirect(resp.StatusCode):
		loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		if err != nil {
			return fileMeta{}, fmt.Errorf("metadata of %s in %s: bad redirect: %w", file, repoID, err)
		}
		m.location = loc.String()
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		m.location = resp.Request.URL.String()
	default:
		return fileMeta{}, errorFromResponse(resp, what, c.endpoint)
	}
	m.commit = resp.Header.Get("X-Repo-Commit")
	if !isCommitHash(m.commit) {
		return fileMeta{}, fmt.Errorf("metadata of %s in %s: the answer from %s has no valid X-Repo-Commit header (%q); is HF_ENDPOINT a Hugging Face Hub?",
			file, repoID, c.endpoint, m.commit)
	}
	etag := resp.Header.Get("X-Linked-Etag")
	if etag == "" {
		etag = resp.Header.Get("ETag")
	}
	if m.etag, err = normalizeETag(etag); err != nil {
		return fileMeta{}, fmt.Errorf("metadata of %s in %s: %w", file, repoID, err)
	}
	m.size = -1
	size := resp.Header.Get("X-Linked-Size")
	if size == "" && !isRedirect(resp.StatusCode) {
		size = resp.Header.Get("Content-Length")
	}
	if n, err := strconv.ParseInt(size, 10, 64); err == nil && n >= 0 {
		m.size = n
	}
	return m, nil
}

// Download fetches one file of a model repository into the cache, like
// huggingface_hub's hf_hub_download, and returns its path in the snapshot
// folder. revision is a branch, tag or commit ("" means "main"). A file
// already in the cache is not downloaded again; in offline mode, or when
// the Hub cannot be reached, the cached copy is returned if there is one.
func (c *Client) Download(ctx context.Context, repoID, revision, file string) (string, error) {
	revision, err := checkArgs(repoID, revision)
	if err != nil {
		return "", err
	}
	if err := validateRepoPath(file); err != nil {
		return "", err
	}
	dir := c.repoDir(repoID)
	fromCache := func() (string, bool) {
		commit, err := cachedCommit(dir, revision)
		if err != nil {
			return "", false
		}
		p := pointerPath(dir, commit, file)
		return p, exists(p)
	}
	if c.offline {
		if p, ok := fromCache(); ok {
			return p, nil
		}
		return "", c.notCached(repoID, revision, file)
	}
	if isCommitHash(revision) {
		if p, ok := fromCache(); ok {
			return p, nil
		}
	}
	meta, err := c.fileMetadata(ctx, repoID, revision, file)
	if err != nil {
		if isNetworkError(err) {
			if p, ok := fromCache(); ok {
				return p, nil
			}
		}
		return "", err
	}
	if err := writeRef(dir, revision, meta.commit); err != nil {
		return "", err
	}
	f := RepoFile{Path: file, Size: meta.size}
	if err := c.ensureFile(ctx, repoID, meta.commit, f, &meta, nil); err != nil {
		return "", err
	}
	return pointerPath(dir, meta.commit, file), nil
}

// ensureFile puts one file of a commit into the cache: a link in the
// snapshot folder to its blob, downloading the blob unless some snapshot
// already has it. meta is the file's metadata if already known.
func (c *Client) ensureFile(ctx context.Context, repoID, commit string, f RepoFile, meta *fileMeta, progress func(ProgressEvent)) error {
	dir := c.repoDir(repoID)
	pointer := pointerPath(dir, commit, f.Path)
	cached := func() {
		c.report(progress, ProgressEvent{File: f.Path, Done: f.Size, Total: f.Size, Finished: true, Cached: true})
	}
	if exists(pointer) {
		cached()
		return nil
	}
	if etag := f.etag(); etag != "" && exists(blobPath(dir, etag)) {
		cached()
		return linkPointer(blobPath(dir, etag), pointer)
	}
	if meta == nil {
		m, err := c.fileMetadata(ctx, repoID, commit, f.Path)
		if err != nil {
			return err
		}
		meta = &m
	}
	if f.Size < 0 {
		f.Size = meta.size
	}
	want, err := expectedSHA256(f, *meta)
	if err != nil {
		return err
	}
	blob := blobPath(dir, meta.etag)
	if exists(blob) {
		cached()
		return linkPointer(blob, pointer)
	}
	if err := os.MkdirAll(filepath.Dir(blob), 0o755); err != nil {
		return fmt.Errorf("download %s: %w", f.Path, err)
	}
	unlock, err := lockFile(ctx, blob+".lock")
	if err != nil {
		return fmt.Errorf("download %s: %w", f.Path, err)
	}
	defer unlock()
	// Another writer may have finished the blob while this one waited.
	if !exists(blob) {
		what := request{repoID: repoID, revision: commit, file: f.Path}
		if err := c.fetch(ctx, what, *meta, want, blob+".incomplete", blob, progress); err != nil {
			return err
		}
	}
	if err := linkPointer(blob, pointer); err != nil {
		return err
	}
	c.report(progress, ProgressEvent{File: f.Path, Done: meta.size, Total: meta.size, Finished: true})
	return nil
}

// expectedSHA256 returns the sha256 a file's bytes must have: the one the
// listing gave for an LFS file, or the etag when it is a sha256. It is
// empty for small files, which are checked by size only.
func expectedSHA256(f RepoFile, meta fileMeta) (string, error) {
	want := f.SHA256
	if isSHA256(meta.etag) {
		if want != "" && want != meta.etag {
			return "", fmt.Errorf("download %s: the Hub lists sha256 %s but serves etag %s", f.Path, want, meta.etag)
		}
		want = meta.etag
	}
	if want != "" && f.Size >= 0 && meta.size >= 0 && f.Size != meta.size {
		return "", fmt.Errorf("download %s: the Hub lists %d bytes but serves %d", f.Path, f.Size, meta.size)
	}
	return want, nil
}

// fetch downloads meta.location into incomplete, resuming from the bytes
// already there with a Range request, retries dropped connections, checks
// the size and (when wantSHA256 is set) the sha256, and renames the file
// to dest. On a mismatch the incomplete file is removed, so that the next
// attempt starts afresh.
func (c *Client) fetch(ctx context.Context, what request, meta fileMeta, wantSHA256, incomplete, dest string, progress func(ProgressEvent)) error {
	fail := func(err error) error {
		return fmt.Errorf("download %s from %s: %w", what.file, what.repoID, err)
	}
	f, err := os.OpenFile(incomplete, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fail(err)
	}
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	st, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	have := st.Size()
	var h hash.Hash
	if wantSHA256 != "" {
		h = sha256.New()
	}
	restart := func() error {
		have = 0
		if h != nil {
			h.Reset()
		}
		if err := f.Truncate(0); err != nil {
			return err
		}
		_, err := f.Seek(0, io.SeekStart)
		return err
	}
	if meta.size >= 0 && have > meta.size {
		if err := restart(); err != nil {
			return fail(err)
		}
	}
	if have > 0 && h != nil {
		if _, err := io.Copy(h, io.NewSectionReader(f, 0, have)); err != nil {
			return fail(err)
		}
	}
	if _, err := f.Seek(have, io.SeekStart); err != nil {
		return fail(err)
	}
	c.report(progress, ProgressEvent{File: what.file, Done: have, Total: meta.size})

	buf := make([]byte, 256<<10)
	for attempt := 0; meta.size < 0 || have < meta.size; {
		header := http.Header{}
		if have > 0 {
			header.Set("Range", fmt.Sprintf("bytes=%d-", have))
		}
		resp, err := c.send(ctx, http.MethodGet, meta.location, header, true)
		if err != nil {
			return fail(err)
		}
		switch code := resp.StatusCode; {
		case code == http.StatusPartialContent && have > 0 && rangeStart(resp.Header.Get("Content-Range")) == have:
			// Resumed where the file stops.
		case code == http.StatusOK:
			// The whole file (the server ignored the range): start over.
			if err := restart(); err != nil {
				closeBody(resp)
				return fail(err)
			}
		case code == http.StatusPartialContent || code == http.StatusRequestedRangeNotSatisfiable && have > 0:
			// Some other range, or none the server can serve: ask for the
			// whole file.
			closeBody(resp)
			if err := restart(); err != nil {
				return fail(err)
			}
			if attempt++; attempt > c.maxRetries {
				return fail(fmt.Errorf("the server does not resume at byte offsets (HTTP %d)", code))
			}
			continue
		default:
			what.hub = c.isEndpoint(resp.Request.URL)
			return errorFromResponse(resp, what, c.endpoint)
		}
		done, rerr, werr := c.copyBody(f, h, resp.Body, buf, &have, meta.size, what.file, progress)
		resp.Body.Close()
		if werr != nil {
			return fail(werr)
		}
		if meta.size >= 0 && have > meta.size {
			f.Close()
			f = nil
			os.Remove(incomplete)
			return fail(fmt.Errorf("%w: got more than the %d bytes announced", ErrChecksum, meta.size))
		}
		if done && (meta.size < 0 || have == meta.size) {
			break
		}
		// A dropped connection or a short body: resume after a pause.
		if ctx.Err() != nil {
			return fail(ctx.Err())
		}
		attempt++
		if attempt > c.maxRetries {
			if rerr == nil {
				rerr = io.ErrUnexpectedEOF
			}
			return fail(fmt.Errorf("connection lost at byte %d of %d, gave up after %d attempts (the next run resumes): %w",
				have, meta.size, attempt, rerr))
		}
		if err := c.sleep(ctx, attempt-1); err != nil {
			return fail(err)
		}
	}

	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		f = nil
		return fail(err)
	}
	f = nil
	if h != nil {
		if got := hex.EncodeToString(h.Sum(nil)); got != wantSHA256 {
			os.Remove(incomplete)
			return fail(fmt.Errorf("%w: sha256 of the downloaded bytes is %s, want %s; the file was not kept", ErrChecksum, got, wantSHA256))
		}
	}
	if err := os.Rename(incomplete, dest); err != nil {
		return fail(err)
	}
	return nil
}

// copyBody appends body to f (and h), advancing *have. done reports that
// the body ended normally; rerr is the read error that cut it short, werr
// a local write error.
func (c *Client) copyBody(f *os.File, h hash.Hash, body io.Reader, buf []byte, have *int64, total int64, file string, progress func(ProgressEvent)) (done bool, rerr, werr error) {
	const every = 1 << 20
	last := *have
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := f.Write(buf[:n]); werr != nil {
				return false, nil, werr
			}
			if h != nil {
				h.Write(buf[:n])
			}
			*have += int64(n)
			if *have-last >= every || *have == total {
				last = *have
				c.report(progress, ProgressEvent{File: file, Done: *have, Total: total})
			}
			if total >= 0 && *have > total {
				return false, nil, nil
			}
		}
		if err == io.EOF {
			return true, nil, nil
		}
		if err != nil {
			return false, err, nil
		}
	}
}

// rangeStart returns the first byte of a Content-Range "bytes a-b/n"
// header, or -1.
func rangeStart(h string) int64 {
	s, ok := strings.CutPrefix(strings.TrimSpace(h), "bytes ")
	if !ok {
		return -1
	}
	a, _, ok := strings.Cut(s, "-")
	if !ok {
		return -1
	}
	n, err := strconv.ParseInt(strings.TrimSpace(a), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

func (c *Client) notCached(repoID, revision, file string) error {
	what := fmt.Sprintf("repository %q at revision %q", repoID, revision)
	if file != "" {
		what = fmt.Sprintf("file %q of %s", file, what)
	}
	return fmt.Errorf("%w: offline mode (HF_HUB_OFFLINE) is on and %s is not in the cache %s; download it once online first",
		ErrNotCached, what, c.cacheDir)
}

// checkArgs validates a repository id and revision and returns the
// revision with its default applied.
func checkArgs(repoID, revision string) (string, error) {
	if err := ValidateRepoID(repoID); err != nil {
		return "", err
	}
	if revision == "" {
		revision = DefaultRevision
	}
	if err := validateRevision(revision); err != nil {
		return "", err
	}
	return revision, nil
}
