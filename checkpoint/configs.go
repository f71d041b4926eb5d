package checkpoint

import (
	"github.com/pigment-sd/pigment/tensor"

	"github.com/pigment-sd/pigment/component"
)

// diffusersVersion is written into generated configs: their key sets are
// those of this diffusers version.
const diffusersVersion = "0.21.0"

// unetArch is a UNet2DConditionModel architecture as far as tensor shapes
// show it.
type unetArch struct {
	inCh, outCh      int
	convIn, convOut  int // kernel sizes of conv_in and conv_out
	channels         []int
	lpb              int // resnets per down block (up blocks have lpb+1)
	downAttn, upAttn []bool
	ctx              int  // cross_attention_dim
	linear           bool // use_linear_projection
	depth            int  // transformer blocks per attention
}

// vaeArch is an AutoencoderKL architecture.
type vaeArch struct {
	inCh, outCh, latent int
	channels            []int
	lpb                 int // resnets per encoder block (decoder: lpb+1)
}

// clipArch is a CLIP text transformer architecture.
type clipArch struct {
	width, layers, inter, vocab, positions int
	openclip                               bool
}

// unetHeads applies the head rule: 8 heads for conv projections (SD 1.x),
// channels/64 per block for linear projections (SD 2.x), 8 where channels
// are not a multiple of 64. The second result reports that fallback.
func unetHeads(a *unetArch) (any, bool) {
	if !a.linear {
		return 8, false
	}
	heads := make([]int, len(a.channels))
	for i, c := range a.channels {
		if c%64 != 0 {
			return 8, true
		}
		heads[i] = c / 64
	}
	return heads, false
}

// clipHeads applies the text encoder head rule (see the package comment).
func clipHeads(width int) int {
	switch {
	case width%64 == 0:
		return width / 64
	case width%8 == 0:
		return width / 8
	}
	return 1
}

func unetConfig(a *unetArch, sampleSize int, upcast bool) map[string]any {
	down := make([]string, len(a.channels))
	up := make([]string, len(a.channels))
	for i := range a.channels {
		down[i], up[i] = "DownBlock2D", "UpBlock2D"
		if a.downAttn[i] {
			down[i] = "CrossAttnDownBlock2D"
		}
		if a.upAttn[i] {
			up[i] = "CrossAttnUpBlock2D"
		}
	}
	heads, _ := unetHeads(a)
	return map[string]any{
		"_class_name":                           "UNet2DConditionModel",
		"_diffusers_version":                    diffusersVersion,
		"act_fn":                                "silu",
		"addition_embed_type":                   nil,
		"addition_embed_type_num_heads":         64,
		"addition_time_embed_dim":               nil,
		"attention_head_dim":                    heads,
		"attention_type":                        "default",
		"block_out_channels":                    a.channels,
		"center_input_sample":                   false,
		"class_embed_type":                      nil,
		"class_embeddings_concat":               false,
		"conv_in_kernel":                        a.convIn,
		"conv_out_kernel":                       a.convOut,
		"cross_attention_dim":                   a.ctx,
		"cross_attention_norm":                  nil,
		"down_block_types":                      down,
		"downsample_padding":                    1,
		"dropout":                               0.0,
		"dual_cross_attention":                  false,
		"encoder_hid_dim":                       nil,
		"encoder_hid_dim_type":                  nil,
		"flip_sin_to_cos":                       true,
		"freq_shift":                            0,
		"in_channels":                           a.inCh,
		"layers_per_block":                      a.lpb,
		"mid_block_only_cross_attention":        nil,
		"mid_block_scale_factor":                1,
		"mid_block_type":                        "UNetMidBlock2DCrossAttn",
		"norm_eps":                              1e-05,
		"norm_num_groups":                       32,
		"num_attention_heads":                   nil,
		"num_class_embeds":                      nil,
		"only_cross_attention":                  false,
		"out_channels":                          a.outCh,
		"projection_class_embeddings_input_dim": nil,
		"resnet_out_scale_factor":               1.0,
		"resnet_skip_time_act":                  false,
		"resnet_time_scale_shift":               "default",
		"sample_size":                           sampleSize,
		"time_cond_proj_dim":                    nil,
		"time_embedding_act_fn":                 nil,
		"time_embedding_dim":                    nil,
		"time_embedding_type":                   "positional",
		"timestep_post_act":                     nil,
		"transformer_layers_per_block":          a.depth,
		"up_block_types":                        up,
		"upcast_attention":                      upcast,
		"use_linear_projection":                 a.linear,
	}
}

