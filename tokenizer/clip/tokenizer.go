// Package clip implements the byte-level BPE tokenizer of OpenAI's CLIP, as
// Stable Diffusion's text encoders use it.
//
// The text is cleaned (runs of whitespace collapsed to one space, ends
// stripped), lower-cased with Python's str.lower() rules, cut into pieces
// (words, single digits, runs of other symbols, contractions such as 's),
// and each piece's UTF-8 bytes are merged by the BPE rules of merges.txt and
// looked up in vocab.json. The result equals OpenAI's simple_tokenizer.py
// and Hugging Face's CLIPTokenizer (ftfy's fix_text and HTML unescaping are
// not applied; they leave ordinary prompts unchanged).
package clip

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"
	"unicode/utf8"
)

// DefaultMaxLength is the context length of the CLIP text encoders used by
// Stable Diffusion.
const DefaultMaxLength = 77

// endOfWord marks the last symbol of a piece.
const endOfWord = "</w>"

// maxCacheEntries bounds the per-tokenizer cache of encoded pieces.
const maxCacheEntries = 1 << 14

// Tokenizer is a loaded CLIP tokenizer. It is safe for concurrent use.
type Tokenizer struct {
	vocab   map[string]int
	decoder []string // id -> token; "" for ids no token has

	// Symbols are interned: symbol index -> vocabulary id (or -1).
	symVocab   []int
	byteSym    [256]int32      // byte -> symbol index of its byte-symbol
	byteEndSym [256]int32      // byte -> symbol index of byte-symbol + "</w>"
	runeByte   [256 + 68]int16 // byte-symbol rune -> byte, or -1
	merges     map[uint64]merge

	bos, eos, pad, unk int
	maxLength          int

	mu    sync.Mutex
	cache map[string][]int
}

// merge is one BPE rule: the rank of the pair and the symbol it becomes.
type merge struct {
	rank   int32
	merged int32
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// Load reads a tokenizer folder as Stable Diffusion models ship it:
// vocab.json and merges.txt, and, if present, special_tokens_map.json and
// tokenizer_config.json, which name the special tokens (the pad token is
// "<|endoftext|>" for SD 1.x and "!" for SD 2.x) and the maximum length.
func Load(dir string) (*Tokenizer, error) {
	t, err := LoadFS(os.DirFS(dir), ".")
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, dir)
	}
	return t, nil
}

// LoadFS is Load reading the folder dir of fsys.
func LoadFS(fsys fs.FS, dir string) (*Tokenizer, error) {
	vocabPath := path.Join(dir, "vocab.json")
	vocabData, err := fs.ReadFile(fsys, vocabPath)
	if err != nil {
		return nil, fmt.Errorf("clip tokenizer: %w", err)
	}
	mergesPath := path.Join(dir, "merges.txt")
	mergesData, err := fs.ReadFile(fsys, mergesPath)
	if err != nil {
		return nil, fmt.Errorf("clip tokenizer: %w", err)
	}
	var configs []namedConfig
	// special_tokens_map.json takes precedence over tokenizer_config.json,
	// as in Hugging Face transformers.
	for _, name := range []string{"tokenizer_config.json", "special_tokens_map.json"} {
		p := path.Join(dir, name)
		data, err := fs.ReadFile(fsys, p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("clip tokenizer: %w", err)
		}
		configs = append(configs, namedConfig{p, data})
	}
	return fromData(vocabData, mergesData, configs)
}

type namedConfig struct {
	name string
	data []byte
}

// fromData builds a tokenizer from the contents of vocab.json, merges.txt
// and the special-token configuration files, later files taking
// precedence.
func fromData(vocab, merges []byte, configs []namedConfig) (*Tokenizer, error) {
	sp := specials{bos: startOfText, eos: endOfText, pad: endOfText, unk: endOfText, maxLength: DefaultMaxLength}
	for _, c := range configs {
		if err := sp.parse(c.data); err != nil {
			return nil, fmt.Errorf("clip tokenizer: %s: %w", c.name, err)
		}
	}
	t, err := build(vocab, merges, sp)
	if err != nil {
		return nil, fmt.Errorf("clip tokenizer: %w", err)
	}
	return t, nil
}

