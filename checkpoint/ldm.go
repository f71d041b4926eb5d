package checkpoint

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/pigment-sd/pigment/component"
	"github.com/pigment-sd/pigment/tensor"
)

// Key prefixes of original (LDM) Stable Diffusion checkpoints.
const (
	unetPrefix     = "model.diffusion_model."
	vaePrefix      = "first_stage_model."
	clipPrefix     = "cond_stage_model.transformer."
	openCLIPPrefix = "cond_stage_model.model."
	sdxlPrefix     = "conditioner.embedders."
)

// hints are what Open knows about a single file besides its shapes.
type hints struct {
	name       string            // file base name
	metadata   map[string]string // safetensors __metadata__
	prediction string            // Options.PredictionType
	textDType  tensor.DType      // storage type of the text encoder
}

// plan is everything Open derives from a single file's tensor names and
// shapes: the family, generated configs and the renaming of each
// requested component.
type plan struct {
	family     string
	prediction string
	comps      map[component.Name]*compPlan
	scheduler  map[string]any
	notes      []string
}

type compPlan struct {
	config  map[string]any
	entries []entry
}

func (p *plan) note(format string, args ...any) {
	p.notes = append(p.notes, fmt.Sprintf(format, args...))
}

// layoutError reports a file whose tensors are not what the loader
// expects.
type layoutError struct {
	comp          component.Name
	src, dst, msg string
}

func (e *layoutError) Error() string {
	s := string(e.comp)
	if e.src != "" {
		s += ": tensor " + e.src
		if e.dst != "" && e.dst != e.src {
			s += " (" + e.dst + ")"
		}
	}
	return s + ": " + e.msg
}

// subShapes returns the shapes of names under prefix, with it removed.
func subShapes(shapes map[string][]int, prefix string) map[string][]int {
	out := map[string][]int{}
	for n, s := range shapes {
		if rest, ok := strings.CutPrefix(n, prefix); ok {
			out[rest] = s
		}
	}
	return out
}

// planSingleFile infers the architecture of the requested components from
// the names and shapes of a single-file checkpoint and plans the renaming.
func planSingleFile(shapes map[string][]int, want []component.Name, h hints) (*plan, error) {
	unet := subShapes(shapes, unetPrefix)
	vae := subShapes(shapes, vaePrefix)
	clip := subShapes(shapes, clipPrefix)
	oclip := subShapes(shapes, openCLIPPrefix)
	if len(subShapes(shapes, sdxlPrefix)) > 0 {
		return nil, fmt.Errorf("SDXL checkpoints (%s*) are not supported", sdxlPrefix)
	}
	if len(unet) == 0 && len(vae) == 0 && len(clip) == 0 && len(oclip) == 0 {
		names := make([]string, 0, len(shapes))
		for n := range shapes {
			names = append(names, n)
		}
		sort.Strings(names)
		if _, ok := shapes["conv_in.weight"]; ok {
			return nil, fmt.Errorf("this is a diffusers component weight file (conv_in.weight, ...), not a single-file checkpoint: open the diffusers model folder")
		}
		if len(names) > 5 {
			names = names[:5]
		}
		return nil, fmt.Errorf("not a Stable Diffusion checkpoint in original layout: no tensor under %s, %s or cond_stage_model. (first names: %s)",
			unetPrefix, vaePrefix, strings.Join(names, ", "))
	}
	if len(clip) > 0 && len(oclip) > 0 {
		return nil, fmt.Errorf("both %s* and %s* tensors: unknown text encoder layout", clipPrefix, openCLIPPrefix)
	}

	p := &plan{comps: map[component.Name]*compPlan{}}
	p.family = FamilySD1
	if len(oclip) > 0 {
		p.family = FamilySD2
	}
	for n, s := range unet {
		if strings.HasSuffix(n, ".attn2.to_k.weight") && len(s) == 2 && s[1] == 1024 {
			p.family = FamilySD2
		}
	}
	p.prediction = predictionType(p.family, h, p)
	v := p.prediction == "v_prediction" && p.family == FamilySD2
	image := 512
	if v {
		image = 768
	}

	for _, comp := range want {
		var (
			cp  *compPlan
			err error
		)
		switch comp {
		case component.UNet:
			if len(unet) == 0 {
				return nil, fmt.Errorf("no UNet in the file (no %s* tensors)", unetPrefix)
			}
			cp, err = planUNet(unet, image/vaeScale(vae), v)
		case component.VAE:
			if len(vae) == 0 {
				return nil, fmt.Errorf("no VAE in the file (no %s* tensors)", vaePrefix)
			}
			cp, err = planVAE(vae, image)
		case component.TextEncoder:
			switch {
			case len(clip) > 0:
				cp, err = planCLIP(clip, h.textDType)
				err = prefixed(err, clipPrefix)
			case len(oclip) > 0:
				cp, err = planOpenCLIP(oclip, h.textDType)
				err = prefixed(err, openCLIPPrefix)
			default:
				return nil, fmt.Errorf("no text encoder in the file (no cond_stage_model.* tensors)")
			}
		}
		if err != nil {
			return nil, err
		}
		p.comps[comp] = cp
	}
	p.scheduler = schedulerConfig(p.prediction)
	return p, nil
}

