package pipeline

import (
	"fmt"
	"image"
	"path/filepath"
	"strings"

	"github.com/pigment-sd/pigment/scheduler"
)

// ScaleFactor returns the ratio of image size to latent size (8 for
// Stable Diffusion): widths and heights must be multiples of it.
func (m *Model) ScaleFactor() int {
	if m.VAEScaleFactor <= 0 {
		return 8
	}
	return m.VAEScaleFactor
}

// SetInitImage makes p an img2img request from img. A zero p.Width or
// p.Height becomes the image's own, rounded down to a multiple of the
// scale factor, as diffusers does; an image of another size than the
// result is resized (resized reports it).
func (m *Model) SetInitImage(p *Params, img image.Image) (resized bool, err error) {
	f := m.ScaleFactor()
	b := img.Bounds()
	if p.Width == 0 {
		p.Width = b.Dx() / f * f
	}
	if p.Height == 0 {
		p.Height = b.Dy() / f * f
	}
	if p.Width <= 0 || p.Height <= 0 || p.Width%f != 0 || p.Height%f != 0 {
		return false, paramErr("width and height must be positive multiples of %d, got %dx%d", f, p.Width, p.Height)
	}
	p.InitImage, resized = ImageToTensor(img, p.Width, p.Height)
	return resized, nil
}

// SetDefaultSize gives a zero p.Width or p.Height the model's native size
// (its UNet's sample size times the scale factor).
func (m *Model) SetDefaultSize(p *Params) {
	native := m.SampleSize * m.ScaleFactor()
	if p.Width == 0 {
		p.Width = native
	}
	if p.Height == 0 {
		p.Height = native
	}
}

// Infotext renders the parameters of image index of a generation the way
// AUTOMATIC1111's web UI stores them in PNG files (the "parameters" text
// chunk), so that its PNG Info tab and other tools read them back. model
// is the model's path or name; its base name is written.
func Infotext(p *Params, res *Result, model string, index int) string {
	var b strings.Builder
	b.WriteString(p.Prompt)
	if p.NegativePrompt != "" {
		b.WriteString("\nNegative prompt: " + p.NegativePrompt)
	}
	fmt.Fprintf(&b, "\nSteps: %d, Sampler: %s, CFG scale: %g, Seed: %d, Size: %dx%d, Model: %s",
		p.Steps, scheduler.Label(p.Scheduler, res.SchedulerConfig), p.Guidance, p.Seed, p.Width, p.Height,
		filepath.Base(strings.TrimRight(model, "/")))
	if p.InitImage != nil {
		fmt.Fprintf(&b, ", Denoising strength: %g", p.Strength)
	}
	if p.ImageCount > 1 {
		fmt.Fprintf(&b, ", Batch size: %d, Batch pos: %d", p.ImageCount, index)
	}
	fmt.Fprintf(&b, ", Schedule type: %s, Version: pigment", res.SchedulerConfig.Class)
	return b.String()
}
