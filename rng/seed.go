package rng

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strconv"
)

// ParseSeed reads a seed as users type it: any 64-bit integer, negative
// ones taken modulo 2^64 as PyTorch does (its generator, like New, then
// uses the low 32 bits).
func ParseSeed(s string) (uint64, error) {
	if u, err := strconv.ParseUint(s, 10, 64); err == nil {
		return u, nil
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return uint64(i), nil
	}
	return 0, fmt.Errorf("seed %q is not a 64-bit integer", s)
}

// RandomSeed returns a random 32-bit seed (short enough to copy into other
// tools, which often take only 32 bits).
func RandomSeed() (uint64, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, err
	}
	return uint64(binary.LittleEndian.Uint32(b[:])), nil
}
