package clip

import (
	"embed"
	"fmt"
)

// The CLIP BPE vocabulary and merges are the same for every Stable
// Diffusion model (OpenAI's bpe_simple_vocab_16e6); SD 1.x and SD 2.x differ
// only in the pad token. They are bundled so single-file checkpoints, which
// carry no tokenizer, still run offline.
//
//go:embed bundled/vocab.json bundled/merges.txt bundled/sd1 bundled/sd2
var bundled embed.FS

// Bundled returns the CLIP tokenizer Stable Diffusion uses: family "sd1"
// pads with <|endoftext|>, "sd2" with "!" (id 0).
func Bundled(family string) (*Tokenizer, error) {
	if family != "sd1" && family != "sd2" {
		return nil, fmt.Errorf("clip tokenizer: no bundled tokenizer for family %q (sd1, sd2)", family)
	}
	read := func(name string) []byte {
		b, err := bundled.ReadFile("bundled/" + name)
		if err != nil {
			panic("clip tokenizer: bundled file missing: " + name) // embedded at build time
		}
		return b
	}
	var configs []namedConfig
	for _, name := range []string{family + "/tokenizer_config.json", family + "/special_tokens_map.json"} {
		configs = append(configs, namedConfig{name, read(name)})
	}
	return fromData(read("vocab.json"), read("merges.txt"), configs)
}
