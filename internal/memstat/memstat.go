// Package memstat reads the process's resident memory: current and peak
// RSS from /proc/self/status on Linux, the Go runtime's view elsewhere.
package memstat

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
)

// PeakRSS returns the peak resident set size in bytes (VmHWM). Where the
// kernel does not report it, it returns the memory the Go runtime obtained
// from the OS, an upper bound of the Go heap's share.
func PeakRSS() int64 {
	if v, ok := readStatus("VmHWM:"); ok {
		return v
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.Sys)
}

// RSS returns the current resident set size in bytes (VmRSS), or the Go
// runtime's view where the kernel does not report it.
func RSS() int64 {
	if v, ok := readStatus("VmRSS:"); ok {
		return v
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.Sys)
}

// ResetPeak asks the kernel to reset the peak RSS counter (Linux 4.0+), so
// that PeakRSS measures from now on. It reports whether that worked.
func ResetPeak() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

func readStatus(key string) (int64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte(key)) {
			continue
		}
		f := bytes.Fields(line[len(key):])
		if len(f) < 1 {
			return 0, false
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, false
		}
		return kb * 1024, true
	}
	return 0, false
}
