package safetensors

import (
	"testing"

	"github.com/pigment-sd/pigment/internal/fixtures"
)

func TestOpenFixture(t *testing.T) {
	f, err := Open(fixtures.Path(t, "tiny-sd15/refs.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, shape, err := f.Float32("unet.out")
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 2*4*16*16 || shape[0] != 2 {
		t.Fatalf("unet.out shape %v", shape)
	}
	ids, _, err := f.Int64("text_encoder.input_ids")
	if err != nil || ids[0] != 49406 {
		t.Fatalf("input ids %v %v", ids[:3], err)
	}
}
