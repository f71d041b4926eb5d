package clip

import "math"

// encodePiece returns the ids of one piece of lower-cased text, from the
// cache when it has been seen before. The returned slice must not be
// modified.
func (t *Tokenizer) encodePiece(piece string) []int {
	switch piece {
	case startOfText, endOfText:
		if id, ok := t.vocab[piece]; ok {
			return []int{id}
		}
	}
	t.mu.Lock()
	ids, ok := t.cache[piece]
	t.mu.Unlock()
	if ok {
		return ids
	}

	word := make([]int32, len(piece))
	for i := 0; i < len(piece)-1; i++ {
		word[i] = t.byteSym[piece[i]]
	}
	word[len(word)-1] = t.byteEndSym[piece[len(piece)-1]]
	word = t.bpe(word)
	ids = make([]int, len(word))
	for i, s := range word {
		id := t.symVocab[s]
		if id < 0 {
			id = t.unk
		}
		ids[i] = id
	}

	t.mu.Lock()
	if len(t.cache) >= maxCacheEntries {
		clear(t.cache)
	}
	t.cache[piece] = ids
	t.mu.Unlock()
	return ids
}

// bpe applies the merge rules to a word of symbols, in place: while some
// adjacent pair has a rule, every occurrence of the pair with the lowest
// rank is merged, left to right without overlap.
func (t *Tokenizer) bpe(word []int32) []int32 {
	for len(word) > 1 {
		best, bestRank := -1, int32(math.MaxInt32)
		var merged int32
		for i := 0; i+1 < len(word); i++ {
			if m, ok := t.merges[pairKey(word[i], word[i+1])]; ok && m.rank < bestRank {
				best, bestRank, merged = i, m.rank, m.merged
			}
		}
		if best < 0 {
			break
		}
		// best is the first occurrence of the pair: nothing before it merges.
		a, b := word[best], word[best+1]
		n := best
		for i := best; i < len(word); {
			if i+1 < len(word) && word[i] == a && word[i+1] == b {
				word[n] = merged
				i += 2
			} else {
				word[n] = word[i]
				i++
			}
			n++
		}
		word = word[:n]
	}
	return word
}
