package hub

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestLockFileExcludes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "blob.lock")
	var (
		mu      sync.Mutex
		holders int
		most    int
		wg      sync.WaitGroup
	)
	for range 8 {
		wg.Go(func() {
			unlock, err := lockFile(context.Background(), path)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			holders++
			most = max(most, holders)
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
			mu.Lock()
			holders--
			mu.Unlock()
			unlock()
		})
	}
	wg.Wait()
	if most != 1 {
		t.Errorf("%d holders at once, want 1", most)
	}
	if exists(path) {
		t.Errorf("lock file %s left behind", path)
	}
}

func TestLockFileContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "blob.lock")
	unlock, err := lockFile(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := lockFile(ctx, path); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("lockFile on a held lock = %v, want a deadline error", err)
	}
}
