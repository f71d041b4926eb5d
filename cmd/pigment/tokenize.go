package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pigment-sd/pigment/component"
	"github.com/pigment-sd/pigment/pipeline"
	"github.com/pigment-sd/pigment/tokenizer/clip"
)

func newTokenizeCmd() *cobra.Command {
	var mf modelFlags
	var asJSON, raw bool
	cmd := &cobra.Command{
		Use:   "tokenize [--model M] PROMPT",
		Short: "Print the CLIP token ids of a prompt as the model's tokenizer gives them",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tok, err := openTokenizer(cmd, &mf)
			if err != nil {
				return err
			}
			var ids []int
			truncated := false
			if raw {
				ids = append(append([]int{tok.BOS()}, tok.Encode(args[0])...), tok.EOS())
			} else {
				ids, truncated = tok.EncodePadded(args[0], pipeline.MaxTokens)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return json.NewEncoder(out).Encode(map[string]any{"ids": ids, "truncated": truncated, "pad_id": tok.PadID()})
			}
			s := make([]string, len(ids))
			for i, id := range ids {
				s[i] = fmt.Sprint(id)
			}
			fmt.Fprintln(out, strings.Join(s, " "))
			if truncated {
				fmt.Fprintln(cmd.ErrOrStderr(), "note: the prompt is longer than 75 tokens and was truncated")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&mf.model, "model", "", "model whose tokenizer to use (default: the bundled SD 1.x CLIP tokenizer)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&raw, "raw", false, "print bos + all tokens + eos, without truncation or padding")
	return cmd
}

// openTokenizer loads the tokenizer of the model the flags name, or the
// bundled one of the model's family when it has none.
func openTokenizer(cmd *cobra.Command, mf *modelFlags) (*clip.Tokenizer, error) {
	if mf.model == "" {
		return clip.Bundled("sd1")
	}
	m, err := mf.open(cmd, []component.Name{component.TextEncoder})
	if err != nil {
		return nil, err
	}
	defer m.Close()
	if m.TokenizerDir != "" {
		return clip.Load(m.TokenizerDir)
	}
	return clip.Bundled(m.Family)
}
