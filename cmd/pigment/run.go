package main

import (
	"fmt"
	"math"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pigment-sd/pigment/component"
	"github.com/pigment-sd/pigment/format/safetensors"
	"github.com/pigment-sd/pigment/model/clip"
	"github.com/pigment-sd/pigment/model/unet"
	"github.com/pigment-sd/pigment/model/vae"
	"github.com/pigment-sd/pigment/nn"
	"github.com/pigment-sd/pigment/tensor"
)

func newRunCmd() *cobra.Command {
	var mf modelFlags
	var ef engineFlags
	var name, inputs, out string
	cmd := &cobra.Command{
		Use:   "run --model M --component C --inputs IN.safetensors --out OUT.safetensors",
		Short: "Run one network on tensors from a file and write its outputs, to compare a model against a reference",
		Long: `Run one component on input tensors named as in the reference files
(refs.safetensors) and write its outputs under the names those files use:

  text_encoder  text_encoder.input_ids [B,77] int64 -> text_encoder.last_hidden_state
  unet          unet.sample, unet.encoder_hidden_states, unet.timestep -> unet.out
                (and unet.t1.timestep -> unet.t1.out when present)
  vae_decoder   vae.decode.latents -> vae.decode.out (no scaling factor applied)
  vae_encoder   vae.encode.image -> vae.encode.mean, vae.encode.logvar, vae.encode.std`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			net, err := component.ParseNetwork(name)
			if err != nil {
				return fmt.Errorf("--component: %w", err)
			}
			comp := net.Folder()
			in, err := safetensors.Open(inputs)
			if err != nil {
				return err
			}
			defer in.Close()
			k, mode, done, err := ef.build()
			if err != nil {
				return err
			}
			defer done()
			m, err := mf.open(cmd, []component.Name{comp})
			if err != nil {
				return err
			}
			defer m.Close()
			c := m.Components[comp]
			opts := nn.Options{Attention: mode, Chunk: ef.chunk}
			var outs []safetensors.Tensor
			add := func(name string, t *tensor.Tensor) {
				outs = append(outs, safetensors.F32(name, t.Shape, t.Data))
			}
			floatIn := func(name string) (*tensor.Tensor, error) {
				v, shape, err := in.Float32(name)
				if err != nil {
					return nil, fmt.Errorf("inputs %s: %w", inputs, err)
				}
				return tensor.FromData(v, shape...), nil
			}
			switch net {
			case component.TextEncoder:
				te, err := clip.New(c.Config, c.Weights, k, opts)
				if err != nil {
					return err
				}
				ids, shape, err := in.Int64("text_encoder.input_ids")
				if err != nil {
					return fmt.Errorf("inputs %s: %w", inputs, err)
				}
				if len(shape) != 2 {
					return fmt.Errorf("inputs %s: text_encoder.input_ids has shape %v, want [B,L]", inputs, shape)
				}
				ints := make([]int, len(ids))
				for i, v := range ids {
					ints[i] = int(v)
				}
				y, err := te.Forward(ints, shape[0])
				if err != nil {
					return err
				}
				add("text_encoder.last_hidden_state", y)
			case component.UNet:
				u, err := unet.New(c.Config, c.Weights, k, opts)
				if err != nil {
					return err
				}
				sample, err := floatIn("unet.sample")
				if err != nil {
					return err
				}
				ctx, err := floatIn("unet.encoder_hidden_states")
				if err != nil {
					return err
				}
				for _, prefix := range []string{"unet.", "unet.t1."} {
					ts, _, err := in.Float64(prefix + "timestep")
					if err != nil {
						if prefix == "unet." {
							return fmt.Errorf("inputs %s: %w", inputs, err)
						}
						continue
					}
					if len(ts) != 1 || math.IsNaN(ts[0]) {
						return fmt.Errorf("inputs %s: %stimestep must hold one number", inputs, prefix)
					}
					y, err := u.Forward(sample, ts[0], ctx)
					if err != nil {
						return err
					}
					add(prefix+"out", y)
				}
			case component.VAEDecoder, component.VAEEncoder:
				v, err := vae.New(c.Config, c.Weights, k, opts)
				if err != nil {
					return err
				}
				if net == component.VAEDecoder {
					lat, err := floatIn("vae.decode.latents")
					if err != nil {
						return err
					}
					y, err := v.Decode(lat)
					if err != nil {
						return err
					}
					add("vae.decode.out", y)
					break
				}
				img, err := floatIn("vae.encode.image")
				if err != nil {
					return err
				}
				mean, logvar, err := v.Encode(img)
				if err != nil {
					return err
				}
				std := tensor.New(logvar.Shape...)
				for i, lv := range logvar.Data {
					std.Data[i] = float32(math.Exp(0.5 * float64(lv)))
				}
				add("vae.encode.mean", mean)
				add("vae.encode.logvar", logvar)
				add("vae.encode.std", std)
			}
			if err := safetensors.WriteFile(out, outs, map[string]string{"producer": "pigment run", "component": string(net)}); err != nil {
				return err
			}
			names := make([]string, len(outs))
			for i, o := range outs {
				names[i] = o.Name
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s: %s\n", out, strings.Join(names, ", "))
			return nil
		},
	}
	mf.register(cmd, true)
	ef.register(cmd)
	cmd.Flags().StringVar(&name, "component", "", "component to run: "+component.Join(component.Networks(), ", "))
	cmd.Flags().StringVar(&inputs, "inputs", "", "safetensors file with the input tensors")
	cmd.Flags().StringVarP(&out, "out", "o", "", "safetensors file to write the outputs to")
	for _, f := range []string{"component", "inputs", "out"} {
		_ = cmd.MarkFlagRequired(f)
	}
	return cmd
}