// specials holds the special tokens and the maximum length named by the
// configuration files.
type specials struct {
	bos, eos, pad, unk string
	maxLength          int
}

// parse reads the special-token entries of special_tokens_map.json or
// tokenizer_config.json. A token is either a string or an object with a
// "content" string.
func (sp *specials) parse(data []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	for key, dst := range map[string]*string{"bos_token": &sp.bos, "eos_token": &sp.eos, "pad_token": &sp.pad, "unk_token": &sp.unk} {
		raw, ok := m[key]
		if !ok || string(raw) == "null" {
			continue
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			var obj struct {
				Content *string `json:"content"`
			}
			if err := json.Unmarshal(raw, &obj); err != nil || obj.Content == nil {
				return fmt.Errorf("%s: want a string or an object with \"content\", got %s", key, raw)
			}
			s = *obj.Content
		}
		*dst = s
	}
	if raw, ok := m["model_max_length"]; ok {
		var n float64 // transformers writes huge values such as 1e30 for "no limit"
		if err := json.Unmarshal(raw, &n); err != nil {
			return fmt.Errorf("model_max_length: %w", err)
		}
		if n >= 2 && n <= 1<<20 {
			sp.maxLength = int(n)
		}
	}
	return nil
}

// build makes a tokenizer from the contents of vocab.json and merges.txt.
func build(vocabData, mergesData []byte, sp specials) (*Tokenizer, error) {
	var vocab map[string]int
	if err := json.Unmarshal(vocabData, &vocab); err != nil {
		return nil, fmt.Errorf("vocab.json: %w", err)
	}
	if len(vocab) == 0 {
		return nil, errors.New("vocab.json: empty vocabulary")
	}
	decoder := make([]string, len(vocab))
	for tok, id := range vocab {
		if id < 0 || id >= len(vocab) {
			return nil, fmt.Errorf("vocab.json: token %q has id %d outside [0, %d)", tok, id, len(vocab))
		}
		if decoder[id] != "" {
			return nil, fmt.Errorf("vocab.json: id %d is given to both %q and %q", id, decoder[id], tok)
		}
		decoder[id] = tok
	}

	t := &Tokenizer{
		vocab:     vocab,
		decoder:   decoder,
		merges:    make(map[uint64]merge, 50000),
		maxLength: sp.maxLength,
		cache:     make(map[string][]int),
	}
	symbols := make(map[string]int32, 50000)
	intern := func(s string) int32 {
		if i, ok := symbols[s]; ok {
			return i
		}
		i := int32(len(t.symVocab))
		symbols[s] = i
		id, ok := vocab[s]
		if !ok {
			id = -1
		}
		t.symVocab = append(t.symVocab, id)
		return i
	}
	for i := range t.runeByte {
		t.runeByte[i] = -1
	}
	for b, r := range byteRunes() {
		t.runeByte[r] = int16(b)
		t.byteSym[b] = intern(string(r))
		t.byteEndSym[b] = intern(string(r) + endOfWord)
	}

	// merges.txt: a "#version" header, then one "a b" rule per line in
	// rank order. A rule listed twice keeps its later rank.
	sc := bufio.NewScanner(bytes.NewReader(mergesData))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	line, rank := 0, int32(0)
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if line == 1 && strings.HasPrefix(text, "#") {
			continue
		}
		if strings.TrimSpace(text) == "" {
			continue
		}
		fields := strings.Fields(text)
		if len(fields) != 2 {
			return nil, fmt.Errorf("merges.txt line %d: want two symbols, got %q", line, text)
		}
		a, b := intern(fields[0]), intern(fields[1])
		t.merges[pairKey(a, b)] = merge{rank: rank, merged: intern(fields[0] + fields[1])}
		rank++
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("merges.txt: %w", err)
	}
	if len(t.merges) == 0 {
		return nil, errors.New("merges.txt: no merge rules")
	}

	for _, s := range []struct {
		name string
		tok  string
		dst  *int
	}{{"bos", sp.bos, &t.bos}, {"eos", sp.eos, &t.eos}, {"pad", sp.pad, &t.pad}, {"unk", sp.unk, &t.unk}} {
		id, ok := vocab[s.tok]
		if !ok {
			return nil, fmt.Errorf("%s token %q is not in vocab.json", s.name, s.tok)
		}
		*s.dst = id
	}
	return t, nil
}