// predictionType decides the prediction type of a single file (see the
// package comment for the rule).
func predictionType(family string, h hints, p *plan) string {
	if h.prediction != "" {
		return h.prediction
	}
	if family != FamilySD2 {
		return "epsilon"
	}
	switch strings.ToLower(h.metadata["modelspec.prediction_type"]) {
	case "v", "v_prediction", "v-prediction":
		p.note("prediction type v_prediction from the file's modelspec.prediction_type")
		return "v_prediction"
	case "epsilon", "eps":
		p.note("prediction type epsilon from the file's modelspec.prediction_type")
		return "epsilon"
	}
	if arch := strings.ToLower(h.metadata["modelspec.architecture"]); arch != "" {
		if strings.HasSuffix(arch, "-v") || strings.Contains(arch, "-v/") {
			p.note("prediction type v_prediction from the file's modelspec.architecture %q", arch)
			return "v_prediction"
		}
		p.note("prediction type epsilon from the file's modelspec.architecture %q", arch)
		return "epsilon"
	}
	name := strings.ToLower(strings.TrimSuffix(h.name, filepath.Ext(h.name)))
	tokens := strings.FieldsFunc(name, func(r rune) bool { return strings.ContainsRune("-_. ", r) })
	for _, t := range tokens {
		if t == "v" || t == "vpred" || strings.Contains(t, "768") {
			p.note("prediction type v_prediction guessed from the file name %q", h.name)
			return "v_prediction"
		}
	}
	for _, t := range tokens {
		if t == "base" || strings.Contains(t, "512") {
			p.note("prediction type epsilon guessed from the file name %q", h.name)
			return "epsilon"
		}
	}
	p.note("SD 2.x file without prediction-type hints: assuming v_prediction (as diffusers does); set the prediction type if images come out wrong")
	return "v_prediction"
}

// vaeScale is the VAE's down-scaling factor, 2^(levels-1), or 8 when the
// file has no VAE.
func vaeScale(vae map[string][]int) int {
	n := countIndices(vae, "encoder.down.")
	if n < 1 || n > 10 {
		return 8
	}
	return 1 << (n - 1)
}

// indices returns the sorted distinct integers N of names "prefix N.…".
func indices(shapes map[string][]int, prefix string) []int {
	seen := map[int]bool{}
	var out []int
	for n := range shapes {
		rest, ok := strings.CutPrefix(n, prefix)
		if !ok {
			continue
		}
		num, _, _ := strings.Cut(rest, ".")
		i, err := strconv.Atoi(num)
		if err != nil || i < 0 || num != strconv.Itoa(i) || seen[i] {
			continue
		}
		seen[i] = true
		out = append(out, i)
	}
	sort.Ints(out)
	return out
}

// countIndices returns how many consecutive indices 0..n-1 exist under
// prefix, or -1 when they are not consecutive from 0.
func countIndices(shapes map[string][]int, prefix string) int {
	idx := indices(shapes, prefix)
	for k, i := range idx {
		if i != k {
			return -1
		}
	}
	return len(idx)
}

