// Package hubtest runs a fake Hugging Face Hub for tests, on two
// httptest servers: the Hub itself (the repository API and the resolve
// URLs) and a content delivery network that serves the LFS files the Hub
// redirects to, as huggingface.co does.
//
// The Hub answers
//
//	GET  /api/models/{repo}/revision/{revision}[?blobs=True]
//	HEAD /{repo}/resolve/{revision}/{path}
//	GET  /{repo}/resolve/{revision}/{path}   (Range requests supported)
//
// with the headers huggingface_hub reads (X-Repo-Commit, ETag,
// X-Linked-Etag, X-Linked-Size, X-Error-Code, X-Error-Message). Files of
// at least Options.LFSThreshold bytes are LFS files: resolve answers 302
// to the CDN, which fails the test if a request reaches it with an
// Authorization header.
//
// Faults can be injected (an error status, a connection cut mid-body, a
// corrupted body) and every request is recorded for the test to inspect.
package hubtest

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// DefaultRepoID is the repository a server hosts when Options.RepoID is
// empty.
const DefaultRepoID = "pigment-test/tiny-model"

// DefaultLFSThreshold is the size from which files are LFS files when
// Options.LFSThreshold is zero.
const DefaultLFSThreshold = 1024

// Options configures a fake Hub.
type Options struct {
	// RepoID is the one model repository hosted (default DefaultRepoID).
	// Other ids answer as the Hub does for unknown or private
	// repositories: 401 RepoNotFound without a token, 404 with one.
	RepoID string
	// Revisions are the branch and tag names that resolve to the current
	// commit (default "main"). The commit hash itself always resolves.
	Revisions []string
	// LFSThreshold is the size from which a file is stored with LFS and
	// served through the CDN (default DefaultLFSThreshold; negative: none).
	LFSThreshold int
	// Token is the one valid token.
	Token string
	// Private: every request without the valid token gets 401 RepoNotFound.
	Private bool
	// Gated: the listing is public, but downloads without a token get 401
	// GatedRepo and downloads with another token get 403 GatedRepo.
	Gated bool
	// IgnoreRange makes both servers answer Range requests with the whole
	// file (200), as some proxies do.
	IgnoreRange bool
	// MovedFrom is a former id of the repository: requests for it are
	// redirected (307, relative Location) to the current id.
	MovedFrom string
}

// Fault is an injected failure. A fault applies to the requests that match
// its File and Method; Times says how many (0 means 1).
type Fault struct {
	// File is the repository path the fault applies to; "" matches every
	// request, the listing included.
	File string
	// Method is "GET" or "HEAD"; "" matches both.
	Method string
	// Status, when set, answers the request with this status code (and no
	// other effect), on the Hub or the CDN, wherever the request goes first.
	Status int
	// CutAfter, when positive, sends that many bytes of the response body
	// and then drops the connection. It applies to the request that
	// serves the bytes (the CDN for LFS files).
	CutAfter int64
	// Hang, with CutAfter, stops sending after CutAfter bytes (0: after the
	// headers) and keeps the connection open until the client gives up.
	Hang bool
	// Corrupt serves the body with one byte changed.
	Corrupt bool
	// Times is the number of matching requests affected (default 1).
	Times int
}

// Request is one request a server received.
type Request struct {
	// Server is "hub" or "cdn".
	Server string
	Method string
	// Path is the request's escaped URL path.
	Path string
	// File is the repository path the request was about, if any.
	File string
	// Range is the Range header, if any.
	Range string
	// Authorization is the Authorization header, if any.
	Authorization string
	// Status is the status code answered (0 if the handler dropped the
	// connection before answering).
	Status int
}

// Server is a running fake Hub.
type Server struct {
	// URL is the Hub's endpoint, for HF_ENDPOINT or hub.Options.Endpoint.
	URL string
	// CDNURL is the base URL of the content delivery network.
	CDNURL string
	// RepoID is the hosted repository.
	RepoID string

	t        testing.TB // nil outside tests
	opts     Options
	hub, cdn *httptest.Server

	mu       sync.Mutex
	files    map[string][]byte
	commit   string
	gen      int
	blobs    map[string][]byte // sha256 → contents, of every version served
	faults   []*Fault
	requests []Request
}

