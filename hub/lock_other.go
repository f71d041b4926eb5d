//go:build !unix && !windows

package hub

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// lockFile is the portable fallback: the lock is held by whoever creates
// path first (O_EXCL) and released by removing it. A process that dies
// holding it leaves the file behind, to be removed by hand.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	for d := lockPollMin; ; {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			f.Close()
			return func() { os.Remove(path) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if d, err = waitLock(ctx, d); err != nil {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
	}
}
