package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// maxListing bounds the size of a repository listing the client reads.
const maxListing = 64 << 20

// RepoFile is one file of a repository at a revision.
type RepoFile struct {
	// Path is the file's path in the repository, with forward slashes.
	Path string
	// Size is the file's size in bytes, or -1 when unknown.
	Size int64
	// BlobID is the file's git blob sha1, when the listing gave it.
	BlobID string
	// SHA256 is set for files stored with Git LFS: the sha256 of their
	// contents, which names their blob in the cache.
	SHA256 string
}

// IsLFS reports whether the file is stored with Git LFS.
func (f RepoFile) IsLFS() bool { return f.SHA256 != "" }

// etag returns the name the file's blob has in the cache, if the listing
// tells it.
func (f RepoFile) etag() string {
	if f.SHA256 != "" {
		return f.SHA256
	}
	return f.BlobID
}

// ListFiles returns the files of a model repository at a revision ("" means
// "main"), sorted by path, and the commit the revision resolves to. It asks
// GET {endpoint}/api/models/{repo}/revision/{revision}?blobs=True (as
// huggingface_hub's model_info with files_metadata). In
// offline mode it lists the cached snapshot instead.
func (c *Client) ListFiles(ctx context.Context, repoID, revision string) ([]RepoFile, string, error) {
	revision, err := checkArgs(repoID, revision)
	if err != nil {
		return nil, "", err
	}
	if c.offline {
		dir := c.repoDir(repoID)
		commit, err := cachedCommit(dir, revision)
		if err != nil || !exists(snapshotDir(dir, commit)) {
			return nil, "", c.notCached(repoID, revision, "")
		}
		files, err := cachedFiles(snapshotDir(dir, commit))
		if err != nil {
			return nil, "", fmt.Errorf("list cached %s: %w", repoID, err)
		}
		return files, commit, nil
	}
	u := c.endpoint + "/api/models/" + repoID + "/revision/" + url.PathEscape(revision) + "?blobs=True"
	resp, err := c.send(ctx, http.MethodGet, u, http.Header{"Accept": {"application/json"}}, false)
	if err != nil {
		return nil, "", fmt.Errorf("list %s at %s: %w", repoID, revision, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", errorFromResponse(resp, request{repoID: repoID, revision: revision, hub: true}, c.endpoint)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxListing+1))
	if err != nil {
		return nil, "", fmt.Errorf("list %s at %s: %w", repoID, revision, err)
	}
	if len(body) > maxListing {
		return nil, "", fmt.Errorf("list %s at %s: listing larger than %d bytes", repoID, revision, maxListing)
	}
	files, commit, err := ParseRevisionInfo(body)
	if err != nil {
		return nil, "", fmt.Errorf("list %s at %s: %w", repoID, revision, err)
	}
	return files, commit, nil
}

// ParseRevisionInfo decodes the Hub's answer to
// /api/models/{repo}/revision/{revision}: the commit ("sha") and the files
// ("siblings", with sizes and LFS sha256 when asked with blobs=True). It
// rejects answers whose commit is not a 40-digit hash or whose file paths
// could escape a folder, as they are used as local names.
func ParseRevisionInfo(data []byte) (files []RepoFile, commit string, err error) {
	var info struct {
		SHA      string `json:"sha"`
		Siblings []struct {
			RFilename string `json:"rfilename"`
			Size      *int64 `json:"size"`
			BlobID    string `json:"blobId"`
			LFS       *struct {
				SHA256 string `json:"sha256"`
				Size   *int64 `json:"size"`
			} `json:"lfs"`
		} `json:"siblings"`
	}
	if err := json.Unmarshal(data, &info); err != nil {
		return nil, "", fmt.Errorf("decode repository info: %w", err)
	}
	if !isCommitHash(info.SHA) {
		return nil, "", fmt.Errorf("repository info: commit %q is not a 40-digit hex hash", info.SHA)
	}
	seen := make(map[string]bool, len(info.Siblings))
	for _, s := range info.Siblings {
		if err := validateRepoPath(s.RFilename); err != nil {
			return nil, "", fmt.Errorf("repository info: %w", err)
		}
		if seen[s.RFilename] {
			return nil, "", fmt.Errorf("repository info: file %q listed twice", s.RFilename)
		}
		seen[s.RFilename] = true
		f := RepoFile{Path: s.RFilename, Size: -1}
		if s.Size != nil && *s.Size >= 0 {
			f.Size = *s.Size
		}
		if id := strings.ToLower(s.BlobID); isCommitHash(id) {
			f.BlobID = id
		}
		if s.LFS != nil {
			sum := strings.ToLower(s.LFS.SHA256)
			if !isSHA256(sum) {
				return nil, "", fmt.Errorf("repository info: file %q: LFS sha256 %q is not a 64-digit hex digest", s.RFilename, s.LFS.SHA256)
			}
			f.SHA256 = sum
			if s.LFS.Size != nil && *s.LFS.Size >= 0 {
				f.Size = *s.LFS.Size
			}
		}
		files = append(files, f)
	}
	slices.SortFunc(files, func(a, b RepoFile) int { return strings.Compare(a.Path, b.Path) })
	return files, info.SHA, nil
}
