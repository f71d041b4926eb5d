// Package clip is the CLIP text encoder Stable Diffusion conditions on
// (Hugging Face transformers' CLIPTextModel): token and position
// embeddings, pre-LayerNorm encoder layers with causal self-attention and a
// quick_gelu or gelu MLP, and a final LayerNorm. Its output,
// last_hidden_state, is what the UNet attends to.
//
// Weights use transformers' state-dict names (text_model.embeddings.*,
// text_model.encoder.layers.N.*, text_model.final_layer_norm.*). The
// pooler output and the attention padding mask are not implemented:
// Stable Diffusion uses neither.
package clip

import (
	"encoding/json"
	"fmt"

	"github.com/pigment-sd/pigment/kernels"
	"github.com/pigment-sd/pigment/nn"
	"github.com/pigment-sd/pigment/tensor"
	"github.com/pigment-sd/pigment/weights"
)

// Options are the network options shared by all models; the hook names of
// the text encoder are "embeddings" (token + position embedding) and
// "layers.N" (output of encoder layer N, before the final LayerNorm).
type Options = nn.Options

// Config is the part of transformers' CLIPTextConfig the network uses.
// Keys missing from config.json take transformers' defaults.
type Config struct {
	VocabSize             int     `json:"vocab_size"`
	HiddenSize            int     `json:"hidden_size"`
	IntermediateSize      int     `json:"intermediate_size"`
	NumHiddenLayers       int     `json:"num_hidden_layers"`
	NumAttentionHeads     int     `json:"num_attention_heads"`
	MaxPositionEmbeddings int     `json:"max_position_embeddings"`
	HiddenAct             string  `json:"hidden_act"`
	LayerNormEps          float64 `json:"layer_norm_eps"`
	PadTokenID            int     `json:"pad_token_id"`
	BOSTokenID            int     `json:"bos_token_id"`
	EOSTokenID            int     `json:"eos_token_id"`
}

// DefaultConfig is transformers' CLIPTextConfig default.
func DefaultConfig() Config {
	return Config{
		VocabSize: 49408, HiddenSize: 512, IntermediateSize: 2048, NumHiddenLayers: 12,
		NumAttentionHeads: 8, MaxPositionEmbeddings: 77, HiddenAct: "quick_gelu",
		LayerNormEps: 1e-5, PadTokenID: 1, BOSTokenID: 49406, EOSTokenID: 49407,
	}
}

// Limits on config values, so a hostile config cannot ask for absurd
// sizes.
const (
	maxDim    = 1 << 16
	maxLayers = 256
	maxVocab  = 1 << 22
)

