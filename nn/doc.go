// Package nn holds the layers the Stable Diffusion networks are built from:
// Linear, Conv2d, GroupNorm, LayerNorm, Attention, FeedForward (GEGLU),
// ResnetBlock2D, TransformerBlock, Transformer2D, Downsample2D and
// Upsample2D.
//
// A layer is a struct bound to named weights with a short Forward, as in
// ollama's ml/nn. Constructors take a weights.Source and the layer's name
// prefix (the diffusers or transformers state-dict name, such as
// "down_blocks.0.resnets.0"), check every shape and report a missing or
// misshapen weight as a *weights.MissingError. Large weights (Linear and
// convolution kernels) stay in the source and reach the kernels as
// weights.Tensor, which reads rows a block at a time; only small tensors
// (biases, norm parameters) are copied into float32.
//
// All arithmetic goes through a kernels.Kernels held by the Ctx of a
// forward pass. The Ctx also owns an Arena: activations are taken from it
// and given back as soon as they are dead, so repeated forward passes of the
// same size reuse the same buffers and allocate nothing large after the
// first one.
//
// Activations are dense row-major float32 tensors: NCHW for images, [B, L, C]
// for token sequences.
package nn
