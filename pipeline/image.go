package pipeline

import (
	"fmt"
	"image"
	"image/draw"
	"math"

	xdraw "golang.org/x/image/draw"

	"github.com/pigment-sd/pigment/tensor"
)

// TensorToImages post-processes decoded images [B,3,H,W] in about [-1,1] as
// diffusers' VaeImageProcessor does: clamp(x/2+0.5, 0, 1), times 255,
// rounded half to even in float32.
func TensorToImages(t *tensor.Tensor) ([]*image.RGBA, error) {
	if len(t.Shape) != 4 || t.Shape[1] != 3 {
		return nil, fmt.Errorf("decoded image has shape %v, want [B,3,H,W]", t.Shape)
	}
	B, H, W := t.Shape[0], t.Shape[2], t.Shape[3]
	out := make([]*image.RGBA, B)
	for b := 0; b < B; b++ {
		img := image.NewRGBA(image.Rect(0, 0, W, H))
		for c := 0; c < 3; c++ {
			plane := t.Data[(b*3+c)*H*W:][:H*W]
			for i, v := range plane {
				img.Pix[4*i+c] = ToUint8(v)
			}
		}
		for i := 0; i < H*W; i++ {
			img.Pix[4*i+3] = 255
		}
		out[b] = img
	}
	return out, nil
}

// ToUint8 maps one decoded value to a pixel level exactly as diffusers:
// round(clamp(v/2+0.5, 0, 1)*255) in float32, half to even.
func ToUint8(v float32) uint8 {
	x := v/2 + 0.5
	if x < 0 || x != x {
		x = 0
	}
	if x > 1 {
		x = 1
	}
	return uint8(math.RoundToEven(float64(x * 255)))
}

// ImageToTensor prepares an init image for img2img as diffusers'
// VaeImageProcessor.preprocess: RGB, resized to width x height when it has
// another size (Catmull-Rom; diffusers uses Lanczos), then v/255*2-1 as a
// [1,3,H,W] tensor. resized reports whether a resize happened.
func ImageToTensor(src image.Image, width, height int) (t *tensor.Tensor, resized bool) {
	b := src.Bounds()
	rgba := image.NewRGBA(image.Rect(0, 0, width, height))
	if b.Dx() == width && b.Dy() == height {
		draw.Draw(rgba, rgba.Bounds(), src, b.Min, draw.Src)
	} else {
		xdraw.CatmullRom.Scale(rgba, rgba.Bounds(), src, b, draw.Src, nil)
		resized = true
	}
	t = tensor.New(1, 3, height, width)
	hw := width * height
	for i := 0; i < hw; i++ {
		for c := 0; c < 3; c++ {
			v := float32(rgba.Pix[4*i+c]) / 255
			t.Data[c*hw+i] = 2*v - 1
		}
	}
	return t, resized
}
