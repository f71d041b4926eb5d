package clip

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// isPySpace reports whether Python's re module matches r with \s in a str
// pattern (str.isspace): Go's White_Space set plus the information
// separators U+001C..U+001F.
func isPySpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// cleanText collapses every run of whitespace to one space and strips both
// ends, like re.sub(r"\s+", " ", text).strip(). Invalid UTF-8 bytes are
// read as U+FFFD, one per byte.
func cleanText(text string) []rune {
	out := make([]rune, 0, len(text))
	space := false
	for _, r := range text {
		if isPySpace(r) {
			space = true
			continue
		}
		if space && len(out) > 0 {
			out = append(out, ' ')
		}
		space = false
		out = append(out, r)
	}
	return out
}

// pyLower returns the text lower-cased as Python's str.lower() does: the
// simple lower-case mapping of each code point except U+0130, which becomes
// "i" + U+0307 (its unconditional full mapping), and capital sigma, which
// becomes final sigma at the end of a word (the Final_Sigma context).
func pyLower(runes []rune) string {
	var b strings.Builder
	b.Grow(len(runes) + 8)
	for i, r := range runes {
		switch {
		case r < utf8.RuneSelf:
			if 'A' <= r && r <= 'Z' {
				r += 'a' - 'A'
			}
			b.WriteByte(byte(r))
		case r == 0x130: // İ
			b.WriteString("i\u0307")
		case r == 0x3a3: // Σ
			if finalSigma(runes, i) {
				b.WriteRune(0x3c2) // ς
			} else {
				b.WriteRune(0x3c3) // σ
			}
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// finalSigma reports whether the capital sigma at runes[i] is in the
// Final_Sigma context: preceded by a cased letter (skipping case-ignorable
// code points) and not followed by one.
func finalSigma(runes []rune, i int) bool {
	j := i - 1
	for j >= 0 && isCaseIgnorable(runes[j]) {
		j--
	}
	if j < 0 || !isCased(runes[j]) {
		return false
	}
	j = i + 1
	for j < len(runes) && isCaseIgnorable(runes[j]) {
		j++
	}
	return j == len(runes) || !isCased(runes[j])
}

// isCased is the Unicode Cased property: Lowercase, Uppercase or Lt.
func isCased(r rune) bool {
	return unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r) ||
		unicode.Is(unicode.Other_Lowercase, r) || unicode.Is(unicode.Other_Uppercase, r)
}

// isCaseIgnorable is the Unicode Case_Ignorable property: Mn, Me, Cf, Lm,
// Sk, and the Word_Break classes MidLetter, MidNumLet and Single_Quote.
func isCaseIgnorable(r rune) bool {
	switch r {
	case '\'', // Single_Quote
		'.', 0x2018, 0x2019, 0x2024, 0xfe52, 0xff07, 0xff0e, // MidNumLet
		':', 0xb7, 0x387, 0x55f, 0x5f4, 0x2027, 0xfe13, 0xfe55, 0xff1a: // MidLetter
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}

// U+0345 COMBINING GREEK YPOGEGRAMMENI case-folds to a letter (ι), so under
// the reference pattern's IGNORECASE flag the negated class [^\s\p{L}\p{N}]
// rejects it, while [\p{L}] does not accept it either: no alternative
// matches it and it is dropped from the text.
const ypogegrammeni = 0x345

func isLetter(r rune) bool { return unicode.IsLetter(r) }
func isNumber(r rune) bool { return unicode.IsNumber(r) }
func isOther(r rune) bool {
	return !unicode.IsSpace(r) && !isLetter(r) && !isNumber(r) && r != ypogegrammeni
}

const (
	startOfText = "<|startoftext|>"
	endOfText   = "<|endoftext|>"
)

// splitPieces cuts lower-cased text into the pieces the reference pattern
//
//	<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
//
// finds (Python regex, IGNORECASE), trying the alternatives in order at each
// position and skipping positions where none matches. It calls emit with
// each piece, a substring of s.
func splitPieces(s string, emit func(piece string)) {
	for i := 0; i < len(s); {
		rest := s[i:]
		if rest[0] == '<' {
			if strings.HasPrefix(rest, startOfText) {
				emit(rest[:len(startOfText)])
				i += len(startOfText)
				continue
			}
			if strings.HasPrefix(rest, endOfText) {
				emit(rest[:len(endOfText)])
				i += len(endOfText)
				continue
			}
		}
		if rest[0] == '\'' {
			if n := contraction(rest); n > 0 {
				emit(rest[:n])
				i += n
				continue
			}
		}
		r, size := utf8.DecodeRuneInString(rest)
		switch {
		case isLetter(r):
			n := runLength(rest, size, isLetter)
			emit(rest[:n])
			i += n
		case isNumber(r):
			emit(rest[:size])
			i += size
		case isOther(r):
			n := runLength(rest, size, isOther)
			emit(rest[:n])
			i += n
		default: // whitespace, or U+0345
			i += size
		}
	}
}

// runLength returns the byte length of the run of runes at the start of s
// that satisfy in, given that the first rune (size bytes) does.
func runLength(s string, size int, in func(rune) bool) int {
	n := size
	for n < len(s) {
		r, sz := utf8.DecodeRuneInString(s[n:])
		if !in(r) {
			break
		}
		n += sz
	}
	return n
}

// contraction returns the byte length of the contraction ('s, 't, 're, 've,
// 'm, 'll, 'd) at the start of s, which begins with an apostrophe, or 0.
// Under IGNORECASE 's also matches 'ſ (long s, which case-folds to s);
// upper-case ASCII cannot occur in lower-cased text.
func contraction(s string) int {
	if len(s) < 2 {
		return 0
	}
	switch s[1] {
	case 's', 't', 'm', 'd':
		return 2
	case 'r':
		if len(s) >= 3 && s[2] == 'e' {
			return 3
		}
	case 'v':
		if len(s) >= 3 && s[2] == 'e' {
			return 3
		}
	case 'l':
		if len(s) >= 3 && s[2] == 'l' {
			return 3
		}
	case 0xc5: // ſ is U+017F = C5 BF
		if len(s) >= 3 && s[2] == 0xbf {
			return 3
		}
	}
	return 0
}
