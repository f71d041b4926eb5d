package checkpoint

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/pigment-sd/pigment/component"
	"github.com/pigment-sd/pigment/tensor"
	"github.com/pigment-sd/pigment/weights"
)

// Summary describes an opened model, for `pigment inspect`.
type Summary struct {
	Path           string
	Kind           string
	Family         string
	Scheduler      string // scheduler class name
	PredictionType string // from the scheduler config ("epsilon" when absent)
	TokenizerDir   string
	Components     []ComponentSummary // sorted by name
	Params         int64              // all components
	Bytes          int64              // storage bytes, all components
	Notes          []string
}

// ComponentSummary describes one component.
type ComponentSummary struct {
	Name    component.Name
	Class   string // _class_name, or the transformers architecture
	Files   []string
	Tensors int
	Params  int64
	Bytes   int64                  // storage bytes
	DTypes  map[tensor.DType]int64 // parameters per storage type
}

// Inspect summarises m.
func Inspect(m *Model) Summary {
	s := Summary{Path: m.Path, Kind: m.Kind, Family: m.Family, TokenizerDir: m.TokenizerDir,
		Notes: append([]string(nil), m.Notes...), PredictionType: "epsilon"}
	var sched map[string]any
	if json.Unmarshal(m.Scheduler, &sched) == nil {
		s.Scheduler, _ = sched["_class_name"].(string)
		if p, ok := sched["prediction_type"].(string); ok {
			s.PredictionType = p
		}
	}
	names := make([]component.Name, 0, len(m.Components))
	for n := range m.Components {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		c := m.Components[n]
		cs := ComponentSummary{Name: n, Files: c.Files, DTypes: map[tensor.DType]int64{}}
		var cfg map[string]any
		if json.Unmarshal(c.Config, &cfg) == nil {
			cs.Class, _ = cfg["_class_name"].(string)
			if a, ok := cfg["architectures"].([]any); ok && len(a) > 0 && cs.Class == "" {
				cs.Class, _ = a[0].(string)
			}
		}
		for _, tn := range c.Weights.Names() {
			t, ok := c.Weights.Tensor(tn)
			if !ok {
				continue
			}
			p := int64(weights.NumElements(t))
			cs.Tensors++
			cs.Params += p
			cs.DTypes[t.DType()] += p
			if b, ok := t.(weights.ByteSizer); ok {
				cs.Bytes += b.StorageBytes()
			} else {
				cs.Bytes += 4 * p
			}
		}
		s.Params += cs.Params
		s.Bytes += cs.Bytes
		s.Components = append(s.Components, cs)
	}
	return s
}

// String renders the summary as text.
func (s Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n  kind %s, family %s, scheduler %s (%s)\n", s.Path, s.Kind, s.Family, s.Scheduler, s.PredictionType)
	tok := s.TokenizerDir
	if tok == "" {
		tok = "none"
	}
	fmt.Fprintf(&b, "  tokenizer %s\n", tok)
	for _, c := range s.Components {
		dts := make([]string, 0, len(c.DTypes))
		for d, n := range c.DTypes {
			dts = append(dts, fmt.Sprintf("%s %s", d, count(n)))
		}
		sort.Strings(dts)
		fmt.Fprintf(&b, "  %-12s %-22s %4d tensors %9s params %10s  [%s]\n",
			c.Name, c.Class, c.Tensors, count(c.Params), byteSize(c.Bytes), strings.Join(dts, ", "))
	}
	fmt.Fprintf(&b, "  total %s params, %s\n", count(s.Params), byteSize(s.Bytes))
	for _, n := range s.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	return b.String()
}

func count(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fG", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	}
	return fmt.Sprint(n)
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
