// Package hub downloads model repositories from the Hugging Face Hub into
// the same on-disk cache that the Python huggingface_hub library uses, so
// that models pulled by either tool are shared.
//
// The cache of a model repository "owner/name" lives in
// <cache>/models--owner--name and holds:
//
//	blobs/<etag>                 file contents, named by their sha256 (LFS files)
//	                             or git blob sha1 (small files)
//	snapshots/<commit>/<path>    relative symbolic links to ../../blobs/<etag>
//	refs/<revision>              the commit hash a branch or tag resolved to
//
// A Client lists the files of a repository at a revision
// (GET /api/models/{repo}/revision/{revision}), reads each file's metadata
// with a HEAD request on {endpoint}/{repo}/resolve/{commit}/{path} and
// fetches it, following a redirect to the content delivery network without
// the Authorization header. Downloads resume from blobs/<etag>.incomplete
// with HTTP Range requests, LFS files are checked against their sha256
// before they enter the cache, failed requests are retried with exponential
// backoff, and a lock file per blob keeps concurrent processes from writing
// the same blob at once.
//
// The library prints nothing: progress is reported through a callback.
package hub

import (
	"cmp"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultEndpoint is the Hub used when HF_ENDPOINT is not set.
const DefaultEndpoint = "https://huggingface.co"

// Defaults applied by NewClient to zero fields of Options.
const (
	DefaultConcurrency    = 4
	DefaultMaxRetries     = 5
	DefaultRetryBaseDelay = time.Second
	DefaultRetryMaxDelay  = 8 * time.Second
	DefaultUserAgent      = "pigment-hub/1"
	DefaultStallTimeout   = 30 * time.Second
)

// Options configures a Client. The zero value of every field means its
// default; OptionsFromEnv fills the fields the environment controls.
type Options struct {
	// Endpoint is the Hub's base URL, without a trailing slash
	// (default DefaultEndpoint).
	Endpoint string
	// Token is sent as "Authorization: Bearer <Token>" to the endpoint's
	// host only, never to other hosts such as the content delivery network.
	Token string
	// CacheDir is the root of the cache, the folder that holds the
	// models--owner--name folders. Default: $HOME/.cache/huggingface/hub.
	CacheDir string
	// Offline makes the client resolve everything from the cache and never
	// touch the network.
	Offline bool
	// HTTPClient sends the requests (default http.DefaultClient). The
	// client's redirect policy is not used: redirects are followed by this
	// package so that credentials never leave the endpoint's host.
	HTTPClient *http.Client
	// Concurrency is the number of files Snapshot downloads at once
	// (default DefaultConcurrency).
	Concurrency int
	// MaxRetries is the number of times a request that failed with a
	// server error (429, 5xx) or a network error is retried; 0 means
	// DefaultMaxRetries and a negative value means no retries.
	MaxRetries int
	// RetryBaseDelay is the wait before the first retry; each further
	// retry waits twice as long, up to RetryMaxDelay.
	RetryBaseDelay time.Duration
	RetryMaxDelay  time.Duration
	// StallTimeout is how long a request may wait for the answer's headers
	// or for the next bytes of its body before it is abandoned and retried
	// (resuming where it stopped); 0 means DefaultStallTimeout and a
	// negative value means no limit.
	StallTimeout time.Duration
	// UserAgent is sent with every request (default DefaultUserAgent).
	UserAgent string
	// Progress, if not nil, receives download progress. Calls are
	// serialized by the client, so the callback need not be safe for
	// concurrent use, but it should return quickly.
	Progress func(ProgressEvent)
}

// ProgressEvent reports the state of one file's download.
type ProgressEvent struct {
	// File is the file's path in the repository, with forward slashes.
	File string
	// Done is the number of bytes on disk so far, including bytes kept
	// from an earlier, interrupted download.
	Done int64
	// Total is the file's size, or -1 when the Hub did not say.
	Total int64
	// Finished is set on the last event of a file, once it is in place.
	Finished bool
	// Cached is set when the file was already present and nothing was
	// downloaded.
	Cached bool
}

// OptionsFromEnv returns the options that huggingface_hub derives from its
// environment variables, read through getenv (os.Getenv in programs, a map
// lookup in tests):
//
//	HF_ENDPOINT       the Hub's URL (default https://huggingface.co)
//	HF_HOME           default $XDG_CACHE_HOME/huggingface or ~/.cache/huggingface
//	HF_HUB_CACHE      the cache (default $HF_HOME/hub; HUGGINGFACE_HUB_CACHE is
//	                  the legacy name)
//	HF_TOKEN          the token (HUGGING_FACE_HUB_TOKEN is the legacy name);
//	                  otherwise the file named by HF_TOKEN_PATH, default
//	                  $HF_HOME/token, is read if it exists
//	HF_HUB_OFFLINE    "1", "true", "yes" or "on" for offline mode
//	HF_HUB_DOWNLOAD_TIMEOUT  seconds without data before a request is
//	                  retried (StallTimeout)
//
// The home directory is $HOME (or %USERPROFILE%), falling back to
// os.UserHomeDir when getenv returns neither.
func OptionsFromEnv(getenv func(string) string) Options {
	var o Options
	o.Endpoint = strings.TrimRight(getenv("HF_ENDPOINT"), "/")

	home := cmp.Or(getenv("HOME"), getenv("USERPROFILE"))
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	expand := func(p string) string {
		if p == "~" || strings.HasPrefix(p, "~/") || strings.HasPrefix(p, `~\`) {
			return filepath.Join(home, p[1:])
		}
		return p
	}
	hfHome := expand(getenv("HF_HOME"))
	if hfHome == "" {
		xdg := getenv("XDG_CACHE_HOME")
		if xdg == "" {
			xdg = filepath.Join(home, ".cache")
		}
		hfHome = filepath.Join(expand(xdg), "huggingface")
	}
	o.CacheDir = expand(cmp.Or(getenv("HF_HUB_CACHE"), getenv("HUGGINGFACE_HUB_CACHE")))
	if o.CacheDir == "" {
		o.CacheDir = filepath.Join(hfHome, "hub")
	}

	o.Token = strings.TrimSpace(cmp.Or(getenv("HF_TOKEN"), getenv("HUGGING_FACE_HUB_TOKEN")))
	if o.Token == "" {
		tokenPath := expand(getenv("HF_TOKEN_PATH"))
		if tokenPath == "" {
			tokenPath = filepath.Join(hfHome, "token")
		}
		if b, err := os.ReadFile(tokenPath); err == nil {
			o.Token = strings.TrimSpace(string(b))
		}
	}

	o.Offline = isTrue(getenv("HF_HUB_OFFLINE"))
	if secs, err := strconv.ParseFloat(getenv("HF_HUB_DOWNLOAD_TIMEOUT"), 64); err == nil && secs > 0 && secs < 1e6 {
		o.StallTimeout = time.Duration(secs * float64(time.Second))
	}
	return o
}

func isTrue(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// Client talks to one Hub endpoint and fills one cache. It is safe for
// concurrent use.
type Client struct {
	endpoint     string
	endpointHost string
	token        string
	cacheDir     string
	offline      bool
	http         *http.Client
	concurrency  int
	maxRetries   int
	baseDelay    time.Duration
	maxDelay     time.Duration
	stall        time.Duration
	userAgent    string

	progressMu sync.Mutex
	progress   func(ProgressEvent)
}

// NewClient returns a client configured by opts, with defaults for the
// zero fields.
func NewClient(opts Options) *Client {
	c := &Client{
		endpoint:    strings.TrimRight(cmp.Or(opts.Endpoint, DefaultEndpoint), "/"),
		token:       opts.Token,
		cacheDir:    opts.CacheDir,
		offline:     opts.Offline,
		concurrency: cmp.Or(opts.Concurrency, DefaultConcurrency),
		maxRetries:  opts.MaxRetries,
		baseDelay:   cmp.Or(opts.RetryBaseDelay, DefaultRetryBaseDelay),
		maxDelay:    cmp.Or(opts.RetryMaxDelay, DefaultRetryMaxDelay),
		stall:       cmp.Or(opts.StallTimeout, DefaultStallTimeout),
		userAgent:   cmp.Or(opts.UserAgent, DefaultUserAgent),
		progress:    opts.Progress,
	}
	if c.cacheDir == "" {
		home, _ := os.UserHomeDir()
		c.cacheDir = filepath.Join(home, ".cache", "huggingface", "hub")
	}
	if c.concurrency < 1 {
		c.concurrency = 1
	}
	switch {
	case c.maxRetries == 0:
		c.maxRetries = DefaultMaxRetries
	case c.maxRetries < 0:
		c.maxRetries = 0
	}
	if c.maxDelay < c.baseDelay {
		c.maxDelay = c.baseDelay
	}
	if u, err := url.Parse(c.endpoint); err == nil {
		c.endpointHost = u.Host
	}
	hc := http.DefaultClient
	if opts.HTTPClient != nil {
		hc = opts.HTTPClient
	}
	// A copy, so that the caller's client keeps its own redirect policy.
	own := *hc
	own.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.http = &own
	return c
}

// CacheDir returns the root of the cache the client fills.
func (c *Client) CacheDir() string { return c.cacheDir }

// Endpoint returns the Hub URL the client talks to.
func (c *Client) Endpoint() string { return c.endpoint }

// Offline reports whether the client resolves from the cache only.
func (c *Client) Offline() bool { return c.offline }

// report sends ev to fn (or the client's callback when fn is nil), one
// call at a time.
func (c *Client) report(fn func(ProgressEvent), ev ProgressEvent) {
	if fn == nil {
		fn = c.progress
	}
	if fn == nil {
		return
	}
	c.progressMu.Lock()
	defer c.progressMu.Unlock()
	fn(ev)
}
