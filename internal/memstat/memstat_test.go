package memstat

import (
	"runtime"
	"testing"
)

func TestPeakAtLeastCurrent(t *testing.T) {
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	cur, peak := RSS(), PeakRSS()
	if cur <= 0 || peak <= 0 {
		t.Fatalf("rss %d peak %d", cur, peak)
	}
	if peak < cur {
		t.Fatalf("peak %d below current %d", peak, cur)
	}
	if runtime.GOOS == "linux" && peak < 64<<20 {
		t.Fatalf("peak %d below the 64 MiB just touched", peak)
	}
	runtime.KeepAlive(buf)
}