// NewServer starts a fake Hub hosting files (repository path → contents)
// as one commit. The servers are closed when the test ends, and a request
// that reaches the CDN with an Authorization header fails the test.
func NewServer(t testing.TB, files map[string][]byte, opts Options) *Server {
	t.Helper()
	s := Start(files, opts)
	s.t = t
	t.Cleanup(s.Close)
	return s
}

// Start starts a fake Hub outside a test (in an example or a tool); the
// caller closes it. Requests that reach the CDN with an Authorization
// header are only recorded.
func Start(files map[string][]byte, opts Options) *Server {
	if opts.RepoID == "" {
		opts.RepoID = DefaultRepoID
	}
	if len(opts.Revisions) == 0 {
		opts.Revisions = []string{"main"}
	}
	if opts.LFSThreshold == 0 {
		opts.LFSThreshold = DefaultLFSThreshold
	}
	s := &Server{opts: opts, RepoID: opts.RepoID, blobs: map[string][]byte{}}
	s.SetFiles(files)
	s.hub = httptest.NewServer(http.HandlerFunc(s.serveHub))
	s.cdn = httptest.NewServer(http.HandlerFunc(s.serveCDN))
	s.URL, s.CDNURL = s.hub.URL, s.cdn.URL
	return s
}

// Close shuts both servers down, waiting for the requests in progress.
func (s *Server) Close() {
	s.hub.Close()
	s.cdn.Close()
}

// SetFiles replaces the repository's files with a new commit, which the
// revisions then resolve to, and returns its hash. Blobs of earlier
// commits stay available on the CDN.
func (s *Server) SetFiles(files map[string][]byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files = make(map[string][]byte, len(files))
	h := sha1.New()
	fmt.Fprintf(h, "generation %d\n", s.gen)
	s.gen++
	for _, p := range slices.Sorted(maps.Keys(files)) {
		b := files[p]
		s.files[p] = b
		sum := SHA256(b)
		s.blobs[sum] = b
		fmt.Fprintf(h, "%s %s\n", p, sum)
	}
	s.commit = hex.EncodeToString(h.Sum(nil))
	return s.commit
}

// Commit returns the current commit hash.
func (s *Server) Commit() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commit
}

// IsLFS reports whether the server serves a file of n bytes as an LFS file.
func (s *Server) IsLFS(n int) bool {
	return s.opts.LFSThreshold >= 0 && n >= s.opts.LFSThreshold
}

// AddFault injects a fault.
func (s *Server) AddFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Times <= 0 {
		f.Times = 1
	}
	s.faults = append(s.faults, &f)
}

// Requests returns the requests received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// ResetRequests forgets the recorded requests.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

