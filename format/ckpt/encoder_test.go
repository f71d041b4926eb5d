package ckpt

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"maps"
	"math"
	"slices"
	"testing"

	"github.com/pigment-sd/pigment/tensor"
)

// This file holds a small pickle encoder that writes what torch.save writes
// (protocol 2, as torch.save's default, or protocol 4 with frames), and a
// zip writer for the archive around it, so tests need no Python.

// Values the test encoder understands, besides nil, bool, int, int64,
// float64, string, []byte and []any (a list).
type (
	pTuple []any
	pItem  struct {
		k any // string, int or a pGlobal used as a key
		v any
	}
	pDict    []pItem // a plain dict
	pOrdered []pItem // a collections.OrderedDict, as state_dict() returns
	pGlobal  struct{ mod, name string }
	// pCall pickles mod.name(*args) with REDUCE, then BUILD with state when
	// state is not nil: how Python pickles most class instances.
	pCall struct {
		mod, name string
		args      pTuple
		state     any
	}
	// pTensor pickles torch._utils._rebuild_tensor_v2 over a storage.
	pTensor struct {
		storage string // storage class, e.g. "FloatStorage"
		key     string
		numel   int64
		offset  int64
		shape   []int64
		stride  []int64
		param   bool // wrap in torch._utils._rebuild_parameter
	}
	pRaw []byte // opcodes written verbatim
)

type pickler struct {
	buf     bytes.Buffer
	proto   int
	memo    int
	globals map[pGlobal]int
}

func encodePickle(proto int, v any) []byte {
	p := &pickler{proto: proto, globals: map[pGlobal]int{}}
	p.save(v)
	p.buf.WriteByte(opStop)
	body := p.buf.Bytes()
	out := []byte{opProto, byte(proto)}
	if proto >= 4 {
		// One frame around everything, as Python's framer does for small pickles.
		out = append(out, opFrame)
		out = binary.LittleEndian.AppendUint64(out, uint64(len(body)))
	}
	return append(out, body...)
}

func (p *pickler) put() int {
	i := p.memo
	p.memo++
	if p.proto >= 4 {
		p.buf.WriteByte(opMemoize)
	} else if i < 256 {
		p.buf.Write([]byte{opBinPut, byte(i)})
	} else {
		p.buf.WriteByte(opLongBinPut)
		p.buf.Write(binary.LittleEndian.AppendUint32(nil, uint32(i)))
	}
	return i
}

func (p *pickler) get(i int) {
	if i < 256 {
		p.buf.Write([]byte{opBinGet, byte(i)})
		return
	}
	p.buf.WriteByte(opLongBinGet)
	p.buf.Write(binary.LittleEndian.AppendUint32(nil, uint32(i)))
}

func (p *pickler) global(mod, name string) {
	g := pGlobal{mod, name}
	if i, ok := p.globals[g]; ok {
		p.get(i)
		return
	}
	if p.proto >= 4 {
		p.str(mod)
		p.str(name)
		p.buf.WriteByte(opStackGlobal)
	} else {
		p.buf.WriteString("c" + mod + "\n" + name + "\n")
	}
	p.globals[g] = p.put()
}

func (p *pickler) str(s string) {
	if p.proto >= 4 && len(s) < 256 {
		p.buf.Write([]byte{opShortBinUni, byte(len(s))})
	} else {
		p.buf.WriteByte(opBinUnicode)
		p.buf.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(s))))
	}
	p.buf.WriteString(s)
	p.put()
}

func (p *pickler) int(n int64) {
	switch {
	case n >= 0 && n < 256:
		p.buf.Write([]byte{opBinInt1, byte(n)})
	case n >= 0 && n < 65536:
		p.buf.Write([]byte{opBinInt2, byte(n), byte(n >> 8)})
	case n >= math.MinInt32 && n <= math.MaxInt32:
		p.buf.WriteByte(opBinInt)
		p.buf.Write(binary.LittleEndian.AppendUint32(nil, uint32(n)))
	default:
		p.buf.Write([]byte{opLong1, 8})
		p.buf.Write(binary.LittleEndian.AppendUint64(nil, uint64(n)))
	}
}

func (p *pickler) tuple(items []any) {
	switch len(items) {
	case 0:
		p.buf.WriteByte(opEmptyTuple)
		return
	case 1, 2, 3:
		for _, it := range items {
			p.save(it)
		}
		p.buf.WriteByte(opTuple1 + byte(len(items)-1))
	default:
		p.buf.WriteByte(opMark)
		for _, it := range items {
			p.save(it)
		}
		p.buf.WriteByte(opTuple)
	}
	p.put()
}

func (p *pickler) items(items []pItem) {
	if len(items) == 0 {
		return
	}
	p.buf.WriteByte(opMark)
	for _, it := range items {
		p.save(it.k)
		p.save(it.v)
	}
	p.buf.WriteByte(opSetItems)
}

