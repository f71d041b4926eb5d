package unet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
)

// Config is a UNet2DConditionModel configuration with diffusers' legacy
// conventions resolved: per-block lists are expanded and Heads holds the
// number of attention heads of each down block.
type Config struct {
	InChannels, OutChannels int
	BlockOutChannels        []int
	DownBlockTypes          []string // CrossAttnDownBlock2D or DownBlock2D
	UpBlockTypes            []string // CrossAttnUpBlock2D or UpBlock2D
	MidBlockType            string   // UNetMidBlock2DCrossAttn, or "" for none
	// Per down block; up blocks use the reversed lists, the mid block the
	// last entry.
	LayersPerBlock            []int
	TransformerLayersPerBlock []int
	Heads                     []int
	CrossAttentionDim         []int

	NormNumGroups       int
	NormEps             float64
	UseLinearProjection bool
	// UpcastAttention asks for float32 attention scores (SD 2.1); compute is
	// float32 throughout, so it changes nothing here.
	UpcastAttention   bool
	FlipSinToCos      bool
	FreqShift         float64
	DownsamplePadding int
	ConvInKernel      int
	ConvOutKernel     int
	SampleSize        int
}

// TimeEmbedDim is the width of the time embedding, 4·BlockOutChannels[0].
func (c Config) TimeEmbedDim() int { return 4 * c.BlockOutChannels[0] }

// rawConfig mirrors diffusers' config.json. Fields that may be an int or a
// list, or null, are kept raw and resolved afterwards.
type rawConfig struct {
	InChannels                int             `json:"in_channels"`
	OutChannels               int             `json:"out_channels"`
	CenterInputSample         bool            `json:"center_input_sample"`
	FlipSinToCos              bool            `json:"flip_sin_to_cos"`
	FreqShift                 float64         `json:"freq_shift"`
	DownBlockTypes            []string        `json:"down_block_types"`
	MidBlockType              *string         `json:"mid_block_type"`
	UpBlockTypes              []string        `json:"up_block_types"`
	OnlyCrossAttention        json.RawMessage `json:"only_cross_attention"`
	BlockOutChannels          []int           `json:"block_out_channels"`
	LayersPerBlock            json.RawMessage `json:"layers_per_block"`
	DownsamplePadding         int             `json:"downsample_padding"`
	MidBlockScaleFactor       float64         `json:"mid_block_scale_factor"`
	ActFn                     string          `json:"act_fn"`
	NormNumGroups             *int            `json:"norm_num_groups"`
	NormEps                   float64         `json:"norm_eps"`
	CrossAttentionDim         json.RawMessage `json:"cross_attention_dim"`
	TransformerLayersPerBlock json.RawMessage `json:"transformer_layers_per_block"`
	AttentionHeadDim          json.RawMessage `json:"attention_head_dim"`
	NumAttentionHeads         json.RawMessage `json:"num_attention_heads"`
	DualCrossAttention        bool            `json:"dual_cross_attention"`
	UseLinearProjection       bool            `json:"use_linear_projection"`
	UpcastAttention           bool            `json:"upcast_attention"`
	ResnetTimeScaleShift      string          `json:"resnet_time_scale_shift"`
	ResnetSkipTimeAct         bool            `json:"resnet_skip_time_act"`
	ResnetOutScaleFactor      float64         `json:"resnet_out_scale_factor"`
	TimeEmbeddingType         string          `json:"time_embedding_type"`
	ConvInKernel              int             `json:"conv_in_kernel"`
	ConvOutKernel             int             `json:"conv_out_kernel"`
	AttentionType             string          `json:"attention_type"`
	ClassEmbeddingsConcat     bool            `json:"class_embeddings_concat"`
	MidBlockOnlyCrossAttn     *bool           `json:"mid_block_only_cross_attention"`
	SampleSize                json.RawMessage `json:"sample_size"`

	// Features of other diffusers models; each must be null or absent.
	ClassEmbedType                json.RawMessage `json:"class_embed_type"`
	AdditionEmbedType             json.RawMessage `json:"addition_embed_type"`
	AdditionTimeEmbedDim          json.RawMessage `json:"addition_time_embed_dim"`
	EncoderHidDim                 json.RawMessage `json:"encoder_hid_dim"`
	EncoderHidDimType             json.RawMessage `json:"encoder_hid_dim_type"`
	NumClassEmbeds                json.RawMessage `json:"num_class_embeds"`
	TimeEmbeddingDim              json.RawMessage `json:"time_embedding_dim"`
	TimeEmbeddingActFn            json.RawMessage `json:"time_embedding_act_fn"`
	TimestepPostAct               json.RawMessage `json:"timestep_post_act"`
	TimeCondProjDim               json.RawMessage `json:"time_cond_proj_dim"`
	CrossAttentionNorm            json.RawMessage `json:"cross_attention_norm"`
	ProjectionClassEmbeddingsDims json.RawMessage `json:"projection_class_embeddings_input_dim"`
}

