package testmodel

import (
	"github.com/pigment-sd/pigment/kernels"
	"github.com/pigment-sd/pigment/kernels/cpu"
	"github.com/pigment-sd/pigment/kernels/ref"
)

// KernelCase is one kernel implementation and attention mode the network
// fixture tests run on.
type KernelCase struct {
	Name string
	K    kernels.Kernels
	Mode kernels.AttentionMode
}

// KernelCases lists the combinations the fixture tests cover: the
// reference kernels (which compute both attention modes the same way, so
// once) and the fast kernels in both attention modes, so every
// optimization is checked against diffusers' outputs, not only against
// the reference kernels.
func KernelCases() []KernelCase {
	fast := cpu.New(0)
	return []KernelCase{
		{"ref", ref.New(), kernels.AttentionChunked},
		{"cpu/chunked", fast, kernels.AttentionChunked},
		{"cpu/original", fast, kernels.AttentionOriginal},
	}
}
