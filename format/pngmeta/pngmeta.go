// Package pngmeta writes and reads PNG text chunks (tEXt, and iTXt for
// non-Latin-1 text), the way AUTOMATIC1111's web UI stores generation
// parameters under the key "parameters", so existing tools read them.
package pngmeta

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"io"
	"unicode/utf8"
)

var pngSignature = []byte("\x89PNG\r\n\x1a\n")

// Text is one key/value text chunk.
type Text struct {
	Key, Value string
}

// Encode writes img as PNG with the text chunks placed right after IHDR.
// Keys must be 1-79 Latin-1 characters; values that are not Latin-1 are
// written as uncompressed iTXt chunks (UTF-8).
func Encode(w io.Writer, img image.Image, texts []Text) error {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return fmt.Errorf("png: %w", err)
	}
	b := buf.Bytes()
	// signature (8) + IHDR chunk (4 len + 4 type + 13 data + 4 crc)
	const ihdrEnd = 8 + 25
	if len(b) < ihdrEnd || !bytes.Equal(b[:8], pngSignature) || string(b[12:16]) != "IHDR" {
		return errors.New("png: unexpected encoder output")
	}
	if _, err := w.Write(b[:ihdrEnd]); err != nil {
		return err
	}
	for _, t := range texts {
		chunk, err := textChunk(t)
		if err != nil {
			return err
		}
		if _, err := w.Write(chunk); err != nil {
			return err
		}
	}
	_, err := w.Write(b[ihdrEnd:])
	return err
}

func textChunk(t Text) ([]byte, error) {
	if len(t.Key) == 0 || len(t.Key) > 79 {
		return nil, fmt.Errorf("png text key %q: must be 1-79 characters", t.Key)
	}
	for _, r := range t.Key {
		if r < 32 || r > 126 {
			return nil, fmt.Errorf("png text key %q: only printable ASCII is allowed", t.Key)
		}
	}
	var typ string
	var data []byte
	if latin1, ok := toLatin1(t.Value); ok {
		typ = "tEXt"
		data = append(append([]byte(t.Key), 0), latin1...)
	} else {
		typ = "iTXt"
		// keyword, 0, compression flag 0, method 0, language tag "", 0, translated keyword "", 0, text
		data = append([]byte(t.Key), 0, 0, 0, 0, 0)
		data = append(data, t.Value...)
	}
	out := make([]byte, 8+len(data)+4)
	binary.BigEndian.PutUint32(out, uint32(len(data)))
	copy(out[4:], typ)
	copy(out[8:], data)
	binary.BigEndian.PutUint32(out[8+len(data):], crc32.ChecksumIEEE(out[4:8+len(data)]))
	return out, nil
}

func toLatin1(s string) ([]byte, bool) {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 255 || r == 0 {
			return nil, false
		}
		out = append(out, byte(r))
	}
	return out, true
}

// ReadText returns the tEXt and uncompressed iTXt chunks of a PNG stream in
// file order. It does not decode the image. Compressed chunks (zTXt,
// compressed iTXt) are skipped.
func ReadText(r io.Reader) ([]Text, error) {
	var sig [8]byte
	if _, err := io.ReadFull(r, sig[:]); err != nil {
		return nil, fmt.Errorf("png: %w", err)
	}
	if !bytes.Equal(sig[:], pngSignature) {
		return nil, errors.New("png: not a PNG file")
	}
	var texts []Text
	const maxChunk = 64 << 20
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return texts, errors.New("png: missing IEND chunk")
			}
			return texts, fmt.Errorf("png: %w", err)
		}
		n := binary.BigEndian.Uint32(hdr[:4])
		typ := string(hdr[4:8])
		if n > maxChunk {
			return texts, fmt.Errorf("png: %s chunk of %d bytes is too large", typ, n)
		}
		if typ != "tEXt" && typ != "iTXt" {
			if _, err := io.CopyN(io.Discard, r, int64(n)+4); err != nil {
				return texts, fmt.Errorf("png: %s chunk: %w", typ, err)
			}
			if typ == "IEND" {
				return texts, nil
			}
			continue
		}
		data := make([]byte, n+4)
		if _, err := io.ReadFull(r, data); err != nil {
			return texts, fmt.Errorf("png: %s chunk: %w", typ, err)
		}
		crc := crc32.NewIEEE()
		crc.Write(hdr[4:8])
		crc.Write(data[:n])
		if crc.Sum32() != binary.BigEndian.Uint32(data[n:]) {
			return texts, fmt.Errorf("png: %s chunk: bad CRC", typ)
		}
		if t, ok := parseText(typ, data[:n]); ok {
			texts = append(texts, t)
		}
	}
}

func parseText(typ string, d []byte) (Text, bool) {
	i := bytes.IndexByte(d, 0)
	if i <= 0 {
		return Text{}, false
	}
	key, rest := string(d[:i]), d[i+1:]
	if typ == "tEXt" {
		r := make([]rune, len(rest))
		for k, c := range rest {
			r[k] = rune(c)
		}
		return Text{key, string(r)}, true
	}
	// iTXt: compression flag, method, language\0, translated keyword\0, text
	if len(rest) < 2 || rest[0] != 0 {
		return Text{}, false
	}
	rest = rest[2:]
	for k := 0; k < 2; k++ {
		j := bytes.IndexByte(rest, 0)
		if j < 0 {
			return Text{}, false
		}
		rest = rest[j+1:]
	}
	if !utf8.Valid(rest) {
		return Text{}, false
	}
	return Text{key, string(rest)}, true
}
