//go:build !amd64 || purego

package palette

// panelASM is false: there is no accelerated expansion.
const panelASM = false

// readPanelFast reports false: there is no accelerated expansion.
func (p *Tensor) readPanelFast(dst []float32, lo, rows, k0, kc, stride int) bool { return false }
