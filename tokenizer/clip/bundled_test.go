package clip

import (
	"testing"

	"github.com/pigment-sd/pigment/internal/fixtures"
)

func TestBundledMatchesModelFiles(t *testing.T) {
	for _, c := range []struct{ family, dir string }{{"sd1", "tokenizer-clip"}, {"sd2", "tokenizer-clip-sd2"}} {
		b, err := Bundled(c.family)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := Load(fixtures.Path(t, c.dir+"/vocab.json")[:len(fixtures.Path(t, c.dir+"/vocab.json"))-len("/vocab.json")])
		if err != nil {
			t.Fatal(err)
		}
		if b.PadID() != ref.PadID() || b.BOS() != ref.BOS() || b.EOS() != ref.EOS() {
			t.Fatalf("%s: specials differ: pad %d/%d", c.family, b.PadID(), ref.PadID())
		}
		for _, p := range []string{"a photograph of an astronaut riding a horse!", ""} {
			x, _ := b.EncodePadded(p, 77)
			y, _ := ref.EncodePadded(p, 77)
			for i := range x {
				if x[i] != y[i] {
					t.Fatalf("%s %q: ids differ at %d", c.family, p, i)
				}
			}
		}
	}
	if _, err := Bundled("sdxl"); err == nil {
		t.Fatal("unknown family accepted")
	}
}
