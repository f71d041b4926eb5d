package pngmeta

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"testing"
)

func testImage() *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, 5, 3))
	for i := range img.Pix {
		img.Pix[i] = byte(i * 7)
	}
	img.Set(0, 0, color.RGBA{1, 2, 3, 255})
	return img
}

func TestRoundTrip(t *testing.T) {
	params := "a cat, best quality\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 42, Size: 512x512"
	texts := []Text{{"parameters", params}, {"Comment", "ünïcödé 🎨"}}
	var buf bytes.Buffer
	if err := Encode(&buf, testImage(), texts); err != nil {
		t.Fatal(err)
	}
	// The image still decodes with the standard library, pixels intact.
	img, err := png.Decode(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if r, g, b, _ := img.At(0, 0).RGBA(); r>>8 != 1 || g>>8 != 2 || b>>8 != 3 {
		t.Fatalf("pixel changed: %v", img.At(0, 0))
	}
	got, err := ReadText(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != texts[0] || got[1] != texts[1] {
		t.Fatalf("got %q", got)
	}
}

func TestBadKeys(t *testing.T) {
	for _, k := range []string{"", string(make([]byte, 80)), "tab\tkey"} {
		if err := Encode(&bytes.Buffer{}, testImage(), []Text{{k, "v"}}); err == nil {
			t.Errorf("key %q accepted", k)
		}
	}
}

func TestReadTextErrors(t *testing.T) {
	var buf bytes.Buffer
	if err := Encode(&buf, testImage(), []Text{{"parameters", "x"}}); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	corrupt := append([]byte(nil), good...)
	corrupt[8+25+10] ^= 0xff // inside the tEXt chunk data
	cases := map[string][]byte{
		"not png":   []byte("GIF89a......"),
		"truncated": good[:40],
		"bad crc":   corrupt,
		"empty":     nil,
	}
	for name, in := range cases {
		if _, err := ReadText(bytes.NewReader(in)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func FuzzReadText(f *testing.F) {
	var buf bytes.Buffer
	Encode(&buf, testImage(), []Text{{"parameters", "Steps: 20"}, {"k", "ü🎨"}})
	f.Add(buf.Bytes())
	f.Add([]byte("\x89PNG\r\n\x1a\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		texts, _ := ReadText(bytes.NewReader(b))
		for _, tx := range texts {
			if tx.Key == "" {
				t.Fatal("empty key returned")
			}
		}
	})
}
