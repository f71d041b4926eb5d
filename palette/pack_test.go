package palette

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/pigment-sd/pigment/tensor"
)

var widths = []int{1, 2, 3, 4, 6, 8}

// refPack is the bit order written out one bit at a time: bit t of index
// i is bit i*n+t of the stream, which is bit (i*n+t)%8 of byte (i*n+t)/8.
func refPack(idx []uint8, n int) []byte {
	out := make([]byte, (len(idx)*n+7)/8)
	for i, v := range idx {
		for t := 0; t < n; t++ {
			if v>>t&1 == 1 {
				b := i*n + t
				out[b/8] |= 1 << (b % 8)
			}
		}
	}
	return out
}

func randIdx(r *rand.Rand, count, n int) []uint8 {
	idx := make([]uint8, count)
	for i := range idx {
		idx[i] = uint8(r.IntN(1 << n))
	}
	return idx
}

func TestPackBitOrder(t *testing.T) {
	tests := []struct {
		n    int
		idx  []uint8
		want []byte
	}{
		{8, []uint8{0x12, 0xff, 0}, []byte{0x12, 0xff, 0}},
		{4, []uint8{1, 2, 15}, []byte{0x21, 0x0f}},
		{2, []uint8{1, 2, 3, 0, 3}, []byte{0b00111001, 0b11}},
		{1, []uint8{1, 0, 0, 0, 0, 0, 0, 1, 1}, []byte{0x81, 0x01}},
		// 3 bits: 8 indices in 24 bits, w = 0b111_110_101_100_011_010_001_000
		{3, []uint8{0, 1, 2, 3, 4, 5, 6, 7}, []byte{0b10001000, 0b11000110, 0b11111010}},
		// 6 bits: index 0 = 0x3f fills byte 0's low 6 bits, index 1 = 1
		// starts at bit 6.
		{6, []uint8{0x3f, 1, 0x20}, []byte{0x7f, 0x00, 0x02}},
	}
	for _, tc := range tests {
		got := make([]byte, PackedLen(len(tc.idx), tc.n))
		Pack(got, tc.idx, tc.n)
		if !bytes.Equal(got, tc.want) {
			t.Errorf("n=%d %v: packed %08b, want %08b", tc.n, tc.idx, got, tc.want)
		}
		if ref := refPack(tc.idx, tc.n); !bytes.Equal(ref, tc.want) {
			t.Errorf("n=%d: reference packer %08b disagrees with %08b", tc.n, ref, tc.want)
		}
	}
}

func TestPackRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range widths {
		for _, count := range []int{0, 1, 2, 3, 5, 7, 9, 13, 17, 31, 33, 63, 100, 1001} {
			idx := randIdx(r, count, n)
			packed := make([]byte, PackedLen(count, n))
			Pack(packed, idx, n)
			if ref := refPack(idx, n); !bytes.Equal(packed, ref) {
				t.Fatalf("n=%d count=%d: Pack differs from the bit-by-bit reference", n, count)
			}
			got := make([]uint8, count)
			Unpack(got, packed, n, 0, count)
			if !bytes.Equal(got, idx) {
				t.Fatalf("n=%d count=%d: round trip differs", n, count)
			}
			// Every window, for the short lengths; a sample for the long.
			for start := 0; start <= count; start++ {
				for c := 0; start+c <= count; c++ {
					if count > 40 && c > 2 && c != count-start && (start*7+c)%23 != 0 {
						continue
					}
					w := make([]uint8, c)
					Unpack(w, packed, n, start, c)
					if !bytes.Equal(w, idx[start:start+c]) {
						t.Fatalf("n=%d count=%d: Unpack(start=%d, count=%d) = %v, want %v", n, count, start, c, w, idx[start:start+c])
					}
				}
			}
		}
	}
}

func TestPackPanics(t *testing.T) {
	tests := []struct {
		name string
		f    func()
	}{
		{"pack width", func() { Pack(make([]byte, 4), []uint8{1}, 5) }},
		{"pack short dst", func() { Pack(make([]byte, 1), []uint8{1, 2, 3}, 4) }},
		{"pack index too big", func() { Pack(make([]byte, 1), []uint8{4}, 2) }},
		{"unpack width", func() { Unpack(make([]uint8, 1), []byte{0}, 7, 0, 1) }},
		{"unpack past end", func() { Unpack(make([]uint8, 3), []byte{0}, 4, 0, 3) }},
		{"unpack negative", func() { Unpack(make([]uint8, 1), []byte{0}, 4, -1, 1) }},
		{"unpack short dst", func() { Unpack(make([]uint8, 1), []byte{0, 0}, 4, 0, 2) }},
	}
	for _, tc := range tests {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", tc.name)
				}
			}()
			tc.f()
		}()
	}
}

// FuzzPack checks Pack and Unpack against the bit-by-bit reference, and
// that a Tensor built by New from arbitrary stored bytes expands any row
// block in bounds and as the reference says.
func FuzzPack(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, uint8(2), uint16(3), uint16(2), uint8(1))
	f.Add([]byte{0xff, 0x00, 0xaa}, uint8(4), uint16(1), uint16(0), uint8(0))
	f.Add(bytes.Repeat([]byte{0x5a}, 40), uint8(5), uint16(7), uint16(3), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, nsel uint8, cols uint16, gsz uint16, lo uint8) {
		n := widths[int(nsel)%len(widths)]
		// Indices from data, masked to n bits.
		idx := make([]uint8, len(data))
		for i, b := range data {
			idx[i] = b & uint8(1<<n-1)
		}
		packed := make([]byte, PackedLen(len(idx), n))
		Pack(packed, idx, n)
		if !bytes.Equal(packed, refPack(idx, n)) {
			t.Fatalf("n=%d: Pack differs from reference", n)
		}
		back := make([]uint8, len(idx))
		Unpack(back, packed, n, 0, len(idx))
		if !bytes.Equal(back, idx) {
			t.Fatalf("n=%d: round trip differs", n)
		}

		// data as stored index bytes of a [rows, c] tensor.
		c := int(cols)%9 + 1
		count := len(data) * 8 / n // indices the bytes can hold
		rows := count / c
		if rows == 0 {
			return
		}
		stored := data[:PackedLen(rows*c, n)]
		groupSize := int(gsz) % (rows + 2)
		groups := 1
		if groupSize > 0 {
			groups = (rows + groupSize - 1) / groupSize
		}
		lut := make([]float32, groups<<n)
		for i := range lut {
			lut[i] = float32(i)
		}
		p, err := New([]int{rows, c}, n, groupSize, lut, tensor.F32, stored)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		all := make([]uint8, rows*c)
		Unpack(all, stored, n, 0, rows*c)
		a := int(lo) % rows
		for b := a; b <= rows; b++ {
			dst := make([]float32, (b-a)*c)
			p.ReadRows(dst, a, b)
			for i, v := range dst {
				e := a*c + i
				g := 0
				if groupSize > 0 {
					g = e / c / groupSize
				}
				if want := float32(g<<n + int(all[e])); v != want {
					t.Fatalf("ReadRows(%d, %d)[%d] = %v, want %v", a, b, i, v, want)
				}
			}
		}
		// A wrong length is refused, never read out of bounds.
		if _, err := New([]int{rows + 1, c}, n, groupSize, lut, tensor.F32, stored); err == nil && PackedLen((rows+1)*c, n) != len(stored) {
			t.Fatal("New accepted too few index bytes")
		}
	})
}