// SHA256 returns the hex sha256 of b: an LFS file's etag and blob name.
func SHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// GitBlobSHA1 returns the git blob hash of b: a small file's etag and
// blob name.
func GitBlobSHA1(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// ETag returns the name the blob of b gets in a huggingface_hub cache when
// served by s: the sha256 for LFS files, the git blob sha1 otherwise.
func (s *Server) ETag(b []byte) string {
	if s.IsLFS(len(b)) {
		return SHA256(b)
	}
	return GitBlobSHA1(b)
}

func lfsPointer(b []byte) []byte {
	return fmt.Appendf(nil, "version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n", SHA256(b), len(b))
}

// recorder records a response's status in the request log.
type recorder struct {
	http.ResponseWriter
	s     *Server
	index int
}

func (r *recorder) WriteHeader(code int) {
	r.s.mu.Lock()
	r.s.requests[r.index].Status = code
	r.s.mu.Unlock()
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.s.mu.Lock()
	if r.s.requests[r.index].Status == 0 {
		r.s.requests[r.index].Status = http.StatusOK
	}
	r.s.mu.Unlock()
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// begin records a request and returns the writer to answer it with, or
// nil when a status fault answered it already.
func (s *Server) begin(w http.ResponseWriter, r *http.Request, server, file string) http.ResponseWriter {
	s.mu.Lock()
	s.requests = append(s.requests, Request{
		Server: server, Method: r.Method, Path: r.URL.EscapedPath(), File: file,
		Range: r.Header.Get("Range"), Authorization: r.Header.Get("Authorization"),
	})
	rw := &recorder{ResponseWriter: w, s: s, index: len(s.requests) - 1}
	f := s.takeFault(r.Method, file, func(f *Fault) bool { return f.Status != 0 })
	s.mu.Unlock()
	if f != nil {
		writeError(rw, f.Status, "", fmt.Sprintf("injected fault: HTTP %d", f.Status))
		return nil
	}
	return rw
}

// takeFault returns a matching fault of the kind ok selects and uses it
// once. s.mu must be held.
func (s *Server) takeFault(method, file string, ok func(*Fault) bool) *Fault {
	for i, f := range s.faults {
		if !ok(f) || (f.Method != "" && f.Method != method) || (f.File != "" && f.File != file) {
			continue
		}
		g := *f
		f.Times--
		if f.Times <= 0 {
			s.faults = slices.Delete(s.faults, i, i+1)
		}
		return &g
	}
	return nil
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	if code != "" {
		w.Header().Set("X-Error-Code", code)
	}
	w.Header().Set("X-Error-Message", msg)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func (s *Server) serveHub(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	if rest, ok := strings.CutPrefix(path, "/api/models/"); ok {
		repo, rev, ok := strings.Cut(rest, "/revision/")
		if !ok || r.Method != http.MethodGet {
			s.notFound(w, r)
			return
		}
		rev, _ = url.PathUnescape(rev)
		s.serveInfo(w, r, repo, rev)
		return
	}
	repo, rest, ok := strings.Cut(strings.TrimPrefix(path, "/"), "/resolve/")
	if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		s.notFound(w, r)
		return
	}
	rev, file, _ := strings.Cut(rest, "/")
	rev, _ = url.PathUnescape(rev)
	file, _ = url.PathUnescape(file)
	s.serveResolve(w, r, repo, rev, file)
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	if w = s.begin(w, r, "hub", ""); w != nil {
		writeError(w, http.StatusNotFound, "", "Not Found")
	}
}

func (s *Server) validToken(r *http.Request) bool {
	return s.opts.Token != "" && r.Header.Get("Authorization") == "Bearer "+s.opts.Token
}

// checkRepo answers for an unknown, moved or private repository and
// reports whether the request may go on.
func (s *Server) checkRepo(w http.ResponseWriter, r *http.Request, repo string) bool {
	if s.opts.MovedFrom != "" && repo == s.opts.MovedFrom {
		u := *r.URL
		u.Path = strings.Replace(r.URL.Path, "/"+repo+"/", "/"+s.RepoID+"/", 1)
		u.RawPath = strings.Replace(r.URL.EscapedPath(), "/"+repo+"/", "/"+s.RepoID+"/", 1)
		w.Header().Set("Location", u.RequestURI())
		w.WriteHeader(http.StatusTemporaryRedirect)
		return false
	}
	if repo != s.RepoID || (s.opts.Private && !s.validToken(r)) {
		status := http.StatusUnauthorized
		if r.Header.Get("Authorization") != "" && repo != s.RepoID {
			status = http.StatusNotFound
		}
		writeError(w, status, "RepoNotFound", "Repository not found")
		return false
	}
	return true
}

// resolveRev returns the commit a revision names, answering 404 if none.
func (s *Server) resolveRev(w http.ResponseWriter, rev string) (string, bool) {
	s.mu.Lock()
	commit := s.commit
	s.mu.Unlock()
	if rev == commit || slices.Contains(s.opts.Revisions, rev) {
		return commit, true
	}
	writeError(w, http.StatusNotFound, "RevisionNotFound", "Invalid rev id: "+rev)
	return "", false
}

func (s *Server) serveInfo(w http.ResponseWriter, r *http.Request, repo, rev string) {
	if w = s.begin(w, r, "hub", ""); w == nil || !s.checkRepo(w, r, repo) {
		return
	}
	commit, ok := s.resolveRev(w, rev)
	if !ok {
		return
	}
	type lfs struct {
		SHA256      string `json:"sha256"`
		Size        int    `json:"size"`
		PointerSize int    `json:"pointerSize"`
	}
	type sibling struct {
		RFilename string `json:"rfilename"`
		BlobID    string `json:"blobId,omitempty"`
		Size      *int   `json:"size,omitempty"`
		LFS       *lfs   `json:"lfs,omitempty"`
	}
	blobs := strings.EqualFold(r.URL.Query().Get("blobs"), "true")
	s.mu.Lock()
	var sibs []sibling
	for _, p := range slices.Sorted(maps.Keys(s.files)) {
		b := s.files[p]
		sib := sibling{RFilename: p}
		if blobs {
			n := len(b)
			sib.Size = &n
			sib.BlobID = GitBlobSHA1(b)
			if s.IsLFS(n) {
				ptr := lfsPointer(b)
				sib.BlobID = GitBlobSHA1(ptr)
				sib.LFS = &lfs{SHA256: SHA256(b), Size: n, PointerSize: len(ptr)}
			}
		}
		sibs = append(sibs, sib)
	}
	s.mu.Unlock()
	var gated any = false
	if s.opts.Gated {
		gated = "manual"
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"_id": "0123456789abcdef01234567", "id": s.RepoID, "modelId": s.RepoID,
		"sha": commit, "private": s.opts.Private, "gated": gated, "siblings": sibs,
	})
}

func (s *Server) serveResolve(w http.ResponseWriter, r *http.Request, repo, rev, file string) {
	if w = s.begin(w, r, "hub", file); w == nil || !s.checkRepo(w, r, repo) {
		return
	}
	if s.opts.Gated && !s.validToken(r) {
		if r.Header.Get("Authorization") == "" {
			writeError(w, http.StatusUnauthorized, "GatedRepo",
				fmt.Sprintf("Access to model %s is restricted. You must have access to it and be authenticated to access it. Please log in.", s.RepoID))
		} else {
			writeError(w, http.StatusForbidden, "GatedRepo",
				fmt.Sprintf("Access to model %s is restricted and you are not in the authorized list. Visit %s/%s to ask for access.", s.RepoID, s.URL, s.RepoID))
		}
		return
	}
	commit, ok := s.resolveRev(w, rev)
	if !ok {
		return
	}
	s.mu.Lock()
	b, ok := s.files[file]
	s.mu.Unlock()
	if !ok {
		w.Header().Set("X-Repo-Commit", commit)
		writeError(w, http.StatusNotFound, "EntryNotFound", "Entry not found")
		return
	}
	w.Header().Set("X-Repo-Commit", commit)
	if s.IsLFS(len(b)) {
		sum := SHA256(b)
		w.Header().Set("ETag", `"`+GitBlobSHA1(lfsPointer(b))+`"`)
		w.Header().Set("X-Linked-Etag", `"`+sum+`"`)
		w.Header().Set("X-Linked-Size", strconv.Itoa(len(b)))
		w.Header().Set("Location", s.CDNURL+"/repos/"+sum+"?expires=9999999999&signature=test")
		w.WriteHeader(http.StatusFound)
		return
	}
	w.Header().Set("ETag", `"`+GitBlobSHA1(b)+`"`)
	s.serveBody(w, r, file, b)
}

func (s *Server) serveCDN(w http.ResponseWriter, r *http.Request) {
	sum, _ := strings.CutPrefix(r.URL.Path, "/repos/")
	s.mu.Lock()
	b, ok := s.blobs[sum]
	file := ""
	for p, c := range s.files {
		if ok && SHA256(c) == sum {
			file = p
			break
		}
	}
	s.mu.Unlock()
	if r.Header.Get("Authorization") != "" && s.t != nil {
		s.t.Errorf("hubtest: the CDN received an Authorization header (%s %s)", r.Method, r.URL.Path)
	}
	if w = s.begin(w, r, "cdn", file); w == nil {
		return
	}
	if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		http.Error(w, "no such object", http.StatusNotFound)
		return
	}
	w.Header().Set("ETag", `"`+sum+`"`)
	s.serveBody(w, r, file, b)
}

