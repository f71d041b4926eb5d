package pipeline

import (
	"github.com/pigment-sd/pigment/kernels"
	"github.com/pigment-sd/pigment/kernels/cpu"
)

// testKernels runs the end-to-end tests on the fast kernels (the networks'
// own tests also run the reference kernels against the same fixtures).
func testKernels() kernels.Kernels { return cpu.New(0) }