// ParseConfig reads a transformers config.json (CLIPTextModel) and
// validates it.
func ParseConfig(data []byte) (Config, error) {
	cfg := DefaultConfig()
	if err := json.Unmarshal(data, &cfg); err != nil {
		return Config{}, fmt.Errorf("clip: config: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Validate checks that the network can be built from cfg.
func (c Config) Validate() error {
	switch {
	case c.VocabSize <= 0 || c.VocabSize > maxVocab:
		return fmt.Errorf("clip: config: vocab_size %d out of range", c.VocabSize)
	case c.HiddenSize <= 0 || c.HiddenSize > maxDim:
		return fmt.Errorf("clip: config: hidden_size %d out of range", c.HiddenSize)
	case c.IntermediateSize <= 0 || c.IntermediateSize > 8*maxDim:
		return fmt.Errorf("clip: config: intermediate_size %d out of range", c.IntermediateSize)
	case c.NumHiddenLayers <= 0 || c.NumHiddenLayers > maxLayers:
		return fmt.Errorf("clip: config: num_hidden_layers %d out of range", c.NumHiddenLayers)
	case c.NumAttentionHeads <= 0 || c.HiddenSize%c.NumAttentionHeads != 0:
		return fmt.Errorf("clip: config: hidden_size %d is not a multiple of num_attention_heads %d", c.HiddenSize, c.NumAttentionHeads)
	case c.MaxPositionEmbeddings <= 0 || c.MaxPositionEmbeddings > maxDim:
		return fmt.Errorf("clip: config: max_position_embeddings %d out of range", c.MaxPositionEmbeddings)
	case !(c.LayerNormEps > 0 && c.LayerNormEps < 1):
		return fmt.Errorf("clip: config: layer_norm_eps %g out of range", c.LayerNormEps)
	}
	switch c.HiddenAct {
	case "quick_gelu", "gelu":
	default:
		return fmt.Errorf("clip: config: hidden_act %q is not supported (quick_gelu, gelu)", c.HiddenAct)
	}
	return nil
}

// TextModel is the CLIP text encoder. Forward is not safe for concurrent
// use.
type TextModel struct {
	cfg      Config
	opts     Options
	ctx      *nn.Ctx
	tokens   weights.Tensor // [vocab, hidden], read a row per token
	position weights.Tensor // [maxPos, hidden], the rows in use read per call
	layers   []*layer
	final    *nn.LayerNorm
}

type layer struct {
	norm1, norm2 *nn.LayerNorm
	attn         *nn.Attention
	fc1, fc2     *nn.Linear
}

const prefix = "text_model."

// New builds the text encoder from a config.json and its weights. At most
// one Options value is used.
func New(cfg []byte, src weights.Source, k kernels.Kernels, opts ...Options) (*TextModel, error) {
	c, err := ParseConfig(cfg)
	if err != nil {
		return nil, err
	}
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	m, err := build(c, src)
	if err != nil {
		return nil, fmt.Errorf("clip: %w", err)
	}
	m.opts, m.ctx = o, nn.NewCtx(k, o)
	return m, nil
}

// Config returns the model's configuration.
func (m *TextModel) Config() Config { return m.cfg }

// Arena exposes the model's activation arena (for memory statistics).
func (m *TextModel) Arena() *nn.Arena { return m.ctx.Arena }

func build(c Config, src weights.Source) (*TextModel, error) {
	m := &TextModel{cfg: c}
	d := c.HiddenSize
	eps := float32(c.LayerNormEps)
	var err error
	if m.tokens, err = nn.Lookup(src, prefix+"embeddings.token_embedding.weight", c.VocabSize, d); err != nil {
		return nil, err
	}
	if m.position, err = nn.Lookup(src, prefix+"embeddings.position_embedding.weight", c.MaxPositionEmbeddings, d); err != nil {
		return nil, err
	}
	heads := c.NumAttentionHeads
	for i := 0; i < c.NumHiddenLayers; i++ {
		p := fmt.Sprintf("%sencoder.layers.%d.", prefix, i)
		var l layer
		if l.norm1, err = nn.NewLayerNorm(src, p+"layer_norm1", d, eps); err != nil {
			return nil, err
		}
		attn := &nn.Attention{Heads: heads, HeadDim: d / heads, Causal: true}
		if attn.Q, err = nn.NewLinear(src, p+"self_attn.q_proj", d, d, true); err != nil {
			return nil, err
		}
		if attn.K, err = nn.NewLinear(src, p+"self_attn.k_proj", d, d, true); err != nil {
			return nil, err
		}
		if attn.V, err = nn.NewLinear(src, p+"self_attn.v_proj", d, d, true); err != nil {
			return nil, err
		}
		if attn.Out, err = nn.NewLinear(src, p+"self_attn.out_proj", d, d, true); err != nil {
			return nil, err
		}
		l.attn = attn
		if l.norm2, err = nn.NewLayerNorm(src, p+"layer_norm2", d, eps); err != nil {
			return nil, err
		}
		if l.fc1, err = nn.NewLinear(src, p+"mlp.fc1", d, c.IntermediateSize, true); err != nil {
			return nil, err
		}
		if l.fc2, err = nn.NewLinear(src, p+"mlp.fc2", c.IntermediateSize, d, true); err != nil {
			return nil, err
		}
		m.layers = append(m.layers, &l)
	}
	if m.final, err = nn.NewLayerNorm(src, prefix+"final_layer_norm", d, eps); err != nil {
		return nil, err
	}
	return m, nil
}

// WeightShapes lists every tensor the text encoder reads, with its shape.
// It returns nil if cfg is invalid.
func WeightShapes(cfg Config) map[string][]int {
	if cfg.Validate() != nil {
		return nil
	}
	shapes, err := nn.RecordShapes(func(src weights.Source) error {
		_, err := build(cfg, src)
		return err
	})
	if err != nil {
		return nil
	}
	return shapes
}

// Forward encodes batch sequences of token ids (ids holds batch·L ids,
// L <= max_position_embeddings, usually 77) and returns last_hidden_state
// [batch, L, hidden_size], after the final LayerNorm.
func (m *TextModel) Forward(ids []int, batch int) (*tensor.Tensor, error) {
	if batch <= 0 || len(ids) == 0 || len(ids)%batch != 0 {
		return nil, fmt.Errorf("clip: %d token ids do not split into %d sequences", len(ids), batch)
	}
	seq := len(ids) / batch
	if seq > m.cfg.MaxPositionEmbeddings {
		return nil, fmt.Errorf("clip: sequence of %d tokens is longer than max_position_embeddings %d", seq, m.cfg.MaxPositionEmbeddings)
	}
	for i, id := range ids {
		if id < 0 || id >= m.cfg.VocabSize {
			return nil, fmt.Errorf("clip: token id %d at position %d is outside the vocabulary [0, %d)", id, i, m.cfg.VocabSize)
		}
	}
	c, d := m.ctx, m.cfg.HiddenSize

	x := c.New(batch, seq, d)
	for i, id := range ids {
		m.tokens.ReadRows(x.Data[i*d:(i+1)*d], id, id+1)
	}
	pos := c.Arena.Get(seq * d)
	m.position.ReadRows(pos, 0, seq)
	for b := 0; b < batch; b++ {
		row := x.Data[b*seq*d : (b+1)*seq*d]
		c.K.Add(row, row, pos)
	}
	c.Arena.Put(pos)
	m.opts.Emit("embeddings", x)

	for i, l := range m.layers {
		l.forward(c, m.cfg.HiddenAct, x)
		m.opts.Emit(fmt.Sprintf("layers.%d", i), x)
	}
	y := m.final.Forward(c, x)
	c.Free(x)
	return c.Detach(y), nil
}

// forward updates x [B, L, D] in place.
func (l *layer) forward(c *nn.Ctx, act string, x *tensor.Tensor) {
	n := l.norm1.Forward(c, x)
	a := l.attn.Forward(c, n, nil)
	c.Free(n)
	c.K.Add(x.Data, x.Data, a.Data)
	c.Free(a)

	n = l.norm2.Forward(c, x)
	h := l.fc1.Forward(c, n)
	c.Free(n)
	if act == "gelu" {
		c.K.GELU(h.Data, h.Data)
	} else {
		c.K.QuickGELU(h.Data, h.Data)
	}
	o := l.fc2.Forward(c, h)
	c.Free(h)
	c.K.Add(x.Data, x.Data, o.Data)
	c.Free(o)
}
