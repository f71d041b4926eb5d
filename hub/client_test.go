package hub

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOptionsFromEnv(t *testing.T) {
	home := t.TempDir()
	hfHome := filepath.Join(home, "hf")
	if err := os.MkdirAll(hfHome, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hfHome, "token"), []byte("  hf_from_file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(home, "other-token")
	if err := os.WriteFile(other, []byte("hf_other"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		want Options
	}{
		{"defaults", map[string]string{"HOME": home},
			Options{CacheDir: filepath.Join(home, ".cache", "huggingface", "hub")}},
		{"XDG cache", map[string]string{"HOME": home, "XDG_CACHE_HOME": filepath.Join(home, "xdg")},
			Options{CacheDir: filepath.Join(home, "xdg", "huggingface", "hub")}},
		{"HF_HOME with token file", map[string]string{"HOME": home, "HF_HOME": hfHome},
			Options{CacheDir: filepath.Join(hfHome, "hub"), Token: "hf_from_file"}},
		{"HF_TOKEN wins over the file", map[string]string{"HOME": home, "HF_HOME": hfHome, "HF_TOKEN": "hf_env"},
			Options{CacheDir: filepath.Join(hfHome, "hub"), Token: "hf_env"}},
		{"legacy token variable", map[string]string{"HOME": home, "HUGGING_FACE_HUB_TOKEN": "hf_legacy"},
			Options{CacheDir: filepath.Join(home, ".cache", "huggingface", "hub"), Token: "hf_legacy"}},
		{"HF_TOKEN_PATH", map[string]string{"HOME": home, "HF_HOME": hfHome, "HF_TOKEN_PATH": other},
			Options{CacheDir: filepath.Join(hfHome, "hub"), Token: "hf_other"}},
		{"HF_HUB_CACHE and tilde", map[string]string{"HOME": home, "HF_HUB_CACHE": "~/models"},
			Options{CacheDir: filepath.Join(home, "models")}},
		{"endpoint, offline, timeout", map[string]string{"HOME": home, "HF_ENDPOINT": "https://mirror.example/", "HF_HUB_OFFLINE": "1", "HF_HUB_DOWNLOAD_TIMEOUT": "2.5"},
			Options{Endpoint: "https://mirror.example", CacheDir: filepath.Join(home, ".cache", "huggingface", "hub"), Offline: true, StallTimeout: 2500 * time.Millisecond}},
		{"offline spelled out", map[string]string{"HOME": home, "HF_HUB_OFFLINE": "TRUE"},
			Options{CacheDir: filepath.Join(home, ".cache", "huggingface", "hub"), Offline: true}},
		{"offline off", map[string]string{"HOME": home, "HF_HUB_OFFLINE": "0"},
			Options{CacheDir: filepath.Join(home, ".cache", "huggingface", "hub")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := OptionsFromEnv(func(k string) string { return tt.env[k] })
			if got.Endpoint != tt.want.Endpoint || got.CacheDir != tt.want.CacheDir || got.Token != tt.want.Token ||
				got.Offline != tt.want.Offline || got.StallTimeout != tt.want.StallTimeout {
				t.Errorf("OptionsFromEnv = %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestNewClientDefaults(t *testing.T) {
	c := NewClient(Options{CacheDir: "/c"})
	if c.endpoint != DefaultEndpoint || c.concurrency != DefaultConcurrency || c.maxRetries != DefaultMaxRetries ||
		c.baseDelay != DefaultRetryBaseDelay || c.maxDelay != DefaultRetryMaxDelay || c.stall != DefaultStallTimeout {
		t.Errorf("defaults: %+v", c)
	}
	if c := NewClient(Options{MaxRetries: -1}); c.maxRetries != 0 {
		t.Errorf("MaxRetries -1 gives %d retries", c.maxRetries)
	}
	// The caller's client keeps its redirect policy.
	hc := &http.Client{}
	NewClient(Options{HTTPClient: hc})
	if hc.CheckRedirect != nil {
		t.Error("NewClient changed the caller's http.Client")
	}
}

// TestRedirectDropsToken checks that a redirect from the Hub to another
// host, followed by a GET, does not carry the token there.
func TestRedirectDropsToken(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			t.Errorf("the other host received Authorization %q", r.Header.Get("Authorization"))
		}
		w.Write([]byte("ok"))
	}))
	defer other.Close()
	var hubAuth string
	hubSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hubAuth = r.Header.Get("Authorization")
		if r.URL.Path == "/first" {
			http.Redirect(w, r, "/second", http.StatusTemporaryRedirect) // same host: token kept
			return
		}
		http.Redirect(w, r, other.URL+"/file", http.StatusFound)
	}))
	defer hubSrv.Close()
	c := NewClient(Options{Endpoint: hubSrv.URL, Token: "hf_secret", CacheDir: t.TempDir()})
	resp, err := c.send(context.Background(), http.MethodGet, hubSrv.URL+"/first", nil, true)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.Host != strings.TrimPrefix(other.URL, "http://") {
		t.Errorf("ended at %s with %d", resp.Request.URL, resp.StatusCode)
	}
	if hubAuth != "Bearer hf_secret" {
		t.Errorf("the Hub received Authorization %q after a same-host redirect", hubAuth)
	}
}

func TestErrorFromResponse(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		header   map[string]string
		body     string
		what     request
		token    bool
		want     error
		mentions []string
	}{
		{"plain 403", 403, nil, `{"error": "Access to this resource is disabled."}`,
			request{repoID: "o/n", revision: "main", file: "a.bin", hub: true}, true, ErrForbidden,
			[]string{`"a.bin"`, `"o/n"`, "permissions", "disabled"}},
		{"gated by message", 403, map[string]string{"X-Error-Message": "This repository is gated."}, "",
			request{repoID: "o/n", hub: true}, false, ErrGatedRepo, []string{"gated", "no token sent"}},
		{"error list", 404, map[string]string{"X-Error-Code": "RevisionNotFound"}, `{"error": ["bad", "rev"]}`,
			request{repoID: "o/n", revision: "x", hub: true}, false, ErrRevisionNotFound, []string{`"x"`, "bad; rev"}},
		{"bare 404 for a file", 404, nil, "", request{repoID: "o/n", revision: "main", file: "f", hub: true}, false,
			ErrEntryNotFound, []string{`"f"`}},
		{"CDN error", 403, nil, "<html>expired</html>", request{repoID: "o/n", file: "f"}, false,
			nil, []string{"HTTP 403", "cdn.example"}},
		{"server error", 500, nil, "", request{repoID: "o/n", hub: true}, false, nil, []string{"HTTP 500"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "https://cdn.example/x", nil)
			if tt.token {
				req.Header.Set("Authorization", "Bearer t")
			}
			rec := httptest.NewRecorder()
			for k, v := range tt.header {
				rec.Header().Set(k, v)
			}
			rec.WriteHeader(tt.status)
			rec.WriteString(tt.body)
			resp := rec.Result()
			resp.Request = req
			err := errorFromResponse(resp, tt.what, "https://hub.example")
			if tt.want != nil && !errors.Is(err, tt.want) || tt.want == nil && err.Unwrap() != nil {
				t.Errorf("error %v wraps %v, want %v", err, err.Unwrap(), tt.want)
			}
			for _, m := range tt.mentions {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}
}
