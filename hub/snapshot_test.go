package hub_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pigment-sd/pigment/hub"
	"github.com/pigment-sd/pigment/hub/hubtest"
)

// newClient returns a client of srv with its own cache and retry delays
// short enough for tests.
func newClient(t *testing.T, srv *hubtest.Server, change ...func(*hub.Options)) *hub.Client {
	t.Helper()
	opts := hub.Options{
		Endpoint:       srv.URL,
		CacheDir:       t.TempDir(),
		RetryBaseDelay: time.Millisecond,
		RetryMaxDelay:  4 * time.Millisecond,
	}
	for _, f := range change {
		f(&opts)
	}
	return hub.NewClient(opts)
}

// checkTree checks that dir holds exactly the files of want (by path) with
// the same contents, ignoring dot folders.
func checkTree(t *testing.T, dir string, want map[string][]byte) {
	t.Helper()
	got := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && p != dir {
			return filepath.SkipDir
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		got[rel] = true
		b, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("read %s: %v", rel, err)
			return nil
		}
		if w, ok := want[rel]; !ok {
			t.Errorf("unexpected file %s", rel)
		} else if !bytes.Equal(b, w) {
			t.Errorf("%s: contents differ from the Hub's (%d bytes, want %d)", rel, len(b), len(w))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p := range want {
		if !got[p] {
			t.Errorf("missing file %s", p)
		}
	}
}

// checkBlobs checks that blobs/ holds exactly one blob per distinct
// content, named by its etag, with no incomplete or lock files left.
func checkBlobs(t *testing.T, srv *hubtest.Server, repoDir string, files map[string][]byte) {
	t.Helper()
	want := map[string]bool{}
	for _, b := range files {
		want[srv.ETag(b)] = true
	}
	entries, err := os.ReadDir(filepath.Join(repoDir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, slices.Sorted(maps.Keys(want))) {
		t.Errorf("blobs = %q\nwant %q", names, slices.Sorted(maps.Keys(want)))
	}
}

func subset(files map[string][]byte, paths ...string) map[string][]byte {
	out := map[string][]byte{}
	for _, p := range paths {
		out[p] = files[p]
	}
	return out
}

// count returns the number of recorded requests that match.
func count(reqs []hubtest.Request, match func(hubtest.Request) bool) int {
	n := 0
	for _, r := range reqs {
		if match(r) {
			n++
		}
	}
	return n
}

func isDownload(r hubtest.Request) bool {
	return r.Method == "GET" && (r.Server == "cdn" || strings.Contains(r.Path, "/resolve/"))
}

func TestSnapshotCacheLayout(t *testing.T) {
	files := hubtest.DiffusersFiles()
	srv := hubtest.NewServer(t, files, hubtest.Options{})
	c := newClient(t, srv)
	ctx := context.Background()

	dir, err := c.Snapshot(ctx, srv.RepoID, "", hub.SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	repoDir := filepath.Join(c.CacheDir(), "models--pigment-test--tiny-model")
	if want := filepath.Join(repoDir, "snapshots", srv.Commit()); dir != want {
		t.Errorf("Snapshot = %s, want %s", dir, want)
	}
	checkTree(t, dir, files)
	checkBlobs(t, srv, repoDir, files)
	if b, err := os.ReadFile(filepath.Join(repoDir, "refs", "main")); err != nil || string(b) != srv.Commit() {
		t.Errorf("refs/main = %q, %v; want %q", b, err, srv.Commit())
	}
	for p, b := range files {
		target, err := os.Readlink(filepath.Join(dir, filepath.FromSlash(p)))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		want := strings.Repeat("../", strings.Count(p, "/")+2) + "blobs/" + srv.ETag(b)
		if filepath.ToSlash(target) != want {
			t.Errorf("%s links to %s, want %s", p, target, want)
		}
	}
	lfs := 0
	for _, b := range files {
		if srv.IsLFS(len(b)) {
			lfs++
		}
	}
	if n := count(srv.Requests(), func(r hubtest.Request) bool { return r.Server == "cdn" }); n != lfs || lfs == 0 {
		t.Errorf("%d CDN requests, want one per LFS file (%d)", n, lfs)
	}

	// A second snapshot lists the repository and downloads nothing.
	srv.ResetRequests()
	if _, err := c.Snapshot(ctx, srv.RepoID, "main", hub.SnapshotOptions{}); err != nil {
		t.Fatal(err)
	}
	if reqs := srv.Requests(); len(reqs) != 1 || !strings.HasPrefix(reqs[0].Path, "/api/models/") {
		t.Errorf("second snapshot made requests %+v, want the listing only", reqs)
	}
}

func TestSnapshotNewCommitReusesBlobs(t *testing.T) {
	files := hubtest.DiffusersFiles()
	srv := hubtest.NewServer(t, files, hubtest.Options{})
	c := newClient(t, srv)
	ctx := context.Background()
	oldDir, err := c.Snapshot(ctx, srv.RepoID, "main", hub.SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}

	next := maps.Clone(files)
	next["unet/config.json"] = []byte(`{"sample_size": 16}`)
	next["vae/diffusion_pytorch_model.safetensors"] = bytes.Repeat([]byte{7}, 9000)
	next["new/file.txt"] = []byte("new")
	commit := srv.SetFiles(next)
	srv.ResetRequests()
	dir, err := c.Snapshot(ctx, srv.RepoID, "main", hub.SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(dir) != commit {
		t.Errorf("snapshot %s, want commit %s", dir, commit)
	}
	checkTree(t, dir, next)
	checkTree(t, oldDir, files)
	var fetched []string
	for _, r := range srv.Requests() {
		if r.Method == "HEAD" || isDownload(r) {
			fetched = append(fetched, r.File)
		}
	}
	slices.Sort(fetched)
	fetched = slices.Compact(fetched)
	want := []string{"new/file.txt", "unet/config.json", "vae/diffusion_pytorch_model.safetensors"}
	if !slices.Equal(fetched, want) {
		t.Errorf("files requested for the new commit = %q, want %q", fetched, want)
	}
	b, _ := os.ReadFile(filepath.Join(c.CacheDir(), hub.RepoFolderName(srv.RepoID), "refs", "main"))
	if string(b) != commit {
		t.Errorf("refs/main = %q, want %q", b, commit)
	}
}

func TestSnapshotPatterns(t *testing.T) {
	files := hubtest.DiffusersFiles()
	srv := hubtest.NewServer(t, files, hubtest.Options{})
	tests := []struct {
		name             string
		include, exclude []string
		want             []string
	}{
		{"configs", []string{"*.json"}, nil, []string{
			"feature_extractor/preprocessor_config.json", "model_index.json", "scheduler/scheduler_config.json",
			"text_encoder/config.json", "tokenizer/vocab.json", "unet/config.json", "vae/config.json"}},
		{"one folder", []string{"unet/*"}, []string{"*.fp16.*", "*non_ema*"}, []string{
			"unet/config.json", "unet/diffusion_pytorch_model.safetensors"}},
		{"fp16 variant", []string{"*.json", "*.txt", "*.fp16.safetensors"}, []string{"safety_checker/", "feature_extractor/"}, []string{
			"model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json", "text_encoder/model.fp16.safetensors",
			"tokenizer/merges.txt", "tokenizer/vocab.json", "unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors",
			"vae/config.json", "vae/diffusion_pytorch_model.fp16.safetensors"}},
		{"class", []string{"[mR]*"}, nil, []string{"README.md", "model_index.json"}},
		{"nothing", []string{"nope/*"}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, srv)
			dir, err := c.Snapshot(context.Background(), srv.RepoID, "main", hub.SnapshotOptions{Include: tt.include, Exclude: tt.exclude})
			if err != nil {
				t.Fatal(err)
			}
			checkTree(t, dir, subset(files, tt.want...))
		})
	}
}

func TestDownload(t *testing.T) {
	files := hubtest.DiffusersFiles()
	srv := hubtest.NewServer(t, files, hubtest.Options{})
	c := newClient(t, srv)
	ctx := context.Background()
	for _, p := range []string{"unet/config.json", "unet/diffusion_pytorch_model.safetensors"} {
		got, err := c.Download(ctx, srv.RepoID, "main", p)
		if err != nil {
			t.Fatal(err)
		}
		want := filepath.Join(c.CacheDir(), hub.RepoFolderName(srv.RepoID), "snapshots", srv.Commit(), filepath.FromSlash(p))
		if got != want {
			t.Errorf("Download(%s) = %s, want %s", p, got, want)
		}
		if b, err := os.ReadFile(got); err != nil || !bytes.Equal(b, files[p]) {
			t.Errorf("%s: contents differ (%v)", p, err)
		}
	}

	// By commit, a cached file needs no request; by branch, one HEAD.
	srv.ResetRequests()
	if _, err := c.Download(ctx, srv.RepoID, srv.Commit(), "unet/config.json"); err != nil {
		t.Fatal(err)
	}
	if reqs := srv.Requests(); len(reqs) != 0 {
		t.Errorf("cached download by commit made requests %+v", reqs)
	}
	if _, err := c.Download(ctx, srv.RepoID, "main", "unet/config.json"); err != nil {
		t.Fatal(err)
	}
	if reqs := srv.Requests(); len(reqs) != 1 || reqs[0].Method != "HEAD" {
		t.Errorf("cached download by branch made requests %+v, want one HEAD", reqs)
	}
}

const bigFile = "unet/diffusion_pytorch_model.safetensors" // 20000 bytes, LFS

func TestResumeOnNextRun(t *testing.T) {
	files := hubtest.DiffusersFiles()
	srv := hubtest.NewServer(t, files, hubtest.Options{})
	c := newClient(t, srv, func(o *hub.Options) { o.MaxRetries = -1 })
	ctx := context.Background()
	only := hub.SnapshotOptions{Include: []string{bigFile}}
	srv.AddFault(hubtest.Fault{File: bigFile, CutAfter: 7000})

	if _, err := c.Snapshot(ctx, srv.RepoID, "main", only); err == nil {
		t.Fatal("snapshot with a dropped connection and no retries succeeded")
	}
	blob := filepath.Join(c.CacheDir(), hub.RepoFolderName(srv.RepoID), "blobs", hubtest.SHA256(files[bigFile]))
	st, err := os.Stat(blob + ".incomplete")
	if err != nil || st.Size() != 7000 {
		t.Fatalf("incomplete file after the cut: %v, %v; want 7000 bytes", st, err)
	}

	srv.ResetRequests()
	dir, err := c.Snapshot(ctx, srv.RepoID, "main", only)
	if err != nil {
		t.Fatal(err)
	}
	checkTree(t, dir, subset(files, bigFile))
	if n := count(srv.Requests(), func(r hubtest.Request) bool { return r.Server == "cdn" && r.Range == "bytes=7000-" }); n != 1 {
		t.Errorf("resumed with %d requests for bytes=7000-, want 1; requests %+v", n, srv.Requests())
	}
	if _, err := os.Stat(blob + ".incomplete"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("incomplete file left after success: %v", err)
	}
}

func TestResumeWithinRun(t *testing.T) {
	files := hubtest.DiffusersFiles()
	srv := hubtest.NewServer(t, files, hubtest.Options{})
	c := newClient(t, srv)
	// One cut of an LFS file on the CDN and one of a small file on the Hub.
	srv.AddFault(hubtest.Fault{File: bigFile, CutAfter: 12345})
	srv.AddFault(hubtest.Fault{File: "model_index.json", CutAfter: 10})
	dir, err := c.Snapshot(context.Background(), srv.RepoID, "main", hub.SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkTree(t, dir, files)
	reqs := srv.Requests()
	if count(reqs, func(r hubtest.Request) bool { return r.File == bigFile && r.Range == "bytes=12345-" }) != 1 ||
		count(reqs, func(r hubtest.Request) bool { return r.File == "model_index.json" && r.Range == "bytes=10-" }) != 1 {
		t.Errorf("no Range requests resumed the cut downloads: %+v", reqs)
	}
}

func TestResumeWhenServerIgnoresRange(t *testing.T) {
	files := hubtest.DiffusersFiles()
	srv := hubtest.NewServer(t, files, hubtest.Options{IgnoreRange: true})
	c := newClient(t, srv)
	srv.AddFault(hubtest.Fault{File: bigFile, CutAfter: 5000})
	dir, err := c.Snapshot(context.Background(), srv.RepoID, "main", hub.SnapshotOptions{Include: []string{bigFile}})
	if err != nil {
		t.Fatal(err)
	}
	checkTree(t, dir, subset(files, bigFile))
}

func TestChecksumMismatch(t *testing.T) {
	files := hubtest.DiffusersFiles()
	srv := hubtest.NewServer(t, files, hubtest.Options{})
	c := newClient(t, srv)
	ctx := context.Background()
	srv.AddFault(hubtest.Fault{File: bigFile, Corrupt: true})
	only := hub.SnapshotOptions{Include: []string{"unet/*"}}

	_, err := c.Snapshot(ctx, srv.RepoID, "main", only)
	if !errors.Is(err, hub.ErrChecksum) {
		t.Fatalf("snapshot of a corrupted file: %v, want ErrChecksum", err)
	}
	if !strings.Contains(err.Error(), bigFile) {
		t.Errorf("error %q does not name the file", err)
	}
	repoDir := filepath.Join(c.CacheDir(), hub.RepoFolderName(srv.RepoID))
	blob := filepath.Join(repoDir, "blobs", hubtest.SHA256(files[bigFile]))
	for _, p := range []string{blob, blob + ".incomplete", filepath.Join(repoDir, "snapshots", srv.Commit(), bigFile)} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s exists after a checksum mismatch (%v)", p, err)
		}
	}

	dir, err := c.Snapshot(ctx, srv.RepoID, "main", only)
	if err != nil {
		t.Fatal(err)
	}
	checkTree(t, dir, subset(files, "unet/config.json", bigFile, "unet/diffusion_pytorch_model.fp16.safetensors",
		"unet/diffusion_pytorch_model.non_ema.safetensors"))
}

func TestErrors(t *testing.T) {
	files := hubtest.DiffusersFiles()
	public := hubtest.NewServer(t, files, hubtest.Options{Token: "hf_good"})
	private := hubtest.NewServer(t, files, hubtest.Options{Token: "hf_good", Private: true})
	gated := hubtest.NewServer(t, files, hubtest.Options{Token: "hf_good", Gated: true})
	tests := []struct {
		name      string
		srv       *hubtest.Server
		token     string
		repo, rev string
		file      string // Download this file; Snapshot when empty
		want      error
		status    int
		mentions  []string
	}{
		{"unknown repo, no token", public, "", "nobody/nothing", "main", "", hub.ErrRepoNotFound, 401,
			[]string{"nobody/nothing", "no token sent", "HF_TOKEN"}},
		{"unknown repo, token", public, "hf_good", "nobody/nothing", "main", "", hub.ErrRepoNotFound, 404,
			[]string{"nobody/nothing", "a token was sent"}},
		{"private repo, no token", private, "", hubtest.DefaultRepoID, "main", "", hub.ErrRepoNotFound, 401,
			[]string{hubtest.DefaultRepoID, "no token sent"}},
		{"private repo, wrong token", private, "hf_bad", hubtest.DefaultRepoID, "main", "", hub.ErrRepoNotFound, 401,
			[]string{hubtest.DefaultRepoID, "a token was sent"}},
		{"gated repo, no token", gated, "", hubtest.DefaultRepoID, "main", "", hub.ErrGatedRepo, 401,
			[]string{hubtest.DefaultRepoID, "gated", "no token sent", "request access"}},
		{"gated repo, token without access", gated, "hf_bad", hubtest.DefaultRepoID, "main", "", hub.ErrGatedRepo, 403,
			[]string{hubtest.DefaultRepoID, "gated", "a token was sent", "request access"}},
		{"gated file, no token", gated, "", hubtest.DefaultRepoID, "main", "unet/config.json", hub.ErrGatedRepo, 401,
			[]string{hubtest.DefaultRepoID, "gated"}},
		{"unknown revision", public, "", hubtest.DefaultRepoID, "v9", "", hub.ErrRevisionNotFound, 404,
			[]string{hubtest.DefaultRepoID, `"v9"`}},
		{"unknown file", public, "", hubtest.DefaultRepoID, "main", "unet/missing.bin", hub.ErrEntryNotFound, 404,
			[]string{hubtest.DefaultRepoID, "unet/missing.bin", `"main"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, tt.srv, func(o *hub.Options) { o.Token = tt.token })
			var err error
			if tt.file == "" {
				_, err = c.Snapshot(context.Background(), tt.repo, tt.rev, hub.SnapshotOptions{})
			} else {
				_, err = c.Download(context.Background(), tt.repo, tt.rev, tt.file)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			var he *hub.HTTPError
			if !errors.As(err, &he) || he.StatusCode != tt.status || he.TokenSent != (tt.token != "") {
				t.Errorf("HTTPError = %+v, want status %d, token sent %v", he, tt.status, tt.token != "")
			}
			for _, m := range tt.mentions {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}

	// With the right token the private and gated repositories download.
	for _, srv := range []*hubtest.Server{private, gated} {
		c := newClient(t, srv, func(o *hub.Options) { o.Token = "hf_good" })
		if _, err := c.Snapshot(context.Background(), srv.RepoID, "main", hub.SnapshotOptions{Include: []string{"unet/*"}}); err != nil {
			t.Error(err)
		}
	}
}

func TestRetries(t *testing.T) {
	files := hubtest.DiffusersFiles()
	srv := hubtest.NewServer(t, files, hubtest.Options{})
	ctx := context.Background()

	// Two 503s (the listing, then its retry), then success; a 502 on a
	// HEAD and a 500 on the CDN are retried too.
	srv.AddFault(hubtest.Fault{Status: 503, Times: 2})
	srv.AddFault(hubtest.Fault{File: "unet/config.json", Method: "HEAD", Status: 502})
	srv.AddFault(hubtest.Fault{File: bigFile, Method: "GET", Status: 500})
	c := newClient(t, srv)
	dir, err := c.Snapshot(ctx, srv.RepoID, "main", hub.SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkTree(t, dir, files)
	if n := count(srv.Requests(), func(r hubtest.Request) bool { return r.Status >= 500 }); n != 4 {
		t.Errorf("%d server errors answered, want 4", n)
	}

	// A server that keeps failing is given up on after MaxRetries.
	srv.ResetRequests()
	srv.AddFault(hubtest.Fault{Status: 503, Times: 100})
	c = newClient(t, srv, func(o *hub.Options) { o.MaxRetries = 2 })
	_, err = c.Snapshot(ctx, srv.RepoID, "main", hub.SnapshotOptions{})
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("snapshot from a failing server: %v, want an HTTP 503 error", err)
	}
	if n := len(srv.Requests()); n != 3 {
		t.Errorf("%d requests, want 3 (one try and two retries)", n)
	}
}

func TestConcurrentSnapshots(t *testing.T) {
	files := hubtest.DiffusersFiles()
	// Two paths with the same contents share one blob.
	files["unet_copy/diffusion_pytorch_model.safetensors"] = files[bigFile]
	files["unet_copy/config.json"] = files["unet/config.json"]
	srv := hubtest.NewServer(t, files, hubtest.Options{})
	cache := t.TempDir()
	var (
		wg   sync.WaitGroup
		dirs [4]string
		errs [4]error
	)
	for i := range dirs {
		// Separate clients, as separate processes would have.
		c := newClient(t, srv, func(o *hub.Options) { o.CacheDir = cache; o.Concurrency = 3 })
		wg.Go(func() {
			dirs[i], errs[i] = c.Snapshot(context.Background(), srv.RepoID, "main", hub.SnapshotOptions{})
		})
	}
	wg.Wait()
	for i := range dirs {
		if errs[i] != nil {
			t.Fatalf("snapshot %d: %v", i, errs[i])
		}
		if dirs[i] != dirs[0] {
			t.Errorf("snapshot %d in %s, snapshot 0 in %s", i, dirs[i], dirs[0])
		}
	}
	checkTree(t, dirs[0], files)
	checkBlobs(t, srv, filepath.Join(cache, hub.RepoFolderName(srv.RepoID)), files)
	// The blob locks let each blob be downloaded once in all.
	downloads := map[string]int{}
	for _, r := range srv.Requests() {
		if isDownload(r) && r.Status == 200 {
			downloads[srv.ETag(files[r.File])]++
		}
	}
	for etag, n := range downloads {
		if n != 1 {
			t.Errorf("blob %s downloaded %d times", etag, n)
		}
	}
}

func TestOffline(t *testing.T) {
	files := hubtest.DiffusersFiles()
	srv := hubtest.NewServer(t, files, hubtest.Options{})
	online := newClient(t, srv)
	ctx := context.Background()
	dir, err := online.Snapshot(ctx, srv.RepoID, "main", hub.SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv.ResetRequests()

	offline := hub.NewClient(hub.Options{Endpoint: srv.URL, CacheDir: online.CacheDir(), Offline: true})
	for _, rev := range []string{"", "main", srv.Commit()} {
		got, err := offline.Snapshot(ctx, srv.RepoID, rev, hub.SnapshotOptions{})
		if err != nil || got != dir {
			t.Errorf("offline Snapshot(%q) = %s, %v; want %s", rev, got, err, dir)
		}
	}
	p, err := offline.Download(ctx, srv.RepoID, "main", "unet/config.json")
	if err != nil || p != filepath.Join(dir, "unet", "config.json") {
		t.Errorf("offline Download = %s, %v", p, err)
	}
	listed, commit, err := offline.ListFiles(ctx, srv.RepoID, "main")
	if err != nil || commit != srv.Commit() || len(listed) != len(files) {
		t.Errorf("offline ListFiles = %d files, %s, %v; want %d files, %s", len(listed), commit, err, len(files), srv.Commit())
	}
	for _, f := range listed {
		if int(f.Size) != len(files[f.Path]) || f.IsLFS() != srv.IsLFS(len(files[f.Path])) {
			t.Errorf("offline ListFiles: %+v", f)
		}
	}

	for name, call := range map[string]func() error{
		"unknown revision": func() error { _, err := offline.Snapshot(ctx, srv.RepoID, "v2", hub.SnapshotOptions{}); return err },
		"unknown repo":     func() error { _, err := offline.Snapshot(ctx, "other/repo", "main", hub.SnapshotOptions{}); return err },
		"unknown file":     func() error { _, err := offline.Download(ctx, srv.RepoID, "main", "nope.bin"); return err },
	} {
		err := call()
		if !errors.Is(err, hub.ErrNotCached) || !strings.Contains(err.Error(), "HF_HUB_OFFLINE") {
			t.Errorf("%s offline: %v, want ErrNotCached naming HF_HUB_OFFLINE", name, err)
		}
	}
	if reqs := srv.Requests(); len(reqs) != 0 {
		t.Errorf("offline client made requests %+v", reqs)
	}
}

func TestUnreachableHubFallsBackToCache(t *testing.T) {
	files := hubtest.DiffusersFiles()
	srv := hubtest.NewServer(t, files, hubtest.Options{})
	online := newClient(t, srv)
	ctx := context.Background()
	dir, err := online.Snapshot(ctx, srv.RepoID, "main", hub.SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Port 1 on the loopback refuses connections.
	down := hub.NewClient(hub.Options{Endpoint: "http://127.0.0.1:1", CacheDir: online.CacheDir()})
	if got, err := down.Snapshot(ctx, srv.RepoID, "main", hub.SnapshotOptions{}); err != nil || got != dir {
		t.Errorf("Snapshot with the Hub down = %s, %v; want the cached %s", got, err, dir)
	}
	if got, err := down.Download(ctx, srv.RepoID, "main", "vae/config.json"); err != nil || got != filepath.Join(dir, "vae", "config.json") {
		t.Errorf("Download with the Hub down = %s, %v", got, err)
	}
	if _, err := down.Snapshot(ctx, "other/repo", "main", hub.SnapshotOptions{}); err == nil {
		t.Error("Snapshot of an uncached repository with the Hub down succeeded")
	}
}

func TestLocalDir(t *testing.T) {
	files := hubtest.DiffusersFiles()
	srv := hubtest.NewServer(t, files, hubtest.Options{})
	c := newClient(t, srv)
	ctx := context.Background()
	local := filepath.Join(t.TempDir(), "sd")
	dir, err := c.Snapshot(ctx, srv.RepoID, "main", hub.SnapshotOptions{LocalDir: local})
	if err != nil {
		t.Fatal(err)
	}
	if dir != local {
		t.Errorf("Snapshot = %s, want %s", dir, local)
	}
	checkTree(t, local, files)
	for p := range files {
		st, err := os.Lstat(filepath.Join(local, filepath.FromSlash(p)))
		if err != nil || !st.Mode().IsRegular() {
			t.Errorf("%s is not a plain file: %v", p, err)
		}
	}
	md, err := os.ReadFile(filepath.Join(local, ".cache", "huggingface", "download", "unet", "config.json.metadata"))
	if lines := strings.Split(string(md), "\n"); err != nil || len(lines) < 3 || lines[0] != srv.Commit() || lines[1] != srv.ETag(files["unet/config.json"]) {
		t.Errorf("metadata = %q, %v", md, err)
	}
	if entries, _ := os.ReadDir(c.CacheDir()); len(entries) != 0 {
		t.Errorf("local-dir mode wrote to the cache: %v", entries)
	}

	// Nothing is downloaded again; after a new commit only what changed.
	srv.ResetRequests()
	if _, err := c.Snapshot(ctx, srv.RepoID, "main", hub.SnapshotOptions{LocalDir: local}); err != nil {
		t.Fatal(err)
	}
	if reqs := srv.Requests(); len(reqs) != 1 {
		t.Errorf("second local-dir snapshot made requests %+v, want the listing only", reqs)
	}
	next := maps.Clone(files)
	next["vae/config.json"] = []byte(`{"latent_channels": 16}`)
	srv.SetFiles(next)
	srv.ResetRequests()
	if _, err := c.Snapshot(ctx, srv.RepoID, "main", hub.SnapshotOptions{LocalDir: local}); err != nil {
		t.Fatal(err)
	}
	checkTree(t, local, next)
	if n := count(srv.Requests(), isDownload); n != 1 {
		t.Errorf("%d downloads after one file changed, want 1", n)
	}
}

func TestTokenAndCDN(t *testing.T) {
	files := hubtest.DiffusersFiles()
	srv := hubtest.NewServer(t, files, hubtest.Options{Token: "hf_secret", Private: true})
	home := t.TempDir()
	if err := os.WriteFile(filepath.Join(home, "token"), []byte("hf_secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"HF_HOME": home, "HF_ENDPOINT": srv.URL + "/"}
	opts := hub.OptionsFromEnv(func(k string) string { return env[k] })
	if opts.Token != "hf_secret" || opts.Endpoint != srv.URL || opts.CacheDir != filepath.Join(home, "hub") {
		t.Fatalf("OptionsFromEnv = %+v", opts)
	}
	opts.RetryBaseDelay = time.Millisecond
	c := hub.NewClient(opts)
	dir, err := c.Snapshot(context.Background(), srv.RepoID, "main", hub.SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkTree(t, dir, files)
	// The token goes to the Hub only: hubtest fails the test if the CDN
	// sees it.
	for _, r := range srv.Requests() {
		if (r.Server == "hub") != (r.Authorization == "Bearer hf_secret") {
			t.Errorf("%s request %s %s with Authorization %q", r.Server, r.Method, r.Path, r.Authorization)
		}
	}
	if count(srv.Requests(), func(r hubtest.Request) bool { return r.Server == "cdn" }) == 0 {
		t.Error("no CDN requests")
	}
}

func TestMovedRepo(t *testing.T) {
	files := hubtest.DiffusersFiles()
	srv := hubtest.NewServer(t, files, hubtest.Options{MovedFrom: "old-owner/old-name", Token: "hf_x", Private: true})
	c := newClient(t, srv, func(o *hub.Options) { o.Token = "hf_x" })
	dir, err := c.Snapshot(context.Background(), "old-owner/old-name", "main", hub.SnapshotOptions{Include: []string{"unet/*"}})
	if err != nil {
		t.Fatal(err)
	}
	checkTree(t, dir, subset(files, "unet/config.json", bigFile, "unet/diffusion_pytorch_model.fp16.safetensors",
		"unet/diffusion_pytorch_model.non_ema.safetensors"))
	if !strings.Contains(dir, "models--old-owner--old-name") {
		t.Errorf("snapshot in %s, want the requested id's folder", dir)
	}
}

func TestProgress(t *testing.T) {
	files := hubtest.DiffusersFiles()
	srv := hubtest.NewServer(t, files, hubtest.Options{})
	var events []hub.ProgressEvent
	c := newClient(t, srv, func(o *hub.Options) {
		o.Progress = func(ev hub.ProgressEvent) { events = append(events, ev) } // calls are serialized
	})
	ctx := context.Background()
	if _, err := c.Snapshot(ctx, srv.RepoID, "main", hub.SnapshotOptions{}); err != nil {
		t.Fatal(err)
	}
	finished := map[string]hub.ProgressEvent{}
	for _, ev := range events {
		if ev.Finished {
			finished[ev.File] = ev
		} else if ev.Done > ev.Total || ev.Total != int64(len(files[ev.File])) {
			t.Errorf("event %+v out of range", ev)
		}
	}
	for p, b := range files {
		ev, ok := finished[p]
		if !ok || ev.Done != int64(len(b)) || ev.Total != int64(len(b)) || ev.Cached {
			t.Errorf("%s: final event %+v, want %d of %d bytes", p, ev, len(b), len(b))
		}
	}

	// Per call, with everything cached.
	var cached int
	opt := hub.SnapshotOptions{Progress: func(ev hub.ProgressEvent) {
		if ev.Finished && ev.Cached {
			cached++
		}
	}}
	if _, err := c.Snapshot(ctx, srv.RepoID, "main", opt); err != nil {
		t.Fatal(err)
	}
	if cached != len(files) {
		t.Errorf("%d cached events, want %d", cached, len(files))
	}
}

func TestCancel(t *testing.T) {
	srv := hubtest.NewServer(t, hubtest.DiffusersFiles(), hubtest.Options{})
	c := newClient(t, srv)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Snapshot(ctx, srv.RepoID, "main", hub.SnapshotOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Snapshot with a cancelled context: %v", err)
	}
}

func TestBadArguments(t *testing.T) {
	srv := hubtest.NewServer(t, hubtest.DiffusersFiles(), hubtest.Options{})
	c := newClient(t, srv)
	ctx := context.Background()
	for _, args := range [][3]string{
		{"../etc", "main", ""}, {"a/b/c", "main", ""}, {srv.RepoID, "../../x", ""}, {srv.RepoID, "main", "../x"}, {srv.RepoID, "main", "/abs"},
	} {
		var err error
		if args[2] == "" {
			_, err = c.Snapshot(ctx, args[0], args[1], hub.SnapshotOptions{})
		} else {
			_, err = c.Download(ctx, args[0], args[1], args[2])
		}
		if err == nil {
			t.Errorf("accepted %q", args)
		}
	}
	if len(srv.Requests()) != 0 {
		t.Errorf("bad arguments reached the server: %+v", srv.Requests())
	}
}

func TestStalledDownloadIsRetried(t *testing.T) {
	files := hubtest.DiffusersFiles()
	srv := hubtest.NewServer(t, files, hubtest.Options{})
	c := newClient(t, srv, func(o *hub.Options) { o.StallTimeout = 50 * time.Millisecond })
	srv.AddFault(hubtest.Fault{File: bigFile, CutAfter: 3000, Hang: true})
	srv.AddFault(hubtest.Fault{File: "unet/config.json", Hang: true})
	dir, err := c.Snapshot(context.Background(), srv.RepoID, "main", hub.SnapshotOptions{Include: []string{"unet/*"}})
	if err != nil {
		t.Fatal(err)
	}
	checkTree(t, dir, subset(files, "unet/config.json", bigFile, "unet/diffusion_pytorch_model.fp16.safetensors",
		"unet/diffusion_pytorch_model.non_ema.safetensors"))
	if count(srv.Requests(), func(r hubtest.Request) bool { return r.File == bigFile && r.Range == "bytes=3000-" }) != 1 {
		t.Errorf("the stalled download did not resume: %+v", srv.Requests())
	}
}

func TestEmptyFile(t *testing.T) {
	files := map[string][]byte{"empty.txt": {}, "a/b/c/deep.bin": bytes.Repeat([]byte{1}, 3000)}
	srv := hubtest.NewServer(t, files, hubtest.Options{})
	c := newClient(t, srv)
	dir, err := c.Snapshot(context.Background(), srv.RepoID, "main", hub.SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkTree(t, dir, files)
	target, err := os.Readlink(filepath.Join(dir, "a", "b", "c", "deep.bin"))
	if want := "../../../../../blobs/" + hubtest.SHA256(files["a/b/c/deep.bin"]); filepath.ToSlash(target) != want || err != nil {
		t.Errorf("deep link = %s, %v; want %s", target, err, want)
	}
}
