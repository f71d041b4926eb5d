package safetensors

import (
	"path/filepath"
	"runtime"
	"testing"

	"github.com/pigment-sd/pigment/internal/memstat"
	"github.com/pigment-sd/pigment/tensor"
)

// Evict drops a mapped file from resident memory and leaves its data
// readable.
func TestEvict(t *testing.T) {
	const n = 48 << 20
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i * 7)
	}
	path := filepath.Join(t.TempDir(), "big.safetensors")
	if err := WriteFile(path, []Tensor{{Name: "x", DType: tensor.U8, Shape: []int{n}, Data: data}}, nil); err != nil {
		t.Fatal(err)
	}
	data = nil
	runtime.GC()
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, _ := f.Data("x")
	sum := 0
	for i := 0; i < len(b); i += 4096 {
		sum += int(b[i]) // touch every page
	}
	before := memstat.RSS()
	if err := f.Evict(); err != nil {
		t.Fatal(err)
	}
	after := memstat.RSS()
	if runtime.GOOS == "linux" && before-after < n/2 {
		t.Errorf("resident memory went from %d to %d bytes: the mapping was not evicted", before, after)
	}
	again := 0
	for i := 0; i < len(b); i += 4096 {
		again += int(b[i])
	}
	if again != sum || b[12345] != byte(12345*7%256) {
		t.Fatal("data changed after Evict")
	}
	if err := (&File{}).Evict(); err != nil {
		t.Fatal("in-memory file:", err)
	}
}