func hasPrefix(shapes map[string][]int, prefix string) bool {
	for n := range shapes {
		if strings.HasPrefix(n, prefix) {
			return true
		}
	}
	return false
}

// need fetches a shape and checks its rank.
func need(comp component.Name, shapes map[string][]int, name string, rank int) ([]int, error) {
	s, ok := shapes[name]
	if !ok {
		return nil, &layoutError{comp: comp, src: name, msg: "missing"}
	}
	if len(s) != rank {
		return nil, &layoutError{comp: comp, src: name, msg: fmt.Sprintf("shape %v, want rank %d", s, rank)}
	}
	for _, d := range s {
		if d <= 0 {
			return nil, &layoutError{comp: comp, src: name, msg: fmt.Sprintf("shape %v has an empty dimension", s)}
		}
	}
	return s, nil
}

// finish renames, squeezes and checks the entries of a component against
// the shapes its architecture implies.
func finish(comp component.Name, entries []entry, want shapeSet) error {
	seen := map[string]string{}
	for _, e := range entries {
		ws, ok := want[e.dst]
		if !ok {
			return &layoutError{comp: comp, src: e.src, dst: e.dst, msg: "unexpected tensor for the inferred architecture"}
		}
		if prev, dup := seen[e.dst]; dup {
			return &layoutError{comp: comp, src: e.src, dst: e.dst, msg: "duplicate of " + prev}
		}
		seen[e.dst] = e.src
		if !slices.Equal(ws, e.shape) {
			return &layoutError{comp: comp, src: e.src, dst: e.dst, msg: fmt.Sprintf("shape %v, want %v", e.shape, ws)}
		}
	}
	var missing []string
	for n := range want {
		if _, ok := seen[n]; !ok {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		more := ""
		if len(missing) > 3 {
			more = fmt.Sprintf(" and %d more", len(missing)-3)
			missing = missing[:3]
		}
		return &layoutError{comp: comp, msg: fmt.Sprintf("missing tensors %s%s", strings.Join(missing, ", "), more)}
	}
	return nil
}

// squeezeLinear drops trailing 1-dimensions of a 1x1 conv weight stored
// where diffusers has a Linear weight ([C,C,1,1] or [C,C,1] -> [C,C]).
func squeezeLinear(s []int) []int {
	if len(s) <= 2 {
		return s
	}
	for _, d := range s[2:] {
		if d != 1 {
			return s
		}
	}
	return []int{s[0], s[1]}
}

// blockRef parses "prefix I.K.rest" into I, K and rest.
func blockRef(name, prefix string) (i, k int, rest string, ok bool) {
	r, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0, 0, "", false
	}
	parts := strings.SplitN(r, ".", 3)
	if len(parts) != 3 {
		return 0, 0, "", false
	}
	i, err1 := strconv.Atoi(parts[0])
	k, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil || i < 0 || k < 0 {
		return 0, 0, "", false
	}
	return i, k, parts[2], true
}

// resnetName renames the parts of an LDM ResBlock to diffusers'
// ResnetBlock2D.
func resnetName(rest string) (string, bool) {
	for _, r := range [][2]string{
		{"in_layers.0.", "norm1."}, {"in_layers.2.", "conv1."},
		{"out_layers.0.", "norm2."}, {"out_layers.3.", "conv2."},
		{"emb_layers.1.", "time_emb_proj."}, {"skip_connection.", "conv_shortcut."},
	} {
		if tail, ok := strings.CutPrefix(rest, r[0]); ok {
			return r[1] + tail, true
		}
	}
	return "", false
}

