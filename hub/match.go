package hub

import "strings"

// Match reports whether name matches the shell pattern with the semantics
// of Python's fnmatch.fnmatchcase, which huggingface_hub uses for
// allow_patterns and ignore_patterns:
//
//   - any sequence of characters, '/' included
//     ?        any one character
//     [seq]    one character in seq; ranges a-z; [!seq] negates
//
// There is no escape character, and a '[' without a closing ']' is an
// ordinary character. Every pattern is valid.
func Match(pattern, name string) bool {
	return compilePattern(pattern).match([]rune(name))
}

// FilterPaths keeps the paths that match at least one include pattern
// (all paths when include is empty) and no exclude pattern, as
// huggingface_hub's filter_repo_objects. A pattern ending in "/" matches
// everything below that folder.
func FilterPaths(paths, include, exclude []string) []string {
	inc := compilePatterns(include)
	exc := compilePatterns(exclude)
	var out []string
	for _, p := range paths {
		if matchesAny(inc, p, true) && !matchesAny(exc, p, false) {
			out = append(out, p)
		}
	}
	return out
}

func compilePatterns(patterns []string) []pattern {
	out := make([]pattern, len(patterns))
	for i, p := range patterns {
		if strings.HasSuffix(p, "/") {
			p += "*"
		}
		out[i] = compilePattern(p)
	}
	return out
}

// matchesAny reports whether name matches one of ps, or ifEmpty when there
// are none.
func matchesAny(ps []pattern, name string, ifEmpty bool) bool {
	if len(ps) == 0 {
		return ifEmpty
	}
	rs := []rune(name)
	for _, p := range ps {
		if p.match(rs) {
			return true
		}
	}
	return false
}

type tokenKind uint8

const (
	tokLiteral tokenKind = iota
	tokAny               // ? or a negated empty class: any one character
	tokStar              // *
	tokClass             // [...]
	tokNever             // an empty class: matches nothing
)

type runeRange struct{ lo, hi rune }

type token struct {
	kind   tokenKind
	r      rune        // tokLiteral
	negate bool        // tokClass
	ranges []runeRange // tokClass
}

func (t *token) matches(r rune) bool {
	switch t.kind {
	case tokLiteral:
		return r == t.r
	case tokAny:
		return true
	case tokClass:
		in := false
		for _, rr := range t.ranges {
			if rr.lo <= r && r <= rr.hi {
				in = true
				break
			}
		}
		return in != t.negate
	}
	return false
}

type pattern []token

// compilePattern follows fnmatch.translate of CPython 3.9 to 3.13
// character for character, including its handling of reversed ranges
// (removed; a class left empty matches nothing, a negated one left empty
// matches anything).
func compilePattern(pat string) pattern {
	p := []rune(pat)
	n := len(p)
	var out pattern
	for i := 0; i < n; {
		c := p[i]
		i++
		switch c {
		case '*':
			if len(out) == 0 || out[len(out)-1].kind != tokStar {
				out = append(out, token{kind: tokStar})
			}
		case '?':
			out = append(out, token{kind: tokAny})
		case '[':
			j := i
			if j < n && p[j] == '!' {
				j++
			}
			if j < n && p[j] == ']' {
				j++
			}
			for j < n && p[j] != ']' {
				j++
			}
			if j >= n {
				out = append(out, token{kind: tokLiteral, r: '['})
				continue
			}
			out = append(out, classToken(p, i, j))
			i = j + 1
		default:
			out = append(out, token{kind: tokLiteral, r: c})
		}
	}
	return out
}

// classToken builds the token for the class p[i:j] (between the brackets).
func classToken(p []rune, i, j int) token {
	stuff := p[i:j]
	hasDash := false
	for _, r := range stuff {
		if r == '-' {
			hasDash = true
		}
	}
	var chunks [][]rune
	if !hasDash {
		chunks = [][]rune{stuff}
	} else {
		// Split at the hyphens that form ranges, as translate does.
		k := i + 1
		if p[i] == '!' {
			k = i + 2
		}
		for {
			k = indexRune(p, '-', k, j)
			if k < 0 {
				break
			}
			chunks = append(chunks, p[i:k])
			i = k + 1
			k += 3
		}
		if chunk := p[i:j]; len(chunk) > 0 {
			chunks = append(chunks, chunk)
		} else {
			last := chunks[len(chunks)-1]
			chunks[len(chunks)-1] = append(last[:len(last):len(last)], '-')
		}
		// Remove reversed ranges.
		for k := len(chunks) - 1; k > 0; k-- {
			prev, next := chunks[k-1], chunks[k]
			if prev[len(prev)-1] > next[0] {
				merged := append(append([]rune{}, prev[:len(prev)-1]...), next[1:]...)
				chunks[k-1] = merged
				chunks = append(chunks[:k], chunks[k+1:]...)
			}
		}
	}
	total := 0
	for _, ch := range chunks {
		total += len(ch)
	}
	total += len(chunks) - 1 // the range hyphens
	switch {
	case total <= 0:
		return token{kind: tokNever}
	case total == 1 && len(chunks) == 1 && chunks[0][0] == '!':
		return token{kind: tokAny}
	}
	// As in translate, a class is negated when its final text starts with
	// '!', which removing a reversed range can bring about.
	negate := len(chunks[0]) > 0 && chunks[0][0] == '!'
	if negate {
		chunks[0] = chunks[0][1:]
	}
	t := token{kind: tokClass, negate: negate}
	for c, ch := range chunks {
		lo, hi := 0, len(ch)
		if c > 0 {
			lo = 1 // the end of the range started by the previous chunk
		}
		if c < len(chunks)-1 {
			hi = len(ch) - 1 // the start of the range to the next chunk
			if hi >= 0 && len(ch) > 0 {
				t.ranges = append(t.ranges, runeRange{ch[len(ch)-1], chunks[c+1][0]})
			}
		}
		for _, r := range ch[lo:max(lo, hi)] {
			t.ranges = append(t.ranges, runeRange{r, r})
		}
	}
	return t
}

func indexRune(p []rune, r rune, from, to int) int {
	for k := from; k < to; k++ {
		if p[k] == r {
			return k
		}
	}
	return -1
}

// match runs the classic wildcard algorithm: every token but '*' consumes
// exactly one character, so remembering the last star is enough.
func (p pattern) match(name []rune) bool {
	pi, ni := 0, 0
	star, mark := -1, 0
	for ni < len(name) {
		switch {
		case pi < len(p) && p[pi].kind == tokStar:
			star, mark = pi, ni
			pi++
		case pi < len(p) && p[pi].matches(name[ni]):
			pi++
			ni++
		case star >= 0:
			mark++
			pi, ni = star+1, mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi].kind == tokStar {
		pi++
	}
	return pi == len(p)
}
