package hub

import (
	"os"
	"path/filepath"
	"testing"
)

func TestValidateRepoID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"stable-diffusion-v1-5/stable-diffusion-v1-5", true},
		{"CompVis/stable-diffusion-v1-4", true},
		{"gpt2", true},
		{"user/model.v2_final", true},
		{"", false},
		{"a/b/c", false},
		{"/name", false},
		{"owner/", false},
		{"-owner/name", false},
		{"owner/name.", false},
		{"owner/na--me", false},
		{"owner/na..me", false},
		{"owner/name.git", false},
		{"owner/na me", false},
		{"owner/näme", false},
		{"owner/" + string(make([]byte, 100)), false},
	}
	for _, tt := range tests {
		if err := ValidateRepoID(tt.id); (err == nil) != tt.ok {
			t.Errorf("ValidateRepoID(%q) = %v, want ok=%v", tt.id, err, tt.ok)
		}
	}
}

func TestParseRepoRef(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "local", "model"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	tests := []struct {
		in       string
		repo     string
		revision string
		ok       bool
	}{
		{"stable-diffusion-v1-5/stable-diffusion-v1-5", "stable-diffusion-v1-5/stable-diffusion-v1-5", "", true},
		{"owner/name@main", "owner/name", "main", true},
		{"owner/name@refs/pr/1", "owner/name", "refs/pr/1", true},
		{"owner/name@0123456789abcdef0123456789abcdef01234567", "owner/name", "0123456789abcdef0123456789abcdef01234567", true},
		{"owner/name@", "", "", false},
		{"owner/name@../x", "", "", false},
		{"gpt2", "", "", false}, // no owner: taken as a path
		{"local/model", "", "", false},
		{"./owner/name", "", "", false},
		{"../owner/name", "", "", false},
		{"/models/sd", "", "", false},
		{"~/models/sd", "", "", false},
		{`owner\name`, "", "", false},
		{"C:/models", "", "", false},
		{"owner/name/unet", "", "", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		repo, rev, ok := ParseRepoRef(tt.in)
		if repo != tt.repo || rev != tt.revision || ok != tt.ok {
			t.Errorf("ParseRepoRef(%q) = %q, %q, %v; want %q, %q, %v", tt.in, repo, rev, ok, tt.repo, tt.revision, tt.ok)
		}
	}
}

func FuzzParseRepoRef(f *testing.F) {
	for _, s := range []string{"owner/name", "owner/name@main", "a/b@refs/pr/1", "./x", "a/b/c", "@", "a/@b", "x@y@z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		repo, rev, ok := ParseRepoRef(s)
		if !ok {
			return
		}
		if err := ValidateRepoID(repo); err != nil {
			t.Errorf("ParseRepoRef(%q) accepted repo %q: %v", s, repo, err)
		}
		if rev != "" {
			if err := validateRevision(rev); err != nil {
				t.Errorf("ParseRepoRef(%q) accepted revision %q: %v", s, rev, err)
			}
			if repo+"@"+rev != s {
				t.Errorf("ParseRepoRef(%q) = %q, %q: does not rebuild the input", s, repo, rev)
			}
		} else if repo != s {
			t.Errorf("ParseRepoRef(%q) = %q", s, repo)
		}
	})
}

func TestValidateRepoPath(t *testing.T) {
	for _, p := range []string{"config.json", "unet/diffusion_pytorch_model.safetensors", "a b/c.txt", ".gitattributes"} {
		if err := validateRepoPath(p); err != nil {
			t.Errorf("validateRepoPath(%q) = %v", p, err)
		}
	}
	for _, p := range []string{"", "/etc/passwd", "../x", "a/../../x", "a//b", "a/./b", "a/", `a\b`, "a\x00b", ".."} {
		if err := validateRepoPath(p); err == nil {
			t.Errorf("validateRepoPath(%q) accepted", p)
		}
	}
}

func TestNormalizeETag(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{`"abc123"`, "abc123", true},
		{`W/"abc123"`, "abc123", true},
		{"abc123", "abc123", true},
		{`""`, "", false},
		{`"../x"`, "", false},
		{`"a/b"`, "", false},
	}
	for _, tt := range tests {
		got, err := normalizeETag(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("normalizeETag(%q) = %q, %v; want %q, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