// Limits on config values, so a hostile config cannot ask for absurd sizes.
const (
	maxChannels = 1 << 15
	maxBlocks   = 16
	maxLayers   = 64
)

func defaultRaw() rawConfig {
	mid := "UNetMidBlock2DCrossAttn"
	groups := 32
	return rawConfig{
		InChannels: 4, OutChannels: 4, FlipSinToCos: true,
		DownBlockTypes:      []string{"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"},
		MidBlockType:        &mid,
		UpBlockTypes:        []string{"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"},
		BlockOutChannels:    []int{320, 640, 1280, 1280},
		DownsamplePadding:   1,
		MidBlockScaleFactor: 1, ActFn: "silu", NormNumGroups: &groups, NormEps: 1e-5,
		ResnetTimeScaleShift: "default", ResnetOutScaleFactor: 1, TimeEmbeddingType: "positional",
		ConvInKernel: 3, ConvOutKernel: 3, AttentionType: "default",
	}
}

// ParseConfig reads a diffusers UNet2DConditionModel config.json. Missing
// keys take diffusers' defaults; configurations this package cannot run
// (other block types, class or addition embeddings, ...) are rejected with
// an error naming the key.
func ParseConfig(data []byte) (Config, error) {
	c, err := parseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("unet: config: %w", err)
	}
	return c, nil
}