// unetName maps an LDM UNet tensor name (without model.diffusion_model.)
// to its diffusers name, as diffusers' convert_ldm_unet_checkpoint does.
func unetName(name string, lpb int) (string, bool) {
	for _, r := range [][2]string{
		{"time_embed.0.", "time_embedding.linear_1."}, {"time_embed.2.", "time_embedding.linear_2."},
		{"input_blocks.0.0.", "conv_in."}, {"out.0.", "conv_norm_out."}, {"out.2.", "conv_out."},
	} {
		if tail, ok := strings.CutPrefix(name, r[0]); ok {
			return r[1] + tail, true
		}
	}
	if i, k, rest, ok := blockRef(name, "input_blocks."); ok && i >= 1 {
		b, j := (i-1)/(lpb+1), (i-1)%(lpb+1)
		switch k {
		case 0:
			if tail, ok := strings.CutPrefix(rest, "op."); ok {
				return fmt.Sprintf("down_blocks.%d.downsamplers.0.conv.%s", b, tail), true
			}
			if r, ok := resnetName(rest); ok {
				return fmt.Sprintf("down_blocks.%d.resnets.%d.%s", b, j, r), true
			}
		case 1:
			return fmt.Sprintf("down_blocks.%d.attentions.%d.%s", b, j, rest), true
		}
		return "", false
	}
	if rest, ok := strings.CutPrefix(name, "middle_block."); ok {
		num, tail, _ := strings.Cut(rest, ".")
		switch num {
		case "0":
			if r, ok := resnetName(tail); ok {
				return "mid_block.resnets.0." + r, true
			}
		case "1":
			return "mid_block.attentions.0." + tail, true
		case "2":
			if r, ok := resnetName(tail); ok {
				return "mid_block.resnets.1." + r, true
			}
		}
		return "", false
	}
	if i, k, rest, ok := blockRef(name, "output_blocks."); ok {
		b, j := i/(lpb+1), i%(lpb+1)
		switch k {
		case 0:
			if r, ok := resnetName(rest); ok {
				return fmt.Sprintf("up_blocks.%d.resnets.%d.%s", b, j, r), true
			}
		case 1, 2:
			if tail, ok := strings.CutPrefix(rest, "conv."); ok {
				return fmt.Sprintf("up_blocks.%d.upsamplers.0.conv.%s", b, tail), true
			}
			if k == 1 {
				return fmt.Sprintf("up_blocks.%d.attentions.%d.%s", b, j, rest), true
			}
		}
	}
	return "", false
}

// isAttention reports whether the LDM block at prefix is a
// SpatialTransformer.
func isAttention(shapes map[string][]int, prefix string) bool {
	return hasPrefix(shapes, prefix+"proj_in.") || hasPrefix(shapes, prefix+"transformer_blocks.")
}

