//go:build !amd64 || purego

package cpu

// asmLevels lists the accelerated levels: none without amd64 assembly.
func asmLevels() []*isa { return nil }
