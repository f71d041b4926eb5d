package hub

import (
	"slices"
	"strings"
	"testing"
)

const testCommit = "0123456789abcdef0123456789abcdef01234567"

func TestParseRevisionInfo(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	body := `{"id": "o/n", "sha": "` + testCommit + `", "siblings": [
		{"rfilename": "unet/model.safetensors", "size": 20000, "blobId": "` + strings.Repeat("1", 40) + `",
		 "lfs": {"sha256": "` + sum + `", "size": 20000, "pointerSize": 134}},
		{"rfilename": "config.json", "size": 12, "blobId": "` + strings.Repeat("2", 40) + `"},
		{"rfilename": "README.md"}]}`
	files, commit, err := ParseRevisionInfo([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if commit != testCommit {
		t.Errorf("commit = %q", commit)
	}
	want := []RepoFile{
		{Path: "README.md", Size: -1},
		{Path: "config.json", Size: 12, BlobID: strings.Repeat("2", 40)},
		{Path: "unet/model.safetensors", Size: 20000, BlobID: strings.Repeat("1", 40), SHA256: sum},
	}
	if !slices.Equal(files, want) {
		t.Errorf("files = %+v\nwant %+v", files, want)
	}
}

func TestParseRevisionInfoRejects(t *testing.T) {
	sha := `"sha": "` + testCommit + `"`
	for name, body := range map[string]string{
		"not json":         `{`,
		"no commit":        `{"siblings": []}`,
		"short commit":     `{"sha": "abc", "siblings": []}`,
		"path traversal":   `{` + sha + `, "siblings": [{"rfilename": "../../.bashrc"}]}`,
		"absolute path":    `{` + sha + `, "siblings": [{"rfilename": "/etc/passwd"}]}`,
		"empty path":       `{` + sha + `, "siblings": [{"rfilename": ""}]}`,
		"listed twice":     `{` + sha + `, "siblings": [{"rfilename": "a"}, {"rfilename": "a"}]}`,
		"bad lfs checksum": `{` + sha + `, "siblings": [{"rfilename": "a", "lfs": {"sha256": "../x"}}]}`,
	} {
		if _, _, err := ParseRevisionInfo([]byte(body)); err == nil {
			t.Errorf("%s: accepted %s", name, body)
		}
	}
}

func FuzzParseRevisionInfo(f *testing.F) {
	f.Add([]byte(`{"sha": "` + testCommit + `", "siblings": [{"rfilename": "a/b.json", "size": 3, "lfs": {"sha256": "` + strings.Repeat("0", 64) + `", "size": 3}}]}`))
	f.Add([]byte(`{"sha": "` + testCommit + `", "siblings": [{"rfilename": "../x"}]}`))
	f.Add([]byte(`{"sha": 1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		files, commit, err := ParseRevisionInfo(data)
		if err != nil {
			return
		}
		if !isCommitHash(commit) {
			t.Errorf("accepted commit %q", commit)
		}
		for _, f := range files {
			if err := validateRepoPath(f.Path); err != nil {
				t.Errorf("accepted path %q: %v", f.Path, err)
			}
			if f.SHA256 != "" && !isSHA256(f.SHA256) {
				t.Errorf("accepted sha256 %q", f.SHA256)
			}
		}
	})
}
