package checkpoint

import "fmt"

// shapeSet collects the diffusers tensor names and shapes an architecture
// implies.
type shapeSet map[string][]int

func (s shapeSet) linear(p string, out, in int) {
	s[p+".weight"] = []int{out, in}
	s[p+".bias"] = []int{out}
}

func (s shapeSet) conv(p string, out, in, k int) {
	s[p+".weight"] = []int{out, in, k, k}
	s[p+".bias"] = []int{out}
}

func (s shapeSet) norm(p string, c int) {
	s[p+".weight"] = []int{c}
	s[p+".bias"] = []int{c}
}

// unetShapes lists every tensor of a UNet2DConditionModel (diffusers
// v0.21 names) with its shape.
func unetShapes(a *unetArch) shapeSet {
	s := shapeSet{}
	c0 := a.channels[0]
	temb := 4 * c0
	s.conv("conv_in", c0, a.inCh, a.convIn)
	s.linear("time_embedding.linear_1", temb, c0)
	s.linear("time_embedding.linear_2", temb, temb)

	resnet := func(p string, in, out int) {
		s.norm(p+".norm1", in)
		s.conv(p+".conv1", out, in, 3)
		s.linear(p+".time_emb_proj", out, temb)
		s.norm(p+".norm2", out)
		s.conv(p+".conv2", out, out, 3)
		if in != out {
			s.conv(p+".conv_shortcut", out, in, 1)
		}
	}
	attention := func(p string, c, kv int) {
		s[p+".to_q.weight"] = []int{c, c}
		s[p+".to_k.weight"] = []int{c, kv}
		s[p+".to_v.weight"] = []int{c, kv}
		s.linear(p+".to_out.0", c, c)
	}
	transformer := func(p string, c int) {
		s.norm(p+".norm", c)
		proj := func(q string) {
			if a.linear {
				s.linear(q, c, c)
			} else {
				s.conv(q, c, c, 1)
			}
		}
		proj(p + ".proj_in")
		proj(p + ".proj_out")
		for t := 0; t < a.depth; t++ {
			b := fmt.Sprintf("%s.transformer_blocks.%d", p, t)
			s.norm(b+".norm1", c)
			s.norm(b+".norm2", c)
			s.norm(b+".norm3", c)
			attention(b+".attn1", c, c)
			attention(b+".attn2", c, a.ctx)
			s.linear(b+".ff.net.0.proj", 8*c, c)
			s.linear(b+".ff.net.2", c, 4*c)
		}
	}

	levels := len(a.channels)
	out := c0
	for l, ch := range a.channels {
		in := out
		out = ch
		for j := 0; j < a.lpb; j++ {
			rin := out
			if j == 0 {
				rin = in
			}
			resnet(fmt.Sprintf("down_blocks.%d.resnets.%d", l, j), rin, out)
			if a.downAttn[l] {
				transformer(fmt.Sprintf("down_blocks.%d.attentions.%d", l, j), out)
			}
		}
		if l < levels-1 {
			s.conv(fmt.Sprintf("down_blocks.%d.downsamplers.0.conv", l), out, out, 3)
		}
	}

	last := a.channels[levels-1]
	resnet("mid_block.resnets.0", last, last)
	transformer("mid_block.attentions.0", last)
	resnet("mid_block.resnets.1", last, last)

	prev := last
	for i := 0; i < levels; i++ {
		outCh := a.channels[levels-1-i]
		inCh := a.channels[max(levels-2-i, 0)]
		for j := 0; j <= a.lpb; j++ {
			skip := outCh
			if j == a.lpb {
				skip = inCh
			}
			rin := outCh
			if j == 0 {
				rin = prev
			}
			resnet(fmt.Sprintf("up_blocks.%d.resnets.%d", i, j), rin+skip, outCh)
			if a.upAttn[i] {
				transformer(fmt.Sprintf("up_blocks.%d.attentions.%d", i, j), outCh)
			}
		}
		if i < levels-1 {
			s.conv(fmt.Sprintf("up_blocks.%d.upsamplers.0.conv", i), outCh, outCh, 3)
		}
		prev = outCh
	}
	s.norm("conv_norm_out", c0)
	s.conv("conv_out", a.outCh, c0, a.convOut)
	return s
}

