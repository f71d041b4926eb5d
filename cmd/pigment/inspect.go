package main

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/spf13/cobra"

	"github.com/pigment-sd/pigment/checkpoint"
	"github.com/pigment-sd/pigment/format/pigmentpkg"
)

func newInspectCmd() *cobra.Command {
	var mf modelFlags
	var asJSON, tensors bool
	cmd := &cobra.Command{
		Use:   "inspect MODEL",
		Short: "Describe a model: family, components, dtypes, parameter counts, sizes, compression",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mf.model = args[0]
			m, err := mf.open(cmd, nil)
			if err != nil {
				return err
			}
			defer m.Close()
			s := checkpoint.Inspect(m)
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(struct {
					checkpoint.Summary
					Manifest *pigmentpkg.Manifest `json:",omitempty"`
				}{s, m.Manifest})
			}
			fmt.Fprint(out, s.String())
			if m.Manifest != nil {
				printManifest(cmd, m.Manifest, tensors)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&mf.variant, "variant", "", `weight-file variant of diffusers folders to prefer, such as "fp16"`)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&tensors, "tensors", false, "list every tensor of a pigment package with its bits and error")
	return cmd
}

func printManifest(cmd *cobra.Command, m *pigmentpkg.Manifest, tensors bool) {
	out := cmd.OutOrStdout()
	r := m.Recipe
	fmt.Fprintf(out, "  pigment package v%d from %s (%s, %s)\n", m.Version, m.Source.Path, m.Source.Kind, m.Source.Family)
	gran := r.Granularity
	if r.GroupSize > 0 {
		gran = fmt.Sprintf("%s, group size %d", gran, r.GroupSize)
	}
	fmt.Fprintf(out, "  recipe: %d bits, %s, %s, %s tables, min size %d\n", r.Bits, r.Mode, gran, r.TableDType, r.MinSize)
	names := make([]string, 0, len(m.Components))
	for n := range m.Components {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := m.Components[n]
		bits := map[int]int{}
		for _, t := range c.Tensors {
			bits[t.Bits]++
		}
		ratio := 0.0
		if c.StoredBytes > 0 {
			ratio = float64(c.FloatBytes) / float64(c.StoredBytes)
		}
		keys := make([]int, 0, len(bits))
		for b := range bits {
			keys = append(keys, b)
		}
		sort.Ints(keys)
		desc := ""
		for _, b := range keys {
			if b == 0 {
				desc += fmt.Sprintf(" float:%d", bits[b])
			} else {
				desc += fmt.Sprintf(" %dbit:%d", b, bits[b])
			}
		}
		fmt.Fprintf(out, "  %-12s %s stored vs %s float16 (%.2fx smaller); tensors%s\n", n, byteSize(c.StoredBytes), byteSize(c.FloatBytes), ratio, desc)
		if tensors {
			tn := make([]string, 0, len(c.Tensors))
			for t := range c.Tensors {
				tn = append(tn, t)
			}
			sort.Strings(tn)
			for _, t := range tn {
				r := c.Tensors[t]
				if r.Bits == 0 {
					fmt.Fprintf(out, "    %-80s %-18v %s\n", t, r.Shape, r.DType)
				} else {
					tables := 1
					if r.GroupSize > 0 && len(r.Shape) > 0 {
						tables = (r.Shape[0] + r.GroupSize - 1) / r.GroupSize
					}
					entry := int64(2)
					if m.Recipe.TableDType == "F32" {
						entry = 4
					}
					fmt.Fprintf(out, "    %-80s %-18v %d bits %s, %d table(s) of %d (%s), SQNR %.1f dB, %s\n", t, r.Shape, r.Bits, r.Mode,
						tables, 1<<r.Bits, byteSize(int64(tables)*int64(1<<r.Bits)*entry), r.SQNR, byteSize(r.Bytes))
				}
			}
		}
	}
	if m.Check != nil {
		fmt.Fprintf(out, "  output check (threshold %.1f dB):", m.Check.ThresholdDB)
		cn := make([]string, 0, len(m.Check.Results))
		for n := range m.Check.Results {
			cn = append(cn, n)
		}
		sort.Strings(cn)
		for _, n := range cn {
			r := m.Check.Results[n]
			verdict := "pass"
			if !r.Pass {
				verdict = "FAIL"
			}
			fmt.Fprintf(out, " %s %.1f dB %s;", n, r.PSNR, verdict)
		}
		fmt.Fprintln(out)
	}
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
