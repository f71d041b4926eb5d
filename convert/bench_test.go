package convert

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/pigment-sd/pigment/checkpoint"
	"github.com/pigment-sd/pigment/component"
	"github.com/pigment-sd/pigment/internal/randweights"
	"github.com/pigment-sd/pigment/internal/sdconfigs"
	"github.com/pigment-sd/pigment/model/unet"
	"github.com/pigment-sd/pigment/parallel"
	"github.com/pigment-sd/pigment/tensor"
)

// sd15UNet is a full-size SD 1.5 UNet with random float16 weights (860M
// parameters, 1.7 GB), built from the embedded Hub config.
func sd15UNet(b *testing.B) *checkpoint.Model {
	b.Helper()
	cfg, err := sdconfigs.File("stable-diffusion-v1-5", "unet/config.json")
	if err != nil {
		b.Fatal(err)
	}
	c, err := unet.ParseConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	pool := parallel.New(0)
	b.Cleanup(pool.Close)
	src := randweights.New(pool, unet.WeightShapes(c), 1, tensor.F16)
	return &checkpoint.Model{
		Path: "random-sd15-unet", Kind: checkpoint.KindDiffusers, Family: checkpoint.FamilySD1,
		Components: map[component.Name]*checkpoint.Component{component.UNet: {Name: component.UNet, Config: cfg, Weights: src}},
	}
}

// BenchmarkPalettizeSD15UNet palettizes every Linear and Conv weight of a
// full-size SD 1.5 UNet (random float16 weights; k-means, one table per
// tensor) without writing, at 8, 6, 4 and 2 bits, and reports the seconds
// and the stored size against float16. The write sub-benchmark runs the
// whole Convert at 6 bits into a temporary folder.
func BenchmarkPalettizeSD15UNet(b *testing.B) {
	m := sd15UNet(b)
	for _, bits := range []int{8, 6, 4, 2} {
		b.Run(fmt.Sprintf("bits=%d", bits), func(b *testing.B) {
			s, err := Options{Bits: bits}.settle()
			if err != nil {
				b.Fatal(err)
			}
			items, err := plan(m, s)
			if err != nil {
				b.Fatal(err)
			}
			var stored, f16 int64
			start := time.Now()
			for b.Loop() {
				c := &converter{s: s}
				_, rec, err := c.compress(b.Context(), component.UNet, items[component.UNet])
				if err != nil {
					b.Fatal(err)
				}
				stored, f16 = rec.StoredBytes, rec.FloatBytes
			}
			b.ReportMetric(time.Since(start).Seconds()/float64(b.N), "s/op")
			b.ReportMetric(float64(stored)/1e6, "MB")
			b.ReportMetric(float64(stored)/float64(f16), "size/f16")
		})
	}
	b.Run("write/bits=6", func(b *testing.B) {
		start := time.Now()
		for b.Loop() {
			if _, err := Convert(b.Context(), m, filepath.Join(b.TempDir(), "pkg"), Options{Bits: 6}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(time.Since(start).Seconds()/float64(b.N), "s/op")
	})
}
