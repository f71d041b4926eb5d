package hub

import (
	"context"
	"time"
)

// Lock files keep two writers, in one process or in several, from filling
// the same blob at once. lockFile (one implementation per platform) takes
// an exclusive lock on a file, waiting while another holder has it, and
// returns the function that releases it.

const (
	lockPollMin = 2 * time.Millisecond
	lockPollMax = 100 * time.Millisecond
)

// waitLock sleeps before the next attempt to take a lock and returns the
// following delay, or ctx's error when it is done first.
func waitLock(ctx context.Context, d time.Duration) (time.Duration, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-t.C:
		return min(2*d, lockPollMax), nil
	}
}
