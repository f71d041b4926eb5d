package kerneltest

import (
	"testing"

	"github.com/pigment-sd/pigment/kernels/ref"
)

// TestRef runs the suite on the oracle itself: it checks the suite's
// plumbing (guards, in-place cases, tolerances) and that ref's two
// attention modes agree.
func TestRef(t *testing.T) { Run(t, ref.New()) }