// inferUNet reads a UNet architecture from LDM tensor shapes.
func inferUNet(s map[string][]int) (*unetArch, error) {
	const comp = component.UNet
	fail := func(format string, args ...any) error {
		return &layoutError{comp: comp, msg: fmt.Sprintf(format, args...)}
	}
	if hasPrefix(s, "label_emb.") {
		return nil, fail("class-conditioned UNet (label_emb.*: unCLIP, upscaler or SDXL) is not supported")
	}
	a := &unetArch{}
	convIn, err := need(comp, s, "input_blocks.0.0.weight", 4)
	if err != nil {
		return nil, err
	}
	a.inCh, a.convIn = convIn[1], convIn[2]
	convOut, err := need(comp, s, "out.2.weight", 4)
	if err != nil {
		return nil, err
	}
	a.outCh, a.convOut = convOut[0], convOut[2]

	nIn := countIndices(s, "input_blocks.")
	nOut := countIndices(s, "output_blocks.")
	if nIn < 2 || nOut < 2 {
		return nil, fail("input_blocks.* (%d) or output_blocks.* (%d) are not numbered 0..n-1", nIn, nOut)
	}
	levels := 1
	for i := 0; i < nIn; i++ {
		if _, ok := s[fmt.Sprintf("input_blocks.%d.0.op.weight", i)]; ok {
			levels++
		}
	}
	if nIn%levels != 0 || nIn/levels < 2 {
		return nil, fail("%d input blocks with %d downsamplers do not make equal levels", nIn, levels-1)
	}
	a.lpb = nIn/levels - 1
	if nOut != levels*(a.lpb+1) {
		return nil, fail("%d output blocks, want %d for %d levels of %d resnets", nOut, levels*(a.lpb+1), levels, a.lpb)
	}
	for l := 0; l < levels-1; l++ {
		name := fmt.Sprintf("input_blocks.%d.0.op.weight", (l+1)*(a.lpb+1))
		if _, ok := s[name]; !ok {
			return nil, &layoutError{comp: comp, src: name, msg: "missing: downsamplers are not at the ends of levels"}
		}
	}
	a.channels = make([]int, levels)
	a.downAttn = make([]bool, levels)
	a.upAttn = make([]bool, levels)
	for l := 0; l < levels; l++ {
		first := l*(a.lpb+1) + 1
		sh, err := need(comp, s, fmt.Sprintf("input_blocks.%d.0.out_layers.3.weight", first), 4)
		if err != nil {
			return nil, err
		}
		a.channels[l] = sh[0]
		for j := 0; j < a.lpb; j++ {
			at := isAttention(s, fmt.Sprintf("input_blocks.%d.1.", first+j))
			if j == 0 {
				a.downAttn[l] = at
			} else if at != a.downAttn[l] {
				return nil, fail("level %d has attention in some blocks only", l)
			}
		}
		for j := 0; j <= a.lpb; j++ {
			at := isAttention(s, fmt.Sprintf("output_blocks.%d.1.", l*(a.lpb+1)+j))
			if j == 0 {
				a.upAttn[l] = at
			} else if at != a.upAttn[l] {
				return nil, fail("up level %d has attention in some blocks only", l)
			}
		}
	}
	if !isAttention(s, "middle_block.1.") {
		return nil, fail("middle_block.1 is not an attention block: unsupported mid block")
	}
	// The first attention block gives the context width, the projection
	// kind and the transformer depth; the shape check covers the others.
	at := "middle_block.1."
	for l := range a.channels {
		if a.downAttn[l] {
			at = fmt.Sprintf("input_blocks.%d.1.", l*(a.lpb+1)+1)
			break
		}
	}
	k, err := need(comp, s, at+"transformer_blocks.0.attn2.to_k.weight", 2)
	if err != nil {
		return nil, err
	}
	a.ctx = k[1]
	pin, ok := s[at+"proj_in.weight"]
	if !ok {
		return nil, &layoutError{comp: comp, src: at + "proj_in.weight", msg: "missing"}
	}
	a.linear = len(pin) == 2
	a.depth = countIndices(s, at+"transformer_blocks.")
	if a.depth < 1 {
		return nil, fail("%stransformer_blocks.* are not numbered 0..n-1", at)
	}
	return a, nil
}

func planUNet(s map[string][]int, sampleSize int, v bool) (*compPlan, error) {
	a, err := inferUNet(s)
	if err != nil {
		return nil, prefixed(err, unetPrefix)
	}
	entries := make([]entry, 0, len(s))
	for _, n := range sortedNames(s) {
		dst, ok := unetName(n, a.lpb)
		if !ok {
			return nil, &layoutError{comp: component.UNet, src: unetPrefix + n, msg: "unrecognised tensor name"}
		}
		shape := s[n]
		if strings.Contains(dst, "attentions") && strings.Contains(dst, "to_") {
			shape = squeezeLinear(shape)
		}
		entries = append(entries, entry{src: unetPrefix + n, dst: dst, shape: shape})
	}
	if err := finish(component.UNet, entries, unetShapes(a)); err != nil {
		return nil, err
	}
	return &compPlan{config: unetConfig(a, sampleSize, v), entries: entries}, nil
}

