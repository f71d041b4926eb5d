//go:build amd64 && !purego

package palette

import (
	"testing"
	"unsafe"
)

// TestPanelConstsLayout checks the offsets panel_amd64.s uses.
func TestPanelConstsLayout(t *testing.T) {
	var c panelConsts
	for _, f := range []struct {
		name      string
		got, want uintptr
	}{
		{"ctl", unsafe.Offsetof(c.ctl), 0},
		{"shift", unsafe.Offsetof(c.shift), 64},
		{"and", unsafe.Offsetof(c.and), 128},
		{"bit5", unsafe.Offsetof(c.bit5), 132},
		{"kind", unsafe.Offsetof(c.kind), 136},
		{"full", unsafe.Offsetof(c.full), 140},
		{"tail", unsafe.Offsetof(c.tail), 144},
		{"step", unsafe.Offsetof(c.step), 148},
		{"rows", unsafe.Offsetof(c.rows), 152},
		{"lut", unsafe.Offsetof(c.lut), 192},
	} {
		if f.got != f.want {
			t.Errorf("panelConsts.%s at offset %d, panel_amd64.s expects %d", f.name, f.got, f.want)
		}
	}
}
