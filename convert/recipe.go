package convert

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"slices"
	"strings"

	"github.com/pigment-sd/pigment/palette"
)

// recipe is a validated Options.Recipe.
type recipe struct {
	entries []*recipeEntry
}

type recipeEntry struct {
	pattern string
	bits    int
	exact   bool
	used    bool
}

func newRecipe(m map[string]int) (*recipe, error) {
	r := &recipe{}
	for p, bits := range m {
		if err := checkEntry(p, bits); err != nil {
			return nil, err
		}
		r.entries = append(r.entries, &recipeEntry{pattern: p, bits: bits, exact: !strings.ContainsAny(p, `*?[\`)})
	}
	// Exact names first, then longer globs, then by pattern: the first
	// match wins.
	slices.SortFunc(r.entries, func(a, b *recipeEntry) int {
		if a.exact != b.exact {
			if a.exact {
				return -1
			}
			return 1
		}
		if len(a.pattern) != len(b.pattern) {
			return len(b.pattern) - len(a.pattern)
		}
		return strings.Compare(a.pattern, b.pattern)
	})
	return r, nil
}

// checkEntry validates one recipe entry.
func checkEntry(pattern string, bits int) error {
	if bits != 0 && !palette.ValidBits(bits) {
		return fmt.Errorf("recipe entry %q: %d bits is not supported (0 to keep float, or %s)", pattern, bits, palette.WidthsText)
	}
	if !strings.Contains(pattern, "/") {
		return fmt.Errorf("recipe entry %q: want folder/tensor, such as unet/conv_in.weight or unet/*attn1*", pattern)
	}
	if _, err := path.Match(pattern, ""); err != nil {
		return fmt.Errorf("recipe entry %q: %w", pattern, err)
	}
	return nil
}

// match returns the entry deciding key, marking every matching entry used.
func (r *recipe) match(key string) *recipeEntry {
	var best *recipeEntry
	for _, e := range r.entries {
		if ok, _ := path.Match(e.pattern, key); ok {
			e.used = true
			if best == nil {
				best = e
			}
		}
	}
	return best
}

// unused lists the entries that matched nothing, sorted.
func (r *recipe) unused() []string {
	var out []string
	for _, e := range r.entries {
		if !e.used {
			out = append(out, fmt.Sprintf("%q", e.pattern))
		}
	}
	slices.Sort(out)
	return out
}

// ParseRecipe reads a recipe: a JSON object mapping tensor names or globs
// ("unet/*attn1*") to a width in bits, 0 meaning keep float. Duplicate
// keys, widths other than 0, 1, 2, 3, 4, 6 and 8, and malformed globs are
// errors.
func ParseRecipe(data []byte) (map[string]int, error) {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("recipe: want a JSON object of name or glob to bits")
	}
	out := map[string]int{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("recipe: %w", err)
		}
		key, _ := tok.(string) // object keys are always strings
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("recipe: entry %q: %w", key, err)
		}
		num, ok := v.(json.Number)
		f, err := num.Float64()
		if !ok || err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<20 {
			return nil, fmt.Errorf("recipe: entry %q: value %v is not a whole number of bits", key, v)
		}
		bits := int(f)
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("recipe: entry %q appears twice", key)
		}
		if err := checkEntry(key, bits); err != nil {
			return nil, fmt.Errorf("recipe: %w", err)
		}
		out[key] = bits
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("recipe: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("recipe: data after the JSON object")
	}
	return out, nil
}