// vaeName maps an LDM VAE tensor name (without first_stage_model.) to its
// diffusers name, as convert_ldm_vae_checkpoint does; levels is the
// number of decoder levels (decoder.up is numbered in reverse).
func vaeName(name string, levels int) (string, bool) {
	for _, r := range [][2]string{
		{"encoder.norm_out.", "encoder.conv_norm_out."}, {"decoder.norm_out.", "decoder.conv_norm_out."},
		{"encoder.conv_in.", "encoder.conv_in."}, {"encoder.conv_out.", "encoder.conv_out."},
		{"decoder.conv_in.", "decoder.conv_in."}, {"decoder.conv_out.", "decoder.conv_out."},
		{"quant_conv.", "quant_conv."}, {"post_quant_conv.", "post_quant_conv."},
	} {
		if tail, ok := strings.CutPrefix(name, r[0]); ok {
			return r[1] + tail, true
		}
	}
	resnet := func(rest string) string {
		if tail, ok := strings.CutPrefix(rest, "nin_shortcut."); ok {
			return "conv_shortcut." + tail
		}
		return rest
	}
	for _, half := range []string{"encoder", "decoder"} {
		rest, ok := strings.CutPrefix(name, half+".mid.")
		if !ok {
			continue
		}
		if tail, ok := strings.CutPrefix(rest, "block_1."); ok {
			return half + ".mid_block.resnets.0." + resnet(tail), true
		}
		if tail, ok := strings.CutPrefix(rest, "block_2."); ok {
			return half + ".mid_block.resnets.1." + resnet(tail), true
		}
		if tail, ok := strings.CutPrefix(rest, "attn_1."); ok {
			part, leaf, _ := strings.Cut(tail, ".")
			to, ok := map[string]string{"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}[part]
			if !ok || strings.Contains(leaf, ".") {
				return "", false
			}
			return half + ".mid_block.attentions.0." + to + "." + leaf, true
		}
		return "", false
	}
	if rest, ok := strings.CutPrefix(name, "encoder.down."); ok {
		num, tail, _ := strings.Cut(rest, ".")
		i, err := strconv.Atoi(num)
		if err != nil || i < 0 {
			return "", false
		}
		if t, ok := strings.CutPrefix(tail, "downsample.conv."); ok {
			return fmt.Sprintf("encoder.down_blocks.%d.downsamplers.0.conv.%s", i, t), true
		}
		if t, ok := strings.CutPrefix(tail, "block."); ok {
			jn, leaf, _ := strings.Cut(t, ".")
			j, err := strconv.Atoi(jn)
			if err != nil || j < 0 {
				return "", false
			}
			return fmt.Sprintf("encoder.down_blocks.%d.resnets.%d.%s", i, j, resnet(leaf)), true
		}
		return "", false
	}
	if rest, ok := strings.CutPrefix(name, "decoder.up."); ok {
		num, tail, _ := strings.Cut(rest, ".")
		i, err := strconv.Atoi(num)
		if err != nil || i < 0 || i >= levels {
			return "", false
		}
		b := levels - 1 - i
		if t, ok := strings.CutPrefix(tail, "upsample.conv."); ok {
			return fmt.Sprintf("decoder.up_blocks.%d.upsamplers.0.conv.%s", b, t), true
		}
		if t, ok := strings.CutPrefix(tail, "block."); ok {
			jn, leaf, _ := strings.Cut(t, ".")
			j, err := strconv.Atoi(jn)
			if err != nil || j < 0 {
				return "", false
			}
			return fmt.Sprintf("decoder.up_blocks.%d.resnets.%d.%s", b, j, resnet(leaf)), true
		}
	}
	return "", false
}

// inferVAE reads an AutoencoderKL architecture from LDM tensor shapes.
func inferVAE(s map[string][]int) (*vaeArch, error) {
	const comp = component.VAE
	fail := func(format string, args ...any) error {
		return &layoutError{comp: comp, msg: fmt.Sprintf(format, args...)}
	}
	a := &vaeArch{}
	in, err := need(comp, s, "encoder.conv_in.weight", 4)
	if err != nil {
		return nil, err
	}
	a.inCh = in[1]
	out, err := need(comp, s, "decoder.conv_out.weight", 4)
	if err != nil {
		return nil, err
	}
	a.outCh = out[0]
	pq, err := need(comp, s, "decoder.conv_in.weight", 4)
	if err != nil {
		return nil, err
	}
	a.latent = pq[1]
	levels := countIndices(s, "encoder.down.")
	if levels < 1 {
		return nil, fail("encoder.down.* are not numbered 0..n-1")
	}
	if up := countIndices(s, "decoder.up."); up != levels {
		return nil, fail("%d decoder.up levels for %d encoder.down levels", up, levels)
	}
	a.lpb = countIndices(s, "encoder.down.0.block.")
	if a.lpb < 1 {
		return nil, fail("encoder.down.0.block.* are not numbered 0..n-1")
	}
	a.channels = make([]int, levels)
	for l := range a.channels {
		sh, err := need(comp, s, fmt.Sprintf("encoder.down.%d.block.0.conv1.weight", l), 4)
		if err != nil {
			return nil, err
		}
		a.channels[l] = sh[0]
	}
	return a, nil
}

func planVAE(s map[string][]int, sampleSize int) (*compPlan, error) {
	// Training leftovers (LPIPS/discriminator) are not part of the model.
	clean := map[string][]int{}
	for n, sh := range s {
		if !strings.HasPrefix(n, "loss.") {
			clean[n] = sh
		}
	}
	a, err := inferVAE(clean)
	if err != nil {
		return nil, prefixed(err, vaePrefix)
	}
	entries := make([]entry, 0, len(clean))
	for _, n := range sortedNames(clean) {
		dst, ok := vaeName(n, len(a.channels))
		if !ok {
			return nil, &layoutError{comp: component.VAE, src: vaePrefix + n, msg: "unrecognised tensor name"}
		}
		shape := clean[n]
		if strings.Contains(dst, "attentions") && strings.Contains(dst, "to_") {
			shape = squeezeLinear(shape)
		}
		entries = append(entries, entry{src: vaePrefix + n, dst: dst, shape: shape})
	}
	if err := finish(component.VAE, entries, vaeShapes(a)); err != nil {
		return nil, err
	}
	return &compPlan{config: vaeConfig(a, sampleSize), entries: entries}, nil
}

// planCLIP plans a transformers CLIPTextModel stored under
// cond_stage_model.transformer. (names already in transformers' naming;
// files from old transformers versions lack the text_model. level).
func planCLIP(s map[string][]int, dt tensor.DType) (*compPlan, error) {
	const comp = component.TextEncoder
	norm := map[string][]int{}
	src := map[string]string{}
	for n, sh := range s {
		d := n
		if !strings.HasPrefix(d, "text_model.") {
			d = "text_model." + d
		}
		if isIgnoredBuffer(d) {
			continue
		}
		norm[d] = sh
		src[d] = n
	}
	tok, err := need(comp, norm, "text_model.embeddings.token_embedding.weight", 2)
	if err != nil {
		return nil, err
	}
	pos, err := need(comp, norm, "text_model.embeddings.position_embedding.weight", 2)
	if err != nil {
		return nil, err
	}
	a := &clipArch{vocab: tok[0], width: tok[1], positions: pos[0]}
	a.layers = countIndices(norm, "text_model.encoder.layers.")
	if a.layers < 1 {
		return nil, &layoutError{comp: comp, msg: "text_model.encoder.layers.* are not numbered 0..n-1"}
	}
	fc1, err := need(comp, norm, "text_model.encoder.layers.0.mlp.fc1.weight", 2)
	if err != nil {
		return nil, err
	}
	a.inter = fc1[0]
	entries := make([]entry, 0, len(norm))
	for _, d := range sortedNames(norm) {
		entries = append(entries, entry{src: clipPrefix + src[d], dst: d, shape: norm[d]})
	}
	if err := finish(component.TextEncoder, entries, clipShapes(a)); err != nil {
		return nil, err
	}
	return &compPlan{config: clipConfig(a, dt), entries: entries}, nil
}

// planOpenCLIP plans an OpenCLIP text tower stored under
// cond_stage_model.model., as convert_open_clip_checkpoint does, without
// the last resblock.
func planOpenCLIP(s map[string][]int, dt tensor.DType) (*compPlan, error) {
	const comp = component.TextEncoder
	tok, err := need(comp, s, "token_embedding.weight", 2)
	if err != nil {
		return nil, err
	}
	pos, err := need(comp, s, "positional_embedding", 2)
	if err != nil {
		return nil, err
	}
	a := &clipArch{vocab: tok[0], width: tok[1], positions: pos[0], openclip: true}
	blocks := countIndices(s, "transformer.resblocks.")
	if blocks < 2 {
		return nil, &layoutError{comp: comp, msg: fmt.Sprintf("%d transformer.resblocks (numbered 0..n-1), need at least 2 (the last is dropped)", blocks)}
	}
	a.layers = blocks - 1
	fc, err := need(comp, s, "transformer.resblocks.0.mlp.c_fc.weight", 2)
	if err != nil {
		return nil, err
	}
	a.inter = fc[0]
	w := a.width
	var entries []entry
	for _, n := range sortedNames(s) {
		sh := s[n]
		srcName := openCLIPPrefix + n
		switch n {
		case "token_embedding.weight":
			entries = append(entries, entry{src: srcName, dst: "text_model.embeddings.token_embedding.weight", shape: sh})
			continue
		case "positional_embedding":
			entries = append(entries, entry{src: srcName, dst: "text_model.embeddings.position_embedding.weight", shape: sh})
			continue
		case "ln_final.weight", "ln_final.bias":
			entries = append(entries, entry{src: srcName, dst: "text_model.final_layer_norm." + strings.TrimPrefix(n, "ln_final."), shape: sh})
			continue
		case "text_projection", "logit_scale", "attn_mask":
			continue
		}
		if strings.HasPrefix(n, "visual.") {
			continue
		}
		rest, ok := strings.CutPrefix(n, "transformer.resblocks.")
		if !ok {
			return nil, &layoutError{comp: comp, src: srcName, msg: "unrecognised tensor name"}
		}
		num, leaf, _ := strings.Cut(rest, ".")
		i, err := strconv.Atoi(num)
		if err != nil {
			return nil, &layoutError{comp: comp, src: srcName, msg: "unrecognised tensor name"}
		}
		if i == blocks-1 {
			continue // the last block: SD 2.x uses the penultimate layer
		}
		p := fmt.Sprintf("text_model.encoder.layers.%d.", i)
		switch leaf {
		case "attn.in_proj_weight", "attn.in_proj_bias":
			kind, want := "weight", []int{3 * w, w}
			if leaf == "attn.in_proj_bias" {
				kind, want = "bias", []int{3 * w}
			}
			if !slices.Equal(sh, want) {
				return nil, &layoutError{comp: comp, src: srcName, msg: fmt.Sprintf("shape %v, want %v", sh, want)}
			}
			for k, qkv := range []string{"q_proj", "k_proj", "v_proj"} {
				shape := append([]int{w}, sh[1:]...)
				entries = append(entries, entry{src: srcName, dst: p + "self_attn." + qkv + "." + kind, shape: shape, rowLo: k * w, rowHi: (k + 1) * w})
			}
			continue
		}
		var dst string
		for _, r := range [][2]string{
			{"ln_1.", "layer_norm1."}, {"ln_2.", "layer_norm2."},
			{"mlp.c_fc.", "mlp.fc1."}, {"mlp.c_proj.", "mlp.fc2."},
			{"attn.out_proj.", "self_attn.out_proj."},
		} {
			if tail, ok := strings.CutPrefix(leaf, r[0]); ok {
				dst = p + r[1] + tail
				break
			}
		}
		if dst == "" {
			return nil, &layoutError{comp: comp, src: srcName, msg: "unrecognised tensor name"}
		}
		entries = append(entries, entry{src: srcName, dst: dst, shape: sh})
	}
	if err := finish(component.TextEncoder, entries, clipShapes(a)); err != nil {
		return nil, err
	}
	return &compPlan{config: clipConfig(a, dt), entries: entries}, nil
}

// prefixed puts the file's key prefix back on the tensor name of a
// layoutError.
func prefixed(err error, prefix string) error {
	if err == nil {
		return nil
	}
	if le, ok := err.(*layoutError); ok && le.src != "" && !strings.HasPrefix(le.src, prefix) {
		c := *le
		c.src = prefix + c.src
		return &c
	}
	return err
}

func sortedNames(s map[string][]int) []string {
	out := make([]string, 0, len(s))
	for n := range s {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
