package checkpoint

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"
)

// This file builds the tensor names and shapes of original-layout (LDM)
// checkpoints from diffusers configs, written independently of the
// loader's renaming so the two check each other. The generator itself is
// checked against the tiny-sd15.safetensors fixture header.

type ldmShapes map[string][]int

func (s ldmShapes) add(name string, shape ...int) { s[name] = shape }

func (s ldmShapes) wb(p string, shape ...int) {
	s.add(p+".weight", shape...)
	s.add(p+".bias", shape[0])
}

// genConfig is the part of a diffusers config the generator needs.
type genConfig struct {
	Unet struct {
		BlockOut       []int    `json:"block_out_channels"`
		LayersPerBlock int      `json:"layers_per_block"`
		Down           []string `json:"down_block_types"`
		Up             []string `json:"up_block_types"`
		CrossDim       int      `json:"cross_attention_dim"`
		Linear         bool     `json:"use_linear_projection"`
		In             int      `json:"in_channels"`
		Out            int      `json:"out_channels"`
	}
	VAE struct {
		BlockOut       []int `json:"block_out_channels"`
		LayersPerBlock int   `json:"layers_per_block"`
		Latent         int   `json:"latent_channels"`
		In             int   `json:"in_channels"`
		Out            int   `json:"out_channels"`
	}
	Text struct {
		Hidden       int `json:"hidden_size"`
		Layers       int `json:"num_hidden_layers"`
		Intermediate int `json:"intermediate_size"`
		Vocab        int `json:"vocab_size"`
		Positions    int `json:"max_position_embeddings"`
	}
}

func readGenConfig(t *testing.T, dir string) genConfig {
	t.Helper()
	var g genConfig
	for _, c := range []struct {
		file string
		dst  any
	}{{"unet/config.json", &g.Unet}, {"vae/config.json", &g.VAE}, {"text_encoder/config.json", &g.Text}} {
		raw, err := os.ReadFile(dir + "/" + c.file)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, c.dst); err != nil {
			t.Fatalf("%s/%s: %v", dir, c.file, err)
		}
	}
	return g
}

func (s ldmShapes) unet(g genConfig) {
	u := g.Unet
	p := "model.diffusion_model."
	c0 := u.BlockOut[0]
	temb := 4 * c0
	res := func(q string, in, out int) {
		s.wb(q+"in_layers.0", in)
		s.wb(q+"in_layers.2", out, in, 3, 3)
		s.wb(q+"emb_layers.1", out, temb)
		s.wb(q+"out_layers.0", out)
		s.wb(q+"out_layers.3", out, out, 3, 3)
		if in != out {
			s.wb(q+"skip_connection", out, in, 1, 1)
		}
	}
	attn := func(q string, c int) {
		s.wb(q+"norm", c)
		if u.Linear {
			s.wb(q+"proj_in", c, c)
			s.wb(q+"proj_out", c, c)
		} else {
			s.wb(q+"proj_in", c, c, 1, 1)
			s.wb(q+"proj_out", c, c, 1, 1)
		}
		b := q + "transformer_blocks.0."
		for _, a := range []struct {
			name string
			kv   int
		}{{"attn1", c}, {"attn2", u.CrossDim}} {
			s.add(b+a.name+".to_q.weight", c, c)
			s.add(b+a.name+".to_k.weight", c, a.kv)
			s.add(b+a.name+".to_v.weight", c, a.kv)
			s.wb(b+a.name+".to_out.0", c, c)
		}
		s.wb(b+"ff.net.0.proj", 8*c, c)
		s.wb(b+"ff.net.2", c, 4*c)
		for _, n := range []string{"norm1", "norm2", "norm3"} {
			s.wb(b+n, c)
		}
	}
	s.wb(p+"time_embed.0", temb, c0)
	s.wb(p+"time_embed.2", temb, temb)
	s.wb(p+"input_blocks.0.0", c0, u.In, 3, 3)
	lpb := u.LayersPerBlock
	levels := len(u.BlockOut)
	out := c0
	for l, ch := range u.BlockOut {
		in := out
		out = ch
		for j := 0; j < lpb; j++ {
			idx := l*(lpb+1) + j + 1
			rin := out
			if j == 0 {
				rin = in
			}
			res(fmt.Sprintf("%sinput_blocks.%d.0.", p, idx), rin, out)
			if u.Down[l] == "CrossAttnDownBlock2D" {
				attn(fmt.Sprintf("%sinput_blocks.%d.1.", p, idx), out)
			}
		}
		if l < levels-1 {
			s.wb(fmt.Sprintf("%sinput_blocks.%d.0.op", p, (l+1)*(lpb+1)), out, out, 3, 3)
		}
	}
	last := u.BlockOut[levels-1]
	res(p+"middle_block.0.", last, last)
	attn(p+"middle_block.1.", last)
	res(p+"middle_block.2.", last, last)
	prev := last
	for i := 0; i < levels; i++ {
		oc := u.BlockOut[levels-1-i]
		ic := u.BlockOut[max(levels-2-i, 0)]
		hasAttn := u.Up[i] == "CrossAttnUpBlock2D"
		for j := 0; j <= lpb; j++ {
			idx := i*(lpb+1) + j
			skip := oc
			if j == lpb {
				skip = ic
			}
			rin := oc
			if j == 0 {
				rin = prev
			}
			res(fmt.Sprintf("%soutput_blocks.%d.0.", p, idx), rin+skip, oc)
			if hasAttn {
				attn(fmt.Sprintf("%soutput_blocks.%d.1.", p, idx), oc)
			}
			if j == lpb && i < levels-1 {
				k := 1
				if hasAttn {
					k = 2
				}
				s.wb(fmt.Sprintf("%soutput_blocks.%d.%d.conv", p, idx, k), oc, oc, 3, 3)
			}
		}
		prev = oc
	}
	s.wb(p+"out.0", c0)
	s.wb(p+"out.2", u.Out, c0, 3, 3)
}

