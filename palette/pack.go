package palette

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// Widths lists the supported index widths in bits, the one list every
// reader, writer, flag and recipe checks against.
func Widths() []int { return []int{1, 2, 3, 4, 6, 8} }

// WidthsText is Widths as messages name them.
const WidthsText = "1, 2, 3, 4, 6 or 8"

// ValidBits reports whether n is a supported index width (see Widths).
func ValidBits(n int) bool { return slices.Contains(Widths(), n) }

// PackedLen is the number of bytes that count n-bit indices occupy when
// packed: ceil(count*n/8).
func PackedLen(count, n int) int { return (count*n + 7) / 8 }

// Pack writes the n-bit indices idx densely into dst in the package's bit
// order: index i occupies bits [i*n, (i+1)*n) of the little-endian bit
// stream (bit b of the stream is bit b%8 of byte b/8), least significant
// bit first. Padding bits of the last byte are set to zero.
//
// dst must hold PackedLen(len(idx), n) bytes. Pack panics if n is not a
// supported width, if dst is too short or if an index does not fit in n
// bits; these are programming errors, not data errors.
func Pack(dst []byte, idx []uint8, n int) {
	if !ValidBits(n) {
		panic(fmt.Sprintf("palette: Pack with unsupported width %d", n))
	}
	need := PackedLen(len(idx), n)
	if len(dst) < need {
		panic(fmt.Sprintf("palette: Pack of %d %d-bit indices into %d bytes (need %d)", len(idx), n, len(dst), need))
	}
	var or uint8
	for _, v := range idx {
		or |= v
	}
	if n < 8 && or>>n != 0 {
		panic(fmt.Sprintf("palette: Pack: an index does not fit in %d bits", n))
	}
	w := bitWriter{buf: dst[:need], n: uint(n)}
	w.put(idx)
	w.flush()
}

// Unpack reads count n-bit indices, starting at index start, from the
// packed stream src (see Pack for the bit order) into dst[:count].
//
// Unpack panics if n is not a supported width, or if dst or src is too
// short for the request; these are programming errors.
func Unpack(dst []uint8, src []byte, n int, start, count int) {
	checkDecode(len(dst), len(src), n, start, count)
	var id [256]uint8
	for i := range id {
		id[i] = uint8(i)
	}
	decode(dst[:count], src, n, start, id[:1<<n])
}

func checkDecode(ndst, nsrc, n, start, count int) {
	if !ValidBits(n) {
		panic(fmt.Sprintf("palette: unpack with unsupported width %d", n))
	}
	if start < 0 || count < 0 || ndst < count || PackedLen(start+count, n) > nsrc {
		panic(fmt.Sprintf("palette: unpack of %d %d-bit indices from %d into %d values from %d bytes", count, n, start, ndst, nsrc))
	}
}

