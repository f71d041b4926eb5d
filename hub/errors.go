package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Errors that the errors returned by this package wrap, for errors.Is.
var (
	// ErrRepoNotFound: the repository does not exist, or it is private or
	// gated and the request was not authorized to see it (the Hub answers
	// both the same way).
	ErrRepoNotFound = errors.New("repository not found")
	// ErrRevisionNotFound: the branch, tag or commit does not exist.
	ErrRevisionNotFound = errors.New("revision not found")
	// ErrEntryNotFound: the file does not exist at that revision.
	ErrEntryNotFound = errors.New("file not found")
	// ErrGatedRepo: the repository is gated and the token's account has
	// not been granted access (or no token was sent).
	ErrGatedRepo = errors.New("gated repository")
	// ErrForbidden: any other 403 answer.
	ErrForbidden = errors.New("access denied")
	// ErrNotCached: offline mode, and the cache does not hold what was asked.
	ErrNotCached = errors.New("not in the cache")
	// ErrChecksum: downloaded bytes do not match the expected sha256 or size.
	ErrChecksum = errors.New("checksum mismatch")
)

// HTTPError is a request the Hub (or the content delivery network)
// answered with an error status.
type HTTPError struct {
	StatusCode int
	// Code is the Hub's X-Error-Code header (RepoNotFound, GatedRepo,
	// RevisionNotFound, EntryNotFound, ...), if any.
	Code string
	// ServerMessage is the Hub's own explanation (X-Error-Message or the
	// "error" field of a JSON body), if any.
	ServerMessage string
	// URL is the request's URL.
	URL string
	// RepoID, Revision and File say what was asked for; File is empty for
	// repository-level requests.
	RepoID, Revision, File string
	// TokenSent reports whether the request carried an Authorization header.
	TokenSent bool

	kind error
	msg  string
}

func (e *HTTPError) Error() string { return e.msg }

// Unwrap returns one of the package's sentinel errors (ErrRepoNotFound,
// ErrGatedRepo, ...) or nil for other failures.
func (e *HTTPError) Unwrap() error { return e.kind }

// request describes what a Hub request is about, for error messages.
type request struct {
	repoID, revision, file string
	// hub is false for requests to other hosts (the content delivery
	// network), whose answers carry no Hub error codes.
	hub bool
}

// errorFromResponse builds the error for a failed response and closes its
// body. endpoint is the Hub's URL, used in hints.
func errorFromResponse(resp *http.Response, what request, endpoint string) *HTTPError {
	e := &HTTPError{
		StatusCode:    resp.StatusCode,
		Code:          resp.Header.Get("X-Error-Code"),
		ServerMessage: strings.TrimSpace(resp.Header.Get("X-Error-Message")),
		URL:           resp.Request.URL.Redacted(),
		RepoID:        what.repoID,
		Revision:      what.revision,
		File:          what.file,
		TokenSent:     resp.Request.Header.Get("Authorization") != "",
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if e.ServerMessage == "" {
		e.ServerMessage = messageFromBody(body)
	}

	token := "no token sent"
	if e.TokenSent {
		token = "a token was sent"
	}
	status := fmt.Sprintf("HTTP %d, %s", e.StatusCode, token)
	repo := fmt.Sprintf("repository %q", what.repoID)
	target := repo
	if what.file != "" {
		target = fmt.Sprintf("file %q in %s", what.file, repo)
	}
	if what.revision != "" {
		target += fmt.Sprintf(" at revision %q", what.revision)
	}
	gatedMsg := strings.Contains(strings.ToLower(e.ServerMessage), "gated") ||
		strings.Contains(strings.ToLower(e.ServerMessage), "restricted")

	var msg string
	switch {
	case !what.hub:
		msg = fmt.Sprintf("download %s: HTTP %d %s from %s", target, e.StatusCode, http.StatusText(e.StatusCode), hostOf(e.URL))
	case e.Code == "GatedRepo" || ((e.StatusCode == 401 || e.StatusCode == 403) && gatedMsg):
		e.kind = ErrGatedRepo
		if e.TokenSent {
			msg = fmt.Sprintf("%s is gated and the token's account has no access (%s): request access at %s/%s with that account",
				repo, status, endpoint, what.repoID)
		} else {
			msg = fmt.Sprintf("%s is gated (%s): request access at %s/%s, then set HF_TOKEN or write a token to $HF_HOME/token",
				repo, status, endpoint, what.repoID)
		}
	case e.Code == "RevisionNotFound":
		e.kind = ErrRevisionNotFound
		msg = fmt.Sprintf("revision %q not found in %s (%s)", what.revision, repo, status)
	case e.Code == "EntryNotFound" || (e.Code == "" && e.StatusCode == 404 && what.file != ""):
		e.kind = ErrEntryNotFound
		msg = fmt.Sprintf("%s not found (%s)", target, status)
	case e.Code == "RepoNotFound" || e.StatusCode == 401 || (e.Code == "" && e.StatusCode == 404):
		e.kind = ErrRepoNotFound
		if e.TokenSent {
			msg = fmt.Sprintf("%s not found (%s): check the name, and that the token's account can read it", repo, status)
		} else {
			msg = fmt.Sprintf("%s not found (%s): check the name; for a private or gated repository set HF_TOKEN or write a token to $HF_HOME/token", repo, status)
		}
	case e.StatusCode == 403:
		e.kind = ErrForbidden
		msg = fmt.Sprintf("access to %s denied (%s): make sure the token has the needed permissions", target, status)
	default:
		msg = fmt.Sprintf("request for %s failed: HTTP %d %s", target, e.StatusCode, http.StatusText(e.StatusCode))
	}
	if e.ServerMessage != "" && what.hub {
		msg += fmt.Sprintf(" (server: %s)", truncate(e.ServerMessage, 300))
	}
	e.msg = msg
	return e
}

// messageFromBody extracts the Hub's message from a JSON error body
// ({"error": "..."} or {"error": ["...", ...]}).
func messageFromBody(body []byte) string {
	var v struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &v) != nil || len(v.Error) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(v.Error, &s) == nil {
		return strings.TrimSpace(s)
	}
	var list []string
	if json.Unmarshal(v.Error, &list) == nil {
		return strings.TrimSpace(strings.Join(list, "; "))
	}
	return ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func hostOf(rawURL string) string {
	if i := strings.Index(rawURL, "://"); i >= 0 {
		rest := rawURL[i+3:]
		if j := strings.IndexAny(rest, "/?#"); j >= 0 {
			return rest[:j]
		}
		return rest
	}
	return rawURL
}