// vaeShapes lists every tensor of an AutoencoderKL (diffusers v0.21
// names, attention as to_q/to_k/to_v/to_out.0 Linear weights).
func vaeShapes(a *vaeArch) shapeSet {
	s := shapeSet{}
	resnet := func(p string, in, out int) {
		s.norm(p+".norm1", in)
		s.conv(p+".conv1", out, in, 3)
		s.norm(p+".norm2", out)
		s.conv(p+".conv2", out, out, 3)
		if in != out {
			s.conv(p+".conv_shortcut", out, in, 1)
		}
	}
	mid := func(p string, c int) {
		resnet(p+".mid_block.resnets.0", c, c)
		resnet(p+".mid_block.resnets.1", c, c)
		at := p + ".mid_block.attentions.0"
		s.norm(at+".group_norm", c)
		s.linear(at+".to_q", c, c)
		s.linear(at+".to_k", c, c)
		s.linear(at+".to_v", c, c)
		s.linear(at+".to_out.0", c, c)
	}
	levels := len(a.channels)
	c0, last := a.channels[0], a.channels[levels-1]

	s.conv("encoder.conv_in", c0, a.inCh, 3)
	out := c0
	for l, ch := range a.channels {
		in := out
		out = ch
		for j := 0; j < a.lpb; j++ {
			rin := out
			if j == 0 {
				rin = in
			}
			resnet(fmt.Sprintf("encoder.down_blocks.%d.resnets.%d", l, j), rin, out)
		}
		if l < levels-1 {
			s.conv(fmt.Sprintf("encoder.down_blocks.%d.downsamplers.0.conv", l), out, out, 3)
		}
	}
	mid("encoder", last)
	s.norm("encoder.conv_norm_out", last)
	s.conv("encoder.conv_out", 2*a.latent, last, 3)
	s.conv("quant_conv", 2*a.latent, 2*a.latent, 1)
	s.conv("post_quant_conv", a.latent, a.latent, 1)

	s.conv("decoder.conv_in", last, a.latent, 3)
	mid("decoder", last)
	prev := last
	for i := 0; i < levels; i++ {
		outCh := a.channels[levels-1-i]
		for j := 0; j <= a.lpb; j++ {
			rin := outCh
			if j == 0 {
				rin = prev
			}
			resnet(fmt.Sprintf("decoder.up_blocks.%d.resnets.%d", i, j), rin, outCh)
		}
		if i < levels-1 {
			s.conv(fmt.Sprintf("decoder.up_blocks.%d.upsamplers.0.conv", i), outCh, outCh, 3)
		}
		prev = outCh
	}
	s.norm("decoder.conv_norm_out", c0)
	s.conv("decoder.conv_out", a.outCh, c0, 3)
	return s
}

// clipShapes lists every tensor of a transformers CLIPTextModel.
func clipShapes(a *clipArch) shapeSet {
	s := shapeSet{}
	w := a.width
	s["text_model.embeddings.token_embedding.weight"] = []int{a.vocab, w}
	s["text_model.embeddings.position_embedding.weight"] = []int{a.positions, w}
	for i := 0; i < a.layers; i++ {
		p := fmt.Sprintf("text_model.encoder.layers.%d", i)
		s.norm(p+".layer_norm1", w)
		s.norm(p+".layer_norm2", w)
		for _, n := range []string{"q_proj", "k_proj", "v_proj", "out_proj"} {
			s.linear(p+".self_attn."+n, w, w)
		}
		s.linear(p+".mlp.fc1", a.inter, w)
		s.linear(p+".mlp.fc2", w, a.inter)
	}
	s.norm("text_model.final_layer_norm", w)
	return s
}