// byteRunes is GPT-2's bytes_to_unicode: a printable rune for every byte.
// The printable bytes '!'..'~', '¡'..'¬' and '®'..'ÿ' stand for themselves;
// the others map to U+0100 onwards in byte order.
func byteRunes() [256]rune {
	var m [256]rune
	n := rune(0)
	for b := 0; b < 256; b++ {
		if ('!' <= b && b <= '~') || (0xa1 <= b && b <= 0xac) || (0xae <= b && b <= 0xff) {
			m[b] = rune(b)
		} else {
			m[b] = 256 + n
			n++
		}
	}
	return m
}

// VocabSize is the number of token ids (49408 for CLIP).
func (t *Tokenizer) VocabSize() int { return len(t.decoder) }

// BOS is the id of the start-of-text token.
func (t *Tokenizer) BOS() int { return t.bos }

// EOS is the id of the end-of-text token.
func (t *Tokenizer) EOS() int { return t.eos }

// PadID is the id that fills a padded sequence after the end-of-text token.
func (t *Tokenizer) PadID() int { return t.pad }

// MaxLength is the model's maximum sequence length (model_max_length of
// tokenizer_config.json, 77 if absent).
func (t *Tokenizer) MaxLength() int { return t.maxLength }

// Encode returns the token ids of text, without start or end token and
// without truncation. The literal strings "<|startoftext|>" and
// "<|endoftext|>" in the text become their special ids, as in the
// reference tokenizers.
func (t *Tokenizer) Encode(text string) []int {
	var ids []int
	splitPieces(pyLower(cleanText(text)), func(piece string) {
		ids = append(ids, t.encodePiece(piece)...)
	})
	return ids
}

// EncodePadded returns exactly maxLen ids, as Stable Diffusion feeds the
// text encoder: the start token, the text's ids truncated to maxLen-2, the
// end token (always kept), then the pad id. truncated reports whether text
// ids were cut off. A maxLen below 2 is taken as 2.
func (t *Tokenizer) EncodePadded(text string, maxLen int) (ids []int, truncated bool) {
	maxLen = max(maxLen, 2)
	body := t.Encode(text)
	if len(body) > maxLen-2 {
		body, truncated = body[:maxLen-2], true
	}
	ids = make([]int, 0, maxLen)
	ids = append(ids, t.bos)
	ids = append(ids, body...)
	ids = append(ids, t.eos)
	for len(ids) < maxLen {
		ids = append(ids, t.pad)
	}
	return ids, truncated
}

// Decode turns ids back into text: tokens are joined, their bytes decoded
// (invalid UTF-8 becomes U+FFFD) and each end-of-word mark becomes a space.
// Special tokens appear literally; unknown ids are skipped.
func (t *Tokenizer) Decode(ids []int) string {
	var raw []byte
	for _, id := range ids {
		if id < 0 || id >= len(t.decoder) {
			continue
		}
		for _, r := range t.decoder[id] {
			if r >= 0 && int(r) < len(t.runeByte) && t.runeByte[r] >= 0 {
				raw = append(raw, byte(t.runeByte[r]))
			} else {
				raw = utf8.AppendRune(raw, r)
			}
		}
	}
	return strings.ReplaceAll(strings.ToValidUTF8(string(raw), "\uFFFD"), endOfWord, " ")
}
