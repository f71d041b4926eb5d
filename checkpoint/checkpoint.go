// Package checkpoint finds and opens Stable Diffusion models and presents
// each network (text encoder, UNet, VAE) as a diffusers config.json plus a
// weights.Source whose tensor names are exactly the diffusers (UNet, VAE)
// and transformers (text encoder) state-dict names. Key renaming and
// architecture inference live here; the networks never see file layouts.
//
// Open accepts:
//
//   - A diffusers folder as on the Hugging Face Hub: model_index.json,
//     unet/, vae/, text_encoder/ (each with config.json and weights),
//     scheduler/scheduler_config.json and tokenizer/. Weights may be
//     safetensors (memory-mapped, never copied), sharded safetensors
//     (*.safetensors.index.json) or PyTorch .bin files (read through
//     format/ckpt). Options.Variant ("fp16") picks variant files such as
//     diffusion_pytorch_model.fp16.safetensors; a component without that
//     variant falls back to the plain file, and a folder with only a variant
//     falls back to it, each with a note in Model.Notes. A folder without
//     model_index.json is accepted when component folders are present.
//     Attention weights saved by diffusers before v0.14 (query, key, value,
//     proj_attn, as in the SD 1.x/2.x Hub VAEs) are renamed to to_q, to_k,
//     to_v, to_out.0, and the text encoder's position_ids buffer is
//     dropped.
//
//   - A pigment package (a folder with pigment.json, see package
//     pigmentpkg): components with float and palettized weights, which
//     stay compressed in memory.
//
//   - A single-file checkpoint in the original (LDM/CompVis) layout, as
//     safetensors or a PyTorch .ckpt: model.diffusion_model.* (UNet),
//     first_stage_model.* (VAE), cond_stage_model.transformer.* (CLIP
//     ViT-L, SD 1.x) or cond_stage_model.model.* (OpenCLIP ViT-H, SD 2.x).
//     Keys are renamed as diffusers v0.21's convert_from_ckpt.py does, and
//     the component configs are inferred from tensor names and shapes:
//     levels, block_out_channels, layers_per_block, which levels have
//     attention, cross_attention_dim, use_linear_projection, transformer
//     depth, VAE channels and latent channels, text encoder width, depth,
//     MLP width, vocabulary and positions. Every tensor is then checked
//     against the shapes that config implies, so a damaged or unknown file
//     fails at Open with the file, the original and the diffusers tensor
//     name. Tensors outside those prefixes (model_ema.*, betas, ...) are
//     ignored; EMA copies are not used.
//
// # What single files cannot tell
//
// Some settings are not visible in tensor shapes; Open decides them by
// these rules, and Options.Config, Options.ConfigDir and
// Options.PredictionType override them:
//
//   - UNet heads: with 1x1-conv proj_in (SD 1.x) attention_head_dim is 8
//     (8 heads per block); with Linear proj_in (SD 2.x) heads are
//     channels/64 per block (attention_head_dim [5,10,20,20] for SD 2.x).
//     Where a block's channels are not a multiple of 64 (test-size models)
//     the SD 1.x rule, 8 heads, is used.
//   - Text encoder heads: width/64 when the width is a multiple of 64
//     (768 -> 12, 1024 -> 16), else width/8 (head_dim 8, the convention of
//     the tiny test models, e.g. width 32 -> 4 heads), else 1.
//   - Text encoder activation: quick_gelu for CLIP (SD 1.x), gelu for
//     OpenCLIP (SD 2.x). OpenCLIP's last resblock is dropped (SD 2.x uses
//     the penultimate layer), as diffusers does: 24 blocks give 23 layers.
//     Its fused attn.in_proj_weight [3C,C] is split into q/k/v by viewing
//     row ranges of the stored bytes (no copy); text_projection and
//     logit_scale are not needed and ignored.
//   - Prediction type (SD 2.x only; SD 1.x is epsilon): Options
//     .PredictionType; else the safetensors metadata
//     (modelspec.prediction_type, or a modelspec.architecture ending in
//     "-v"); else the file name ("768", "-v", "vpred" -> v_prediction;
//     "512", "base" -> epsilon); else v_prediction, which is what diffusers
//     assumes for SD 2.x files without a training step count. The choice is
//     recorded in Model.Notes.
//   - Scheduler: epsilon models get the SD 1.5 / SD 2.1-base PNDM config,
//     v_prediction models the SD 2.1 DDIM config (v_prediction).
//   - SD 2.x v_prediction models get upcast_attention true and image size
//     768 (UNet sample_size 96), others 512 (sample_size 64); VAE
//     scaling_factor is 0.18215 and norm_num_groups 32.
//   - Single files carry no tokenizer: TokenizerDir is "" unless
//     Options.ConfigDir has a tokenizer/ folder; callers fall back to a
//     bundled CLIP tokenizer (pad token "<|endoftext|>" for sd1, "!" for
//     sd2).
//
// Generated configs carry the full key set diffusers v0.21 writes for
// UNet2DConditionModel and AutoencoderKL, and transformers' CLIPTextConfig
// keys, so they read like the Hub's files.
//
// Family is "sd2" when the text encoder is OpenCLIP-shaped (gelu, or 1024
// wide) or the UNet's cross_attention_dim is 1024, else "sd1".
//
// A Model keeps its files memory-mapped until Close; tensors must not be
// used after it.
package checkpoint

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/pigment-sd/pigment/component"
	"github.com/pigment-sd/pigment/format/pigmentpkg"
	"github.com/pigment-sd/pigment/weights"
)

