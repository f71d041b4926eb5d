package hubtest

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestParseRange(t *testing.T) {
	tests := []struct {
		h          string
		start, end int
		ok         bool
	}{
		{"bytes=0-", 0, 9, true},
		{"bytes=4-", 4, 9, true},
		{"bytes=2-5", 2, 5, true},
		{"bytes=2-50", 2, 9, true},
		{"bytes=10-", 0, 0, false},
		{"bytes=5-2", 0, 0, false},
		{"bytes=-3", 0, 0, false},
		{"bytes=0-1,3-4", 0, 0, false},
		{"items=0-", 0, 0, false},
	}
	for _, tt := range tests {
		start, end, ok := parseRange(tt.h, 10)
		if start != tt.start || end != tt.end || ok != tt.ok {
			t.Errorf("parseRange(%q, 10) = %d, %d, %v; want %d, %d, %v", tt.h, start, end, ok, tt.start, tt.end, tt.ok)
		}
	}
}

func TestServerHeaders(t *testing.T) {
	big := []byte(strings.Repeat("x", 2000))
	small := []byte("{}")
	s := NewServer(t, map[string][]byte{"big.bin": big, "c.json": small}, Options{})
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	resp, err := noFollow.Head(s.URL + "/" + s.RepoID + "/resolve/main/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("X-Linked-Etag") != `"`+SHA256(big)+`"` ||
		resp.Header.Get("X-Linked-Size") != "2000" || resp.Header.Get("X-Repo-Commit") != s.Commit() ||
		!strings.HasPrefix(resp.Header.Get("Location"), s.CDNURL) {
		t.Errorf("HEAD of an LFS file: %d %v", resp.StatusCode, resp.Header)
	}

	req, _ := http.NewRequest("GET", s.URL+"/"+s.RepoID+"/resolve/"+s.Commit()+"/c.json", nil)
	req.Header.Set("Range", "bytes=1-")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || string(body) != "}" || resp.Header.Get("ETag") != `"`+GitBlobSHA1(small)+`"` {
		t.Errorf("ranged GET of a small file: %d %q %v", resp.StatusCode, body, resp.Header)
	}

	reqs := s.Requests()
	if len(reqs) != 2 || reqs[0].Status != http.StatusFound || reqs[1].Range != "bytes=1-" || reqs[1].File != "c.json" {
		t.Errorf("requests = %+v", reqs)
	}
}

func TestGitBlobSHA1(t *testing.T) {
	// git hash-object of "hello\n".
	if got := GitBlobSHA1([]byte("hello\n")); got != "ce013625030ba8dba906f756967f9e9ca394464a" {
		t.Errorf("GitBlobSHA1 = %s", got)
	}
}