// decode writes lut[index] for the count = len(dst) indices starting at
// index start of the packed stream src. lut has exactly 1<<n entries. The
// caller has checked the bounds. Eight indices always fill n whole bytes,
// so each width has its own loop that decodes 8 values from one n-byte
// word; the unaligned head and tail (under 8 values each) go through get.
func decode[T float32 | uint8](dst []T, src []byte, n, start int, lut []T) {
	count := len(dst)
	i := 0
	for ; i < count && (start+i)%8 != 0; i++ {
		dst[i] = lut[get(src, n, start+i)]
	}
	body := (count - i) / 8
	b0 := (start + i) / 8 * n
	s := src[b0 : b0+body*n]
	d := dst[i : i+body*8]
	// The length tests let the compiler drop the bounds checks inside.
	switch n {
	case 8:
		l := (*[256]T)(lut)
		for len(s) >= 8 && len(d) >= 8 {
			w := binary.LittleEndian.Uint64(s)
			d[0], d[1], d[2], d[3] = l[uint8(w)], l[uint8(w>>8)], l[uint8(w>>16)], l[uint8(w>>24)]
			d[4], d[5], d[6], d[7] = l[uint8(w>>32)], l[uint8(w>>40)], l[uint8(w>>48)], l[uint8(w>>56)]
			s, d = s[8:], d[8:]
		}
	case 6:
		l := (*[64]T)(lut)
		for len(s) >= 6 && len(d) >= 8 {
			w := uint64(binary.LittleEndian.Uint32(s)) | uint64(binary.LittleEndian.Uint16(s[4:]))<<32
			d[0], d[1], d[2], d[3] = l[w&63], l[w>>6&63], l[w>>12&63], l[w>>18&63]
			d[4], d[5], d[6], d[7] = l[w>>24&63], l[w>>30&63], l[w>>36&63], l[w>>42&63]
			s, d = s[6:], d[8:]
		}
	case 4:
		l := (*[16]T)(lut)
		for len(s) >= 4 && len(d) >= 8 {
			w := binary.LittleEndian.Uint32(s)
			d[0], d[1], d[2], d[3] = l[w&15], l[w>>4&15], l[w>>8&15], l[w>>12&15]
			d[4], d[5], d[6], d[7] = l[w>>16&15], l[w>>20&15], l[w>>24&15], l[w>>28]
			s, d = s[4:], d[8:]
		}
	case 3:
		l := (*[8]T)(lut)
		for len(s) >= 3 && len(d) >= 8 {
			w := uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16
			d[0], d[1], d[2], d[3] = l[w&7], l[w>>3&7], l[w>>6&7], l[w>>9&7]
			d[4], d[5], d[6], d[7] = l[w>>12&7], l[w>>15&7], l[w>>18&7], l[w>>21&7]
			s, d = s[3:], d[8:]
		}
	case 2:
		l := (*[4]T)(lut)
		for len(s) >= 2 && len(d) >= 8 {
			w := binary.LittleEndian.Uint16(s)
			d[0], d[1], d[2], d[3] = l[w&3], l[w>>2&3], l[w>>4&3], l[w>>6&3]
			d[4], d[5], d[6], d[7] = l[w>>8&3], l[w>>10&3], l[w>>12&3], l[w>>14]
			s, d = s[2:], d[8:]
		}
	case 1:
		l := (*[2]T)(lut)
		for len(s) >= 1 && len(d) >= 8 {
			w := s[0]
			d[0], d[1], d[2], d[3] = l[w&1], l[w>>1&1], l[w>>2&1], l[w>>3&1]
			d[4], d[5], d[6], d[7] = l[w>>4&1], l[w>>5&1], l[w>>6&1], l[w>>7]
			s, d = s[1:], d[8:]
		}
	}
	for i += body * 8; i < count; i++ {
		dst[i] = lut[get(src, n, start+i)]
	}
}

// get returns index i of the packed stream src.
func get(src []byte, n, i int) uint8 {
	bit := i * n
	b := bit / 8
	w := uint(src[b])
	if b+1 < len(src) {
		w |= uint(src[b+1]) << 8
	}
	return uint8(w >> (bit % 8) & (1<<n - 1))
}

// bitWriter appends n-bit indices to buf in the package's bit order,
// starting at bit 0 of buf[0]. Only whole bytes are written until flush.
type bitWriter struct {
	buf   []byte
	off   int    // next byte of buf to write
	acc   uint64 // pending bits, least significant first
	nbits uint   // number of pending bits
	n     uint
}

// skip starts the stream k bits into buf[0] (those bits stay zero).
func (w *bitWriter) skip(k uint) { w.nbits += k }

func (w *bitWriter) put(idx []uint8) {
	acc, nb, n, off := w.acc, w.nbits, w.n, w.off
	buf := w.buf
	for _, v := range idx {
		acc |= uint64(v) << nb
		nb += n
		if nb >= 32 {
			binary.LittleEndian.PutUint32(buf[off:], uint32(acc))
			off += 4
			acc >>= 32
			nb -= 32
		}
	}
	w.acc, w.nbits, w.off = acc, nb, off
}

// putMapped appends m[b] for every b in bits.
func (w *bitWriter) putMapped(bits []uint16, m *[65536]uint8) {
	acc, nb, n, off := w.acc, w.nbits, w.n, w.off
	buf := w.buf
	for _, b := range bits {
		acc |= uint64(m[b]) << nb
		nb += n
		if nb >= 32 {
			binary.LittleEndian.PutUint32(buf[off:], uint32(acc))
			off += 4
			acc >>= 32
			nb -= 32
		}
	}
	w.acc, w.nbits, w.off = acc, nb, off
}

// flush writes the pending bits, the last byte padded with zero bits.
func (w *bitWriter) flush() {
	for w.nbits > 0 {
		w.buf[w.off] = byte(w.acc)
		w.off++
		w.acc >>= 8
		if w.nbits < 8 {
			w.nbits = 0
		} else {
			w.nbits -= 8
		}
	}
}