func (s ldmShapes) vae(g genConfig) {
	v := g.VAE
	p := "first_stage_model."
	res := func(q string, in, out int) {
		s.wb(q+"norm1", in)
		s.wb(q+"conv1", out, in, 3, 3)
		s.wb(q+"norm2", out)
		s.wb(q+"conv2", out, out, 3, 3)
		if in != out {
			s.wb(q+"nin_shortcut", out, in, 1, 1)
		}
	}
	mid := func(q string, c int) {
		res(q+"mid.block_1.", c, c)
		res(q+"mid.block_2.", c, c)
		s.wb(q+"mid.attn_1.norm", c)
		for _, n := range []string{"q", "k", "v", "proj_out"} {
			s.wb(q+"mid.attn_1."+n, c, c, 1, 1)
		}
	}
	levels := len(v.BlockOut)
	c0, last := v.BlockOut[0], v.BlockOut[levels-1]
	s.wb(p+"encoder.conv_in", c0, v.In, 3, 3)
	out := c0
	for l, ch := range v.BlockOut {
		in := out
		out = ch
		for j := 0; j < v.LayersPerBlock; j++ {
			rin := out
			if j == 0 {
				rin = in
			}
			res(fmt.Sprintf("%sencoder.down.%d.block.%d.", p, l, j), rin, out)
		}
		if l < levels-1 {
			s.wb(fmt.Sprintf("%sencoder.down.%d.downsample.conv", p, l), out, out, 3, 3)
		}
	}
	mid(p+"encoder.", last)
	s.wb(p+"encoder.norm_out", last)
	s.wb(p+"encoder.conv_out", 2*v.Latent, last, 3, 3)
	s.wb(p+"quant_conv", 2*v.Latent, 2*v.Latent, 1, 1)
	s.wb(p+"post_quant_conv", v.Latent, v.Latent, 1, 1)
	s.wb(p+"decoder.conv_in", last, v.Latent, 3, 3)
	mid(p+"decoder.", last)
	prev := last
	for i := 0; i < levels; i++ {
		oc := v.BlockOut[levels-1-i]
		up := levels - 1 - i
		for j := 0; j <= v.LayersPerBlock; j++ {
			rin := oc
			if j == 0 {
				rin = prev
			}
			res(fmt.Sprintf("%sdecoder.up.%d.block.%d.", p, up, j), rin, oc)
		}
		if i < levels-1 {
			s.wb(fmt.Sprintf("%sdecoder.up.%d.upsample.conv", p, up), oc, oc, 3, 3)
		}
		prev = oc
	}
	s.wb(p+"decoder.norm_out", c0)
	s.wb(p+"decoder.conv_out", v.Out, c0, 3, 3)
}

func (s ldmShapes) clip(g genConfig) {
	x := g.Text
	p := "cond_stage_model.transformer.text_model."
	w := x.Hidden
	s.add(p+"embeddings.token_embedding.weight", x.Vocab, w)
	s.add(p+"embeddings.position_embedding.weight", x.Positions, w)
	for i := 0; i < x.Layers; i++ {
		q := fmt.Sprintf("%sencoder.layers.%d.", p, i)
		s.wb(q+"layer_norm1", w)
		s.wb(q+"layer_norm2", w)
		for _, n := range []string{"q_proj", "k_proj", "v_proj", "out_proj"} {
			s.wb(q+"self_attn."+n, w, w)
		}
		s.wb(q+"mlp.fc1", x.Intermediate, w)
		s.wb(q+"mlp.fc2", w, x.Intermediate)
	}
	s.wb(p+"final_layer_norm", w)
}

// openCLIP adds an OpenCLIP text tower with one more resblock than the
// diffusers config has layers (SD 2.x drops the last one).
func (s ldmShapes) openCLIP(g genConfig) {
	x := g.Text
	p := "cond_stage_model.model."
	w := x.Hidden
	s.add(p+"token_embedding.weight", x.Vocab, w)
	s.add(p+"positional_embedding", x.Positions, w)
	s.add(p+"text_projection", w, w)
	s.add(p + "logit_scale")
	s.wb(p+"ln_final", w)
	for i := 0; i <= x.Layers; i++ {
		q := fmt.Sprintf("%stransformer.resblocks.%d.", p, i)
		s.wb(q+"ln_1", w)
		s.wb(q+"ln_2", w)
		s.add(q+"attn.in_proj_weight", 3*w, w)
		s.add(q+"attn.in_proj_bias", 3*w)
		s.wb(q+"attn.out_proj", w, w)
		s.wb(q+"mlp.c_fc", x.Intermediate, w)
		s.wb(q+"mlp.c_proj", w, x.Intermediate)
	}
}