func (p *pickler) save(v any) {
	switch v := v.(type) {
	case nil:
		p.buf.WriteByte(opNone)
	case bool:
		if v {
			p.buf.WriteByte(opNewTrue)
		} else {
			p.buf.WriteByte(opNewFalse)
		}
	case int:
		p.int(int64(v))
	case int64:
		p.int(v)
	case float64:
		p.buf.WriteByte(opBinFloat)
		p.buf.Write(binary.BigEndian.AppendUint64(nil, math.Float64bits(v)))
	case string:
		p.str(v)
	case []byte:
		if p.proto >= 3 {
			p.buf.WriteByte(opBinBytes)
			p.buf.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(v))))
			p.buf.Write(v)
			p.put()
			return
		}
		// Protocol 2 pickles bytes as _codecs.encode(str, 'latin1').
		runes := make([]rune, len(v))
		for i, c := range v {
			runes[i] = rune(c)
		}
		p.save(pCall{mod: "_codecs", name: "encode", args: pTuple{string(runes), "latin1"}})
	case pRaw:
		p.buf.Write(v)
	case pTuple:
		p.tuple(v)
	case []any:
		p.buf.WriteByte(opEmptyList)
		p.put()
		if len(v) > 0 {
			p.buf.WriteByte(opMark)
			for _, it := range v {
				p.save(it)
			}
			p.buf.WriteByte(opAppends)
		}
	case pDict:
		p.buf.WriteByte(opEmptyDict)
		p.put()
		p.items(v)
	case pOrdered:
		p.global("collections", "OrderedDict")
		p.buf.WriteByte(opEmptyTuple)
		p.buf.WriteByte(opReduce)
		p.put()
		p.items(v)
		// torch's state_dict() carries a _metadata attribute.
		p.save(pDict{{"_metadata", pCall{mod: "collections", name: "OrderedDict"}}})
		p.buf.WriteByte(opBuild)
	case pGlobal:
		p.global(v.mod, v.name)
	case pCall:
		p.global(v.mod, v.name)
		p.tuple(v.args)
		p.buf.WriteByte(opReduce)
		p.put()
		if v.state != nil {
			p.save(v.state)
			p.buf.WriteByte(opBuild)
		}
	case pTensor:
		if v.param {
			p.global("torch._utils", "_rebuild_parameter")
			p.buf.WriteByte(opMark)
			v.param = false
			p.save(v)
			p.save(true)
			p.save(pCall{mod: "collections", name: "OrderedDict"})
			p.buf.WriteByte(opTuple)
			p.put()
			p.buf.WriteByte(opReduce)
			p.put()
			return
		}
		p.global("torch._utils", "_rebuild_tensor_v2")
		p.buf.WriteByte(opMark)
		// The persistent id, as torch.save's persistent_id returns it.
		p.tuple([]any{"storage", pGlobal{"torch", v.storage}, v.key, "cpu", v.numel})
		p.buf.WriteByte(opBinPersID)
		p.int(v.offset)
		p.tuple(ints(v.shape))
		p.tuple(ints(v.stride))
		p.save(false)
		p.save(pCall{mod: "collections", name: "OrderedDict"})
		p.buf.WriteByte(opTuple)
		p.put()
		p.buf.WriteByte(opReduce)
		p.put()
	default:
		panic("encoder: unsupported value")
	}
}

func ints(v []int64) []any {
	out := make([]any, len(v))
	for i, x := range v {
		out[i] = x
	}
	return out
}

// archive describes a checkpoint zip to build.
type archive struct {
	prefix    string            // "archive" when empty
	pickle    []byte            // data.pkl
	storages  map[string][]byte // key → bytes
	byteorder string            // omitted when empty
	deflate   bool
}

func (a archive) bytes(t testing.TB) []byte {
	t.Helper()
	prefix := a.prefix
	if prefix == "" {
		prefix = "archive"
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	add := func(name string, data []byte) {
		method := zip.Store
		if a.deflate {
			method = zip.Deflate
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: prefix + "/" + name, Method: method})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	add("data.pkl", a.pickle)
	if a.byteorder != "" {
		add("byteorder", []byte(a.byteorder))
	}
	for _, k := range sortedKeys(a.storages) {
		add("data/"+k, a.storages[k])
	}
	add("version", []byte("3\n"))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sortedKeys(m map[string][]byte) []string { return slices.Sorted(maps.Keys(m)) }

// Little-endian element encoders.

func f32Bytes(v ...float32) []byte {
	b := make([]byte, 0, 4*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

func f16Bytes(v ...float32) []byte {
	b := make([]byte, 0, 2*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint16(b, tensor.Float32ToFloat16(x))
	}
	return b
}

func bf16Bytes(v ...float32) []byte {
	b := make([]byte, 0, 2*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint16(b, tensor.Float32ToBFloat16(x))
	}
	return b
}

func i64Bytes(v ...int64) []byte {
	b := make([]byte, 0, 8*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint64(b, uint64(x))
	}
	return b
}

func i32Bytes(v ...int32) []byte {
	b := make([]byte, 0, 4*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, uint32(x))
	}
	return b
}

func iota32(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(i)
	}
	return v
}
