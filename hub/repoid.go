package hub

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// DefaultRevision is the branch used when no revision is given.
const DefaultRevision = "main"

// ValidateRepoID checks a repository id as the Hub accepts it: "name" or
// "owner/name", each part made of ASCII letters, digits, '-', '_' and '.',
// starting and ending with a letter, digit or '_', without "--" or "..",
// not ending in ".git", at most 96 characters.
func ValidateRepoID(id string) error {
	bad := func(why string) error { return fmt.Errorf("invalid repository id %q: %s", id, why) }
	if id == "" {
		return bad("empty")
	}
	if len(id) > 96 {
		return bad("longer than 96 characters")
	}
	parts := strings.Split(id, "/")
	if len(parts) > 2 {
		return bad(`want "owner/name"`)
	}
	for _, p := range parts {
		if p == "" {
			return bad("empty part")
		}
		for i := 0; i < len(p); i++ {
			if !isWordByte(p[i]) && p[i] != '-' && p[i] != '.' {
				return bad(fmt.Sprintf("character %q not allowed", p[i]))
			}
		}
		if !isWordByte(p[0]) || !isWordByte(p[len(p)-1]) {
			return bad("parts must start and end with a letter, digit or '_'")
		}
	}
	if strings.Contains(id, "--") || strings.Contains(id, "..") {
		return bad(`"--" and ".." are not allowed`)
	}
	if strings.HasSuffix(id, ".git") {
		return bad(`cannot end with ".git"`)
	}
	return nil
}

func isWordByte(b byte) bool {
	return b == '_' || b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
}

// validateRevision checks a branch, tag or commit name before it is used
// in a URL or as a file name under refs/.
func validateRevision(rev string) error {
	if rev == "" {
		return fmt.Errorf("empty revision")
	}
	if len(rev) > 255 {
		return fmt.Errorf("revision %.40q...: too long", rev)
	}
	for _, r := range rev {
		if r <= ' ' || r == 0x7f || r == '\\' {
			return fmt.Errorf("invalid revision %q: spaces, control characters and backslashes are not allowed", rev)
		}
	}
	if rev[0] == '/' || rev[len(rev)-1] == '/' {
		return fmt.Errorf("invalid revision %q", rev)
	}
	for _, part := range strings.Split(rev, "/") {
		if part == "" || part == "." || part == ".." {
			return fmt.Errorf("invalid revision %q", rev)
		}
	}
	return nil
}

// ParseRepoRef interprets s as a Hub repository reference "owner/name"
// or "owner/name@revision". It returns ok == false for anything that
// should be taken as a local path instead: a path that exists on disk, one
// that starts with "./", "../", "/", "~" or a drive letter, one with a
// backslash, or a string that is not a valid "owner/name" id. revision is
// empty when s names none.
func ParseRepoRef(s string) (repoID, revision string, ok bool) {
	if s == "" || strings.HasPrefix(s, ".") || strings.HasPrefix(s, "/") ||
		strings.HasPrefix(s, "~") || strings.Contains(s, `\`) || filepath.VolumeName(s) != "" {
		return "", "", false
	}
	if _, err := os.Lstat(s); err == nil {
		return "", "", false
	}
	repoID = s
	if i := strings.IndexByte(s, '@'); i >= 0 {
		repoID, revision = s[:i], s[i+1:]
		if validateRevision(revision) != nil {
			return "", "", false
		}
	}
	if strings.Count(repoID, "/") != 1 || ValidateRepoID(repoID) != nil {
		return "", "", false
	}
	return repoID, revision, true
}

// isCommitHash reports whether s is a full git commit hash (40 lowercase
// hex digits), as the Hub returns them.
func isCommitHash(s string) bool {
	return len(s) == 40 && isLowerHex(s)
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// isSHA256 reports whether s looks like a hex sha256 digest, the etag of
// an LFS file.
func isSHA256(s string) bool {
	return len(s) == 64 && isLowerHex(s)
}

// validateRepoPath checks a file path listed by the Hub before it is
// joined to a local folder: relative, forward slashes, no empty, "." or
// ".." parts, no backslashes or control characters.
func validateRepoPath(p string) error {
	if p == "" {
		return fmt.Errorf("empty file path")
	}
	if len(p) > 4096 {
		return fmt.Errorf("file path %.40q...: too long", p)
	}
	for _, r := range p {
		if r < ' ' || r == 0x7f || r == '\\' {
			return fmt.Errorf("file path %q: control characters and backslashes are not allowed", p)
		}
	}
	if filepath.VolumeName(p) != "" || strings.Contains(p, ":") && filepath.Separator == '\\' {
		return fmt.Errorf("file path %q: not a relative path", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || part == ".." {
			return fmt.Errorf("file path %q: not a clean relative path", p)
		}
	}
	return nil
}

// normalizeETag strips the weak marker and the quotes from an ETag header
// and checks that the result is safe as a file name.
func normalizeETag(h string) (string, error) {
	e := strings.TrimPrefix(strings.TrimSpace(h), "W/")
	e = strings.Trim(e, `"`)
	if e == "" {
		return "", fmt.Errorf("no ETag")
	}
	if len(e) > 128 {
		return "", fmt.Errorf("ETag %.40q...: too long", e)
	}
	for i := 0; i < len(e); i++ {
		if !isWordByte(e[i]) && e[i] != '-' {
			return "", fmt.Errorf("ETag %q: unexpected character %q", e, e[i])
		}
	}
	return e, nil
}