// serveBody answers GET and HEAD with b, honouring a "bytes=a-" or
// "bytes=a-b" Range and the body faults.
func (s *Server) serveBody(w http.ResponseWriter, r *http.Request, file string, b []byte) {
	var fault *Fault
	if r.Method == http.MethodGet {
		s.mu.Lock()
		fault = s.takeFault(r.Method, file, func(f *Fault) bool { return f.Status == 0 && (f.CutAfter > 0 || f.Corrupt || f.Hang) })
		s.mu.Unlock()
	}
	if fault != nil && fault.Corrupt && len(b) > 0 {
		b = slices.Clone(b)
		b[len(b)/2] ^= 0xff
	}
	w.Header().Set("Accept-Ranges", "bytes")
	w.Header().Set("Content-Type", "application/octet-stream")
	status := http.StatusOK
	body := b
	if rng := r.Header.Get("Range"); rng != "" && !s.opts.IgnoreRange {
		start, end, ok := parseRange(rng, len(b))
		if !ok {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", len(b)))
			http.Error(w, "range not satisfiable", http.StatusRequestedRangeNotSatisfiable)
			return
		}
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, len(b)))
		status = http.StatusPartialContent
		body = b[start : end+1]
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	if fault != nil && fault.Hang {
		w.Write(body[:min(max(fault.CutAfter, 0), int64(len(body)))])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		panic(http.ErrAbortHandler)
	}
	if fault != nil && fault.CutAfter > 0 && fault.CutAfter < int64(len(body)) {
		w.Write(body[:fault.CutAfter])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // drops the connection mid-body
	}
	w.Write(body)
}