func parseConfig(data []byte) (Config, error) {
	r := defaultRaw()
	if err := json.Unmarshal(data, &r); err != nil {
		return Config{}, err
	}
	for _, f := range []struct {
		key string
		v   json.RawMessage
	}{
		{"class_embed_type", r.ClassEmbedType}, {"addition_embed_type", r.AdditionEmbedType},
		{"addition_time_embed_dim", r.AdditionTimeEmbedDim}, {"encoder_hid_dim", r.EncoderHidDim},
		{"encoder_hid_dim_type", r.EncoderHidDimType}, {"num_class_embeds", r.NumClassEmbeds},
		{"time_embedding_dim", r.TimeEmbeddingDim}, {"time_embedding_act_fn", r.TimeEmbeddingActFn},
		{"timestep_post_act", r.TimestepPostAct}, {"time_cond_proj_dim", r.TimeCondProjDim},
		{"cross_attention_norm", r.CrossAttentionNorm}, {"projection_class_embeddings_input_dim", r.ProjectionClassEmbeddingsDims},
	} {
		if !isNull(f.v) {
			return Config{}, fmt.Errorf("%s %s is not supported (must be null)", f.key, f.v)
		}
	}
	switch {
	case r.ActFn != "silu":
		return Config{}, fmt.Errorf("act_fn %q is not supported (silu)", r.ActFn)
	case r.CenterInputSample:
		return Config{}, fmt.Errorf("center_input_sample true is not supported")
	case r.DualCrossAttention:
		return Config{}, fmt.Errorf("dual_cross_attention true is not supported")
	case r.ResnetTimeScaleShift != "default":
		return Config{}, fmt.Errorf("resnet_time_scale_shift %q is not supported (default)", r.ResnetTimeScaleShift)
	case r.ResnetSkipTimeAct:
		return Config{}, fmt.Errorf("resnet_skip_time_act true is not supported")
	case r.ResnetOutScaleFactor != 1:
		return Config{}, fmt.Errorf("resnet_out_scale_factor %g is not supported (1)", r.ResnetOutScaleFactor)
	case r.MidBlockScaleFactor != 1:
		return Config{}, fmt.Errorf("mid_block_scale_factor %g is not supported (1)", r.MidBlockScaleFactor)
	case r.TimeEmbeddingType != "positional":
		return Config{}, fmt.Errorf("time_embedding_type %q is not supported (positional)", r.TimeEmbeddingType)
	case r.AttentionType != "default":
		return Config{}, fmt.Errorf("attention_type %q is not supported (default)", r.AttentionType)
	case r.ClassEmbeddingsConcat:
		return Config{}, fmt.Errorf("class_embeddings_concat true is not supported")
	case r.MidBlockOnlyCrossAttn != nil && *r.MidBlockOnlyCrossAttn:
		return Config{}, fmt.Errorf("mid_block_only_cross_attention true is not supported")
	case r.NormNumGroups == nil:
		return Config{}, fmt.Errorf("norm_num_groups null is not supported")
	}

	n := len(r.DownBlockTypes)
	if n == 0 || n > maxBlocks {
		return Config{}, fmt.Errorf("%d down blocks (want 1..%d)", n, maxBlocks)
	}
	if len(r.BlockOutChannels) != n || len(r.UpBlockTypes) != n {
		return Config{}, fmt.Errorf("down_block_types (%d), up_block_types (%d) and block_out_channels (%d) differ in length",
			n, len(r.UpBlockTypes), len(r.BlockOutChannels))
	}
	onlyCross, err := boolList(r.OnlyCrossAttention, n, false)
	if err != nil {
		return Config{}, fmt.Errorf("only_cross_attention: %w", err)
	}
	if slices.Contains(onlyCross, true) {
		return Config{}, fmt.Errorf("only_cross_attention true is not supported")
	}
	c := Config{
		InChannels: r.InChannels, OutChannels: r.OutChannels,
		BlockOutChannels: r.BlockOutChannels,
		DownBlockTypes:   r.DownBlockTypes, UpBlockTypes: r.UpBlockTypes,
		NormNumGroups: *r.NormNumGroups, NormEps: r.NormEps,
		UseLinearProjection: r.UseLinearProjection, UpcastAttention: r.UpcastAttention,
		FlipSinToCos: r.FlipSinToCos, FreqShift: r.FreqShift,
		DownsamplePadding: r.DownsamplePadding,
		ConvInKernel:      r.ConvInKernel, ConvOutKernel: r.ConvOutKernel,
	}
	if r.MidBlockType != nil {
		c.MidBlockType = *r.MidBlockType
	}
	if c.LayersPerBlock, err = intList(r.LayersPerBlock, n, 2); err != nil {
		return Config{}, fmt.Errorf("layers_per_block: %w", err)
	}
	if c.TransformerLayersPerBlock, err = intList(r.TransformerLayersPerBlock, n, 1); err != nil {
		return Config{}, fmt.Errorf("transformer_layers_per_block: %w", err)
	}
	if c.CrossAttentionDim, err = intList(r.CrossAttentionDim, n, 1280); err != nil {
		return Config{}, fmt.Errorf("cross_attention_dim: %w", err)
	}
	// diffusers' legacy naming: attention_head_dim is the number of heads
	// unless num_attention_heads is given.
	if isNull(r.NumAttentionHeads) {
		c.Heads, err = intList(r.AttentionHeadDim, n, 8)
	} else {
		c.Heads, err = intList(r.NumAttentionHeads, n, 8)
	}
	if err != nil {
		return Config{}, fmt.Errorf("attention heads: %w", err)
	}
	if !isNull(r.SampleSize) {
		var s int
		if json.Unmarshal(r.SampleSize, &s) == nil {
			c.SampleSize = s
		}
	}
	if err := c.validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate checks that the network can be built from c.
func (c Config) Validate() error {
	if err := c.validate(); err != nil {
		return fmt.Errorf("unet: config: %w", err)
	}
	return nil
}

func (c Config) validate() error {
	n := len(c.DownBlockTypes)
	switch {
	case n == 0 || n > maxBlocks:
		return fmt.Errorf("%d down blocks (want 1..%d)", n, maxBlocks)
	case len(c.UpBlockTypes) != n || len(c.BlockOutChannels) != n || len(c.LayersPerBlock) != n ||
		len(c.TransformerLayersPerBlock) != n || len(c.Heads) != n || len(c.CrossAttentionDim) != n:
		return fmt.Errorf("per-block lists differ in length from the %d down blocks", n)
	case c.InChannels <= 0 || c.InChannels > maxChannels || c.OutChannels <= 0 || c.OutChannels > maxChannels:
		return fmt.Errorf("in_channels %d / out_channels %d out of range", c.InChannels, c.OutChannels)
	case c.NormNumGroups <= 0:
		return fmt.Errorf("norm_num_groups %d out of range", c.NormNumGroups)
	case !(c.NormEps > 0 && c.NormEps < 1):
		return fmt.Errorf("norm_eps %g out of range", c.NormEps)
	case c.DownsamplePadding != 0 && c.DownsamplePadding != 1:
		return fmt.Errorf("downsample_padding %d is not supported (0, 1)", c.DownsamplePadding)
	case c.ConvInKernel <= 0 || c.ConvInKernel%2 == 0 || c.ConvInKernel > 15:
		return fmt.Errorf("conv_in_kernel %d is not supported (odd, 1..15)", c.ConvInKernel)
	case c.ConvOutKernel <= 0 || c.ConvOutKernel%2 == 0 || c.ConvOutKernel > 15:
		return fmt.Errorf("conv_out_kernel %d is not supported (odd, 1..15)", c.ConvOutKernel)
	case c.MidBlockType != "" && c.MidBlockType != "UNetMidBlock2DCrossAttn":
		return fmt.Errorf("mid_block_type %q is not supported (UNetMidBlock2DCrossAttn or null)", c.MidBlockType)
	}
	for i := 0; i < n; i++ {
		ch := c.BlockOutChannels[i]
		switch {
		case ch <= 0 || ch > maxChannels || ch%c.NormNumGroups != 0:
			return fmt.Errorf("block_out_channels[%d] = %d is not a positive multiple of norm_num_groups %d", i, ch, c.NormNumGroups)
		case c.DownBlockTypes[i] != "CrossAttnDownBlock2D" && c.DownBlockTypes[i] != "DownBlock2D":
			return fmt.Errorf("down block type %q is not supported (CrossAttnDownBlock2D, DownBlock2D)", c.DownBlockTypes[i])
		case c.UpBlockTypes[i] != "CrossAttnUpBlock2D" && c.UpBlockTypes[i] != "UpBlock2D":
			return fmt.Errorf("up block type %q is not supported (CrossAttnUpBlock2D, UpBlock2D)", c.UpBlockTypes[i])
		case c.LayersPerBlock[i] <= 0 || c.LayersPerBlock[i] > maxLayers:
			return fmt.Errorf("layers_per_block[%d] = %d out of range", i, c.LayersPerBlock[i])
		case c.TransformerLayersPerBlock[i] <= 0 || c.TransformerLayersPerBlock[i] > maxLayers:
			return fmt.Errorf("transformer_layers_per_block[%d] = %d out of range", i, c.TransformerLayersPerBlock[i])
		case c.CrossAttentionDim[i] <= 0 || c.CrossAttentionDim[i] > maxChannels:
			return fmt.Errorf("cross_attention_dim[%d] = %d out of range", i, c.CrossAttentionDim[i])
		case c.Heads[i] <= 0:
			return fmt.Errorf("attention heads[%d] = %d out of range", i, c.Heads[i])
		}
	}
	// Every transformer needs its channels split evenly into heads.
	for i := 0; i < n; i++ {
		if c.DownBlockTypes[i] == "CrossAttnDownBlock2D" && c.BlockOutChannels[i]%c.Heads[i] != 0 {
			return fmt.Errorf("down block %d: %d channels do not split into %d heads", i, c.BlockOutChannels[i], c.Heads[i])
		}
		j := n - 1 - i
		if c.UpBlockTypes[i] == "CrossAttnUpBlock2D" && c.BlockOutChannels[j]%c.Heads[j] != 0 {
			return fmt.Errorf("up block %d: %d channels do not split into %d heads", i, c.BlockOutChannels[j], c.Heads[j])
		}
	}
	if c.MidBlockType != "" && c.BlockOutChannels[n-1]%c.Heads[n-1] != 0 {
		return fmt.Errorf("mid block: %d channels do not split into %d heads", c.BlockOutChannels[n-1], c.Heads[n-1])
	}
	return nil
}

func isNull(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) == 0 || bytes.Equal(v, []byte("null"))
}