// Model kinds.
const (
	KindDiffusers  = "diffusers"
	KindSingleFile = "single-file"
)

// Families.
const (
	FamilySD1 = "sd1" // CLIP ViT-L text encoder, 768-dim context
	FamilySD2 = "sd2" // OpenCLIP ViT-H text encoder, 1024-dim context
)

// Options tune Open.
type Options struct {
	// Variant is the preferred weight-file variant of diffusers folders,
	// such as "fp16"; "" prefers plain files.
	Variant string
	// Components lists the components to load (default: all three).
	Components []component.Name
	// ConfigDir is a diffusers-style folder whose <component>/config.json,
	// scheduler/scheduler_config.json and tokenizer/ are used for a single
	// file instead of generated ones (as diffusers' from_single_file with
	// config=...). The configs must agree with the tensors' shapes.
	ConfigDir string
	// Config overrides keys of component configs, by component name
	// ({"unet": {"sample_size": 16}}), after they are read or generated.
	Config map[component.Name]map[string]any
	// PredictionType ("epsilon" or "v_prediction") decides a single
	// file's prediction type instead of the hints, and the generated
	// scheduler config of a diffusers folder that has none. It does not
	// change a scheduler_config.json that exists.
	PredictionType string
}

// Component is one network of a model.
type Component struct {
	Name component.Name // a folder: text encoder, UNet or VAE
	// Config is the diffusers/transformers config.json of the component
	// (generated for single files).
	Config []byte
	// Weights holds the tensors under diffusers names. Float tensors are
	// *weights.Raw views of memory-mapped data (F64 tensors, which
	// weights.Raw cannot hold, are converted to float32 *weights.Dense).
	Weights weights.Source
	// Files are the weight files backing it.
	Files []string

	evictors []func() error
}

// Evict drops the component's memory-mapped weights from the process's
// resident memory until they are next read (they stay in the page cache,
// so reading them back costs no disk I/O while the system has the memory).
// A generation calls it for networks it is done with, so the text
// encoder, UNet and VAE need not be resident at the same time. For a
// single-file checkpoint it evicts the whole file.
func (c *Component) Evict() error {
	var errs []error
	for _, e := range c.evictors {
		errs = append(errs, e())
	}
	return errors.Join(errs...)
}

// Model is an opened Stable Diffusion model.
type Model struct {
	Path   string // the folder or file opened
	Kind   string // KindDiffusers or KindSingleFile
	Family string // FamilySD1 or FamilySD2
	// Components holds the loaded components by name.
	Components map[component.Name]*Component
	// Scheduler is the scheduler_config.json (generated for single files
	// without Options.ConfigDir).
	Scheduler []byte
	// TokenizerDir is the folder with vocab.json and merges.txt, or "".
	TokenizerDir string
	// Notes records fallbacks and guesses made while opening.
	Notes []string
	// Manifest is the pigment.json of a pigment package (Kind
	// KindPigment), nil otherwise.
	Manifest *pigmentpkg.Manifest

	closers []func() error
}

// Close releases every file of the model.
func (m *Model) Close() error {
	var errs []error
	for _, c := range m.closers {
		errs = append(errs, c())
	}
	m.closers = nil
	return errors.Join(errs...)
}

func (m *Model) note(format string, args ...any) {
	m.Notes = append(m.Notes, fmt.Sprintf(format, args...))
}

// Open opens the model at path: a diffusers folder or a single-file
// checkpoint (see the package documentation).
func Open(path string, opt Options) (*Model, error) {
	comps := opt.Components
	if len(comps) == 0 {
		comps = component.Folders()
	}
	for _, c := range comps {
		if !slices.Contains(component.Folders(), c) {
			return nil, fmt.Errorf("checkpoint: unknown component %q (want %v)", c, component.Folders())
		}
	}
	for c := range opt.Config {
		if !slices.Contains(component.Folders(), c) {
			return nil, fmt.Errorf("checkpoint: config override for unknown component %q", c)
		}
	}
	switch opt.PredictionType {
	case "", "epsilon", "v_prediction":
	default:
		return nil, fmt.Errorf("checkpoint: prediction type %q (want epsilon or v_prediction)", opt.PredictionType)
	}
	opt.Components = comps
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if st.IsDir() {
		if pigmentpkg.IsPackage(path) {
			return openPackage(path, opt)
		}
		return openDiffusers(path, opt)
	}
	return openSingleFile(path, opt)
}