// parseRange parses "bytes=a-" or "bytes=a-b" for a body of n bytes and
// returns the inclusive byte range.
func parseRange(h string, n int) (start, end int, ok bool) {
	spec, found := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false
	}
	a, b, found := strings.Cut(spec, "-")
	if !found {
		return 0, 0, false
	}
	start, err := strconv.Atoi(strings.TrimSpace(a))
	if err != nil || start < 0 || start >= n {
		return 0, 0, false
	}
	end = n - 1
	if b = strings.TrimSpace(b); b != "" {
		e, err := strconv.Atoi(b)
		if err != nil || e < start {
			return 0, 0, false
		}
		end = min(e, n-1)
	}
	return start, end, true
}

// DiffusersFiles returns a small repository shaped like a diffusers Stable
// Diffusion folder: JSON configs (small files) and weight files of a few
// KiB (LFS files at the default threshold), with deterministic contents
// that are not real safetensors.
func DiffusersFiles() map[string][]byte {
	weights := func(seed byte, n int) []byte {
		b := make([]byte, n)
		x := uint32(seed)*2654435761 + 1
		for i := range b {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			b[i] = byte(x)
		}
		return b
	}
	return map[string][]byte{
		"model_index.json":                                 []byte(`{"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.30.0"}`),
		"README.md":                                        []byte("# tiny model\n"),
		"scheduler/scheduler_config.json":                  []byte(`{"_class_name": "PNDMScheduler", "num_train_timesteps": 1000}`),
		"text_encoder/config.json":                         []byte(`{"hidden_size": 32}`),
		"text_encoder/model.safetensors":                   weights(1, 6000),
		"tokenizer/vocab.json":                             []byte(`{"a</w>": 0}`),
		"tokenizer/merges.txt":                             []byte("#version: 0.2\n"),
		"unet/config.json":                                 []byte(`{"sample_size": 8}`),
		"unet/diffusion_pytorch_model.safetensors":         weights(2, 20000),
		"unet/diffusion_pytorch_model.fp16.safetensors":    weights(3, 10000),
		"vae/config.json":                                  []byte(`{"latent_channels": 4}`),
		"vae/diffusion_pytorch_model.safetensors":          weights(4, 8000),
		"vae/diffusion_pytorch_model.fp16.safetensors":     weights(5, 4000),
		"text_encoder/model.fp16.safetensors":              weights(6, 3000),
		"safety_checker/pytorch_model.bin":                 weights(7, 5000),
		"feature_extractor/preprocessor_config.json":       []byte(`{"crop_size": 224}`),
		"unet/diffusion_pytorch_model.non_ema.safetensors": weights(8, 2048),
	}
}
