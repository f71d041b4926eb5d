// Package component names the parts of a Stable Diffusion model once, for
// the loaders, the converter, the pipeline and the commands: the folders a
// model is made of (text_encoder, unet, vae, as diffusers lays them out)
// and the networks that run on their own (the VAE folder holds two, its
// encoder and its decoder).
package component

import (
	"fmt"
	"slices"
	"strings"
)

// Name is a component folder or a network.
type Name string

// The components of a Stable Diffusion model.
const (
	TextEncoder Name = "text_encoder" // folder and network: CLIP text model
	UNet        Name = "unet"         // folder and network
	VAE         Name = "vae"          // folder of the autoencoder
	VAEDecoder  Name = "vae_decoder"  // network: vae's decoder.* and post_quant_conv.*
	VAEEncoder  Name = "vae_encoder"  // network: vae's encoder.* and quant_conv.*
)

// Folders lists the component folders of a model, in the order they are
// loaded.
func Folders() []Name { return []Name{TextEncoder, UNet, VAE} }

// Networks lists the networks that run on their own, in the order
// conversion processes and checks them.
func Networks() []Name { return []Name{TextEncoder, UNet, VAEDecoder, VAEEncoder} }

// Folder returns the folder holding network n (n itself for a folder).
func (n Name) Folder() Name {
	if n == VAEDecoder || n == VAEEncoder {
		return VAE
	}
	return n
}

// IsNetwork reports whether n runs on its own.
func (n Name) IsNetwork() bool { return slices.Contains(Networks(), n) }

// IsFolder reports whether n is a component folder.
func (n Name) IsFolder() bool { return slices.Contains(Folders(), n) }

// ParseNetwork reads a network name as users type it: "vae-decoder" is
// vae_decoder.
func ParseNetwork(s string) (Name, error) {
	n := Name(strings.ReplaceAll(strings.ToLower(s), "-", "_"))
	if !n.IsNetwork() {
		return "", fmt.Errorf("unknown component %q (want one of %s)", s, Join(Networks(), ", "))
	}
	return n, nil
}

// ParseFolder reads a component folder name.
func ParseFolder(s string) (Name, error) {
	n := Name(strings.ReplaceAll(strings.ToLower(s), "-", "_"))
	if !n.IsFolder() {
		return "", fmt.Errorf("unknown component %q (want one of %s)", s, Join(Folders(), ", "))
	}
	return n, nil
}

// Join joins names with sep, as strings.Join does.
func Join(names []Name, sep string) string {
	s := make([]string, len(names))
	for i, n := range names {
		s[i] = string(n)
	}
	return strings.Join(s, sep)
}