func vaeConfig(a *vaeArch, sampleSize int) map[string]any {
	down := make([]string, len(a.channels))
	up := make([]string, len(a.channels))
	for i := range a.channels {
		down[i], up[i] = "DownEncoderBlock2D", "UpDecoderBlock2D"
	}
	return map[string]any{
		"_class_name":        "AutoencoderKL",
		"_diffusers_version": diffusersVersion,
		"act_fn":             "silu",
		"block_out_channels": a.channels,
		"down_block_types":   down,
		"force_upcast":       true,
		"in_channels":        a.inCh,
		"latent_channels":    a.latent,
		"layers_per_block":   a.lpb,
		"norm_num_groups":    32,
		"out_channels":       a.outCh,
		"sample_size":        sampleSize,
		"scaling_factor":     0.18215,
		"up_block_types":     up,
	}
}

func clipConfig(a *clipArch, dt tensor.DType) map[string]any {
	act, proj := "quick_gelu", a.width
	if a.openclip {
		act = "gelu"
		if a.width == 1024 {
			// As stabilityai/stable-diffusion-2's text_encoder/config.json
			// (the projection is not part of the text model).
			proj = 512
		}
	}
	dtype := "float32"
	switch dt {
	case tensor.F16:
		dtype = "float16"
	case tensor.BF16:
		dtype = "bfloat16"
	}
	return map[string]any{
		"architectures":           []string{"CLIPTextModel"},
		"attention_dropout":       0.0,
		"bos_token_id":            0,
		"dropout":                 0.0,
		"eos_token_id":            2,
		"hidden_act":              act,
		"hidden_size":             a.width,
		"initializer_factor":      1.0,
		"initializer_range":       0.02,
		"intermediate_size":       a.inter,
		"layer_norm_eps":          1e-05,
		"max_position_embeddings": a.positions,
		"model_type":              "clip_text_model",
		"num_attention_heads":     clipHeads(a.width),
		"num_hidden_layers":       a.layers,
		"pad_token_id":            1,
		"projection_dim":          proj,
		"torch_dtype":             dtype,
		"vocab_size":              a.vocab,
	}
}

// schedulerConfig is the SD scheduler config for a prediction type: the SD
// 1.5 / 2.1-base PNDM config for epsilon, the SD 2.1 DDIM config for
// v_prediction.
func schedulerConfig(pred string) map[string]any {
	c := map[string]any{
		"_diffusers_version":  diffusersVersion,
		"beta_end":            0.012,
		"beta_schedule":       "scaled_linear",
		"beta_start":          0.00085,
		"num_train_timesteps": 1000,
		"prediction_type":     pred,
		"set_alpha_to_one":    false,
		"steps_offset":        1,
		"trained_betas":       nil,
	}
	if pred == "v_prediction" {
		c["_class_name"] = "DDIMScheduler"
		c["clip_sample"] = false
	} else {
		c["_class_name"] = "PNDMScheduler"
		c["skip_prk_steps"] = true
	}
	return c
}

// structuralKeys are the config keys that tensor shapes decide; configs
// given for a single file must agree with the file on them.
func structuralKeys(comp component.Name) []string {
	switch comp {
	case component.UNet:
		return []string{"in_channels", "out_channels", "block_out_channels", "layers_per_block",
			"down_block_types", "up_block_types", "cross_attention_dim", "use_linear_projection",
			"conv_in_kernel", "conv_out_kernel"}
	case component.VAE:
		return []string{"in_channels", "out_channels", "block_out_channels", "layers_per_block", "latent_channels"}
	case component.TextEncoder:
		return []string{"hidden_size", "intermediate_size", "num_hidden_layers", "vocab_size", "max_position_embeddings"}
	}
	return nil
}