// intList reads an int (repeated n times), a list of n ints, or null
// (def repeated).
func intList(v json.RawMessage, n, def int) ([]int, error) {
	if isNull(v) {
		return slices.Repeat([]int{def}, n), nil
	}
	var one int
	if err := json.Unmarshal(v, &one); err == nil {
		return slices.Repeat([]int{one}, n), nil
	}
	var list []int
	if err := json.Unmarshal(v, &list); err != nil {
		return nil, fmt.Errorf("%s is neither an int nor a list of ints", v)
	}
	if len(list) != n {
		return nil, fmt.Errorf("%d entries for %d blocks", len(list), n)
	}
	return list, nil
}

// boolList reads a bool (repeated n times), a list of n bools, or null.
func boolList(v json.RawMessage, n int, def bool) ([]bool, error) {
	if isNull(v) {
		return slices.Repeat([]bool{def}, n), nil
	}
	var one bool
	if err := json.Unmarshal(v, &one); err == nil {
		return slices.Repeat([]bool{one}, n), nil
	}
	var list []bool
	if err := json.Unmarshal(v, &list); err != nil {
		return nil, fmt.Errorf("%s is neither a bool nor a list of bools", v)
	}
	if len(list) != n {
		return nil, fmt.Errorf("%d entries for %d blocks", len(list), n)
	}
	return list, nil
}
