package ckpt

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"testing"
)

// repr renders an unpickled value in a Python-like notation.
func repr(v any) string {
	var b strings.Builder
	var walk func(v any, depth int)
	walk = func(v any, depth int) {
		if depth > 8 {
			b.WriteString("...")
			return
		}
		seq := func(open, close string, items []any) {
			b.WriteString(open)
			for i, it := range items {
				if i > 0 {
					b.WriteString(", ")
				}
				walk(it, depth+1)
			}
			b.WriteString(close)
		}
		switch v := v.(type) {
		case nil:
			b.WriteString("None")
		case bool:
			if v {
				b.WriteString("True")
			} else {
				b.WriteString("False")
			}
		case int64:
			b.WriteString(strconv.FormatInt(v, 10))
		case *big.Int:
			b.WriteString(v.String())
		case float64:
			b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
		case string:
			b.WriteString(strconv.Quote(v))
		case []byte:
			b.WriteString("b" + strconv.Quote(string(v)))
		case tuple:
			seq("(", ")", v)
		case *list:
			seq("[", "]", v.items)
		case *dict:
			b.WriteString("{")
			for i := range v.keys {
				if i > 0 {
					b.WriteString(", ")
				}
				walk(v.keys[i], depth+1)
				b.WriteString(": ")
				walk(v.vals[i], depth+1)
			}
			b.WriteString("}")
		case *global:
			b.WriteString(v.String())
		case *object:
			b.WriteString("<" + v.class.String())
			if len(v.args) > 0 {
				seq(" args=(", ")", v.args)
			}
			if v.state != nil {
				b.WriteString(" state=")
				walk(v.state, depth+1)
			}
			if len(v.items) > 0 {
				seq(" items=[", "]", v.items)
			}
			b.WriteString(">")
		case *storageRef:
			fmt.Fprintf(&b, "storage(%s %s %d)", v.key, v.dtype, v.numel)
		case *tensorRef:
			fmt.Fprintf(&b, "tensor(%s %s off=%d size=%v stride=%v)", v.storage.key, v.storage.dtype, v.offset, v.shape, v.stride)
		default:
			fmt.Fprintf(&b, "?%T", v)
		}
	}
	walk(v, 0)
	return b.String()
}

func testUnpickle(data []byte) (any, error) {
	u := &unpickler{persistentLoad: persistentStorage, call: callGlobal}
	return u.unpickle(data)
}

func TestUnpickle(t *testing.T) {
	const (
		p2 = "\x80\x02"
		p4 = "\x80\x04"
	)
	for _, tc := range []struct {
		name, pickle, want string
	}{
		{"BININT1", p2 + "K\x05.", "5"},
		{"BININT2", "M\x00\x01.", "256"},
		{"BININT negative", "J\xff\xff\xff\xff.", "-1"},
		{"LONG1 empty", "\x8a\x00.", "0"},
		{"LONG1 negative", "\x8a\x01\xff.", "-1"},
		{"LONG1 int64 min", "\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80.", "-9223372036854775808"},
		{"LONG1 big", "\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01.", "18446744073709551616"},
		{"LONG1 big negative", "\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\xff.", "-18446744073709551616"},
		{"LONG1 padded", "\x8a\x09\x05\x00\x00\x00\x00\x00\x00\x00\x00.", "5"},
		{"LONG4", "\x8b\x02\x00\x00\x00\x00\x01.", "256"},
		{"INT", "I42\n.", "42"},
		{"INT True", "I01\n.", "True"},
		{"INT False", "I00\n.", "False"},
		{"LONG", "L123L\n.", "123"},
		{"LONG big", "L-123456789012345678901234567890\n.", "-123456789012345678901234567890"},
		{"FLOAT", "F1.5\n.", "1.5"},
		{"BINFLOAT", "G\x3f\xf8\x00\x00\x00\x00\x00\x00.", "1.5"},
		{"bools and None", "(\x88\x89Nt.", "(True, False, None)"},
		{"BINUNICODE", "X\x02\x00\x00\x00hi.", `"hi"`},
		{"SHORT_BINUNICODE", p4 + "\x8c\x02hi.", `"hi"`},
		{"BINUNICODE8", "\x8d\x02\x00\x00\x00\x00\x00\x00\x00hi.", `"hi"`},
		{"UNICODE", "Vhi\n.", `"hi"`},
		{"STRING", "S'hi'\n.", `"hi"`},
		{"BINSTRING", "T\x02\x00\x00\x00hi.", `"hi"`},
		{"SHORT_BINSTRING", "U\x02hi.", `"hi"`},
		{"SHORT_BINBYTES", "C\x02hi.", `b"hi"`},
		{"BINBYTES", "B\x02\x00\x00\x00hi.", `b"hi"`},
		{"BINBYTES8", "\x8e\x02\x00\x00\x00\x00\x00\x00\x00hi.", `b"hi"`},
		{"BYTEARRAY8", "\x96\x02\x00\x00\x00\x00\x00\x00\x00hi\x98.", `b"hi"`},
		{"tuples", "()K\x01\x85K\x01K\x02\x86(K\x01K\x02K\x03K\x04tt.", "((), (1), (1, 2), (1, 2, 3, 4))"},
		{"lists", "]K\x01a](K\x01K\x02e(K\x03l\x87.", "([1], [1, 2], [3])"},
		{"dicts", "}X\x01\x00\x00\x00aK\x01s}(K\x01K\x02X\x01\x00\x00\x00bK\x03u(X\x01\x00\x00\x00cNd\x87.", `({"a": 1}, {1: 2, "b": 3}, {"c": None})`},
		{"dict overwrite", "}(X\x01\x00\x00\x00aK\x01X\x01\x00\x00\x00aK\x02u.", `{"a": 2}`},
		{"sets", "\x8f(K\x01K\x02\x90(K\x03\x91\x86.", "(<builtins.set items=[1, 2]>, <builtins.frozenset items=[3]>)"},
		{"memo", "K\x07q\x03K\x08r\xff\xff\xff\xff0h\x03j\xff\xff\xff\xff\x86.", "(7, 8)"},
		{"MEMOIZE", p4 + "K\x07\x94K\x08\x94h\x00h\x01\x86.", "(7, 8)"},
		{"PUT GET", "K\x07p12\n0g12\n.", "7"},
		{"DUP", "K\x072\x86.", "(7, 7)"},
		{"POP", "K\x07K\x080.", "7"},
		{"POP of a mark", "K\x07(0.", "7"},
		{"POP_MARK", "K\x07(K\x08K\x091.", "7"},
		{"FRAME", p4 + "\x95\x03\x00\x00\x00\x00\x00\x00\x00K\x01.", "1"},
		{"GLOBAL", "ccollections\nOrderedDict\n.", "collections.OrderedDict"},
		{"STACK_GLOBAL", p4 + "\x8c\x0bcollections\x8c\x0bOrderedDict\x93.", "collections.OrderedDict"},
		{"OrderedDict REDUCE", "ccollections\nOrderedDict\n)R.", "{}"},
		{"OrderedDict of pairs", "ccollections\nOrderedDict\n]((K\x01K\x02t(K\x03K\x04te\x85R.", "{1: 2, 3: 4}"},
		{"OrderedDict BUILD", "ccollections\nOrderedDict\n)R}b.", "{}"},
		{"placeholder REDUCE BUILD", "cpytorch_lightning.callbacks\nModelCheckpoint\n)R}X\x01\x00\x00\x00kK\x01sb.", `<pytorch_lightning.callbacks.ModelCheckpoint state={"k": 1}>`},
		{"placeholder APPENDS SETITEMS", "cfoo\nBar\n)R(K\x01eK\x02K\x03s.", "<foo.Bar items=[1, 2, 3]>"},
		{"NEWOBJ", "cfoo\nBar\nK\x01\x85\x81.", "<foo.Bar args=(1)>"},
		{"NEWOBJ_EX", "cfoo\nBar\nK\x01\x85}\x92.", "<foo.Bar args=(1)>"},
		{"INST", "(K\x01ifoo\nBar\n.", "<foo.Bar args=(1)>"},
		{"OBJ", "(cfoo\nBar\nK\x01o.", "<foo.Bar args=(1)>"},
		{"torch.Size", "ctorch\nSize\nK\x01K\x02\x86\x85R.", "(1, 2)"},
		{"builtins.set", "cbuiltins\nset\n](K\x01e\x85R.", "<builtins.set items=[1]>"},
		{"builtins.list", "c__builtin__\nlist\n)R.", "[]"},
		{"persistent storage", "(X\x07\x00\x00\x00storagectorch\nHalfStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x06tQ.", "storage(0 F16 6)"},
		{"rebuild tensor", "ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nK\x01X\x03\x00\x00\x00cpuK\x06tQK\x02K\x02K\x02\x86K\x02K\x01\x86\x89ccollections\nOrderedDict\n)RtR.",
			"tensor(1 F32 off=2 size=[2 2] stride=[2 1])"},
		{"rebuild from type", "ctorch._tensor\n_rebuild_from_type_v2\n(ctorch._utils\n_rebuild_tensor_v2\nctorch\nTensor\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nK\x01X\x03\x00\x00\x00cpuK\x01tQK\x00)))t}tR.",
			"tensor(1 F32 off=0 size=[] stride=[])"},
		{"numpy scalar", "cnumpy.core.multiarray\nscalar\ncnumpy\ndtype\nX\x02\x00\x00\x00f8\x89\x88\x87R(K\x03X\x01\x00\x00\x00<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tbc_codecs\nencode\nX\x02\x00\x00\x00\xc3\xbfX\x06\x00\x00\x00latin1\x86R\x86R.",
			`<numpy.core.multiarray.scalar args=(<numpy.dtype args=("f8", False, True) state=(3, "<", None, None, None, -1, -1, 0)>, <_codecs.encode args=("ÿ", "latin1")>)>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := testUnpickle([]byte(tc.pickle))
			if err != nil {
				t.Fatal(err)
			}
			if got := repr(v); got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestUnpickleErrors(t *testing.T) {
	for _, tc := range []struct {
		name, pickle, want string
	}{
		{"empty", "", "ends before STOP"},
		{"no STOP", "K\x01", "ends before STOP"},
		{"unknown opcode", "\xff.", "unknown opcode"},
		{"protocol 6", "\x80\x06K\x01.", "protocol 6"},
		{"STOP on empty stack", ".", "stack underflow"},
		{"STOP at a mark", "(.", "stack underflow"},
		{"REDUCE underflow", "R.", "stack underflow"},
		{"TUPLE2 underflow", "K\x01\x86.", "stack underflow"},
		{"TUPLE2 across a mark", "K\x01(K\x02\x86.", "stack underflow"},
		{"TUPLE without MARK", "K\x01t.", "no MARK"},
		{"REDUCE of an int", "K\x01)R.", "cannot call int"},
		{"REDUCE with a list", "cfoo\nbar\n]R.", "not a tuple"},
		{"BINGET undefined", "h\x05.", "memo index 5 not defined"},
		{"LONG_BINGET undefined", "j\xff\xff\xff\xff.", "memo index 4294967295 not defined"},
		{"BINPUT on empty stack", "q\x00.", "stack underflow"},
		{"bad PUT index", "K\x01pxx\n.", "bad memo index"},
		{"BINUNICODE huge", "X\xff\xff\xff\xffab.", "exceeds the"},
		{"BINUNICODE8 huge", "\x8d\xff\xff\xff\xff\xff\xff\xff\x7fab.", "exceeds the"},
		{"BINBYTES8 huge", "\x8e\x00\x00\x00\x00\x00\x00\x00\x80ab.", "exceeds the"},
		{"LONG4 huge", "\x8b\xff\xff\xff\x7f.", "exceeds the"},
		{"FRAME huge", "\x95\xff\xff\xff\xff\xff\xff\xff\xff.", "frame of"},
		{"short BININT", "J\x01\x02", "truncated"},
		{"line not ended", "cos", "not terminated"},
		{"bad INT", "Ixyz\n.", "bad integer"},
		{"long INT", "I" + strings.Repeat("9", 2000) + "\n.", "too long"},
		{"bad FLOAT", "Fxyz\n.", "bad float"},
		{"unquoted STRING", "Shi\n.", "not quoted"},
		{"NEXT_BUFFER", "\x97.", "out-of-band"},
		{"EXT1", "\x82\x01.", "extension"},
		{"APPEND to dict", "}K\x01a.", "APPEND to dict"},
		{"SETITEM on list", "]K\x01K\x02s.", "SETITEM on list"},
		{"odd SETITEMS", "}(K\x01u.", "odd number"},
		{"odd DICT", "(K\x01d.", "odd number"},
		{"ADDITEMS to list", "](K\x01\x90.", "ADDITEMS to list"},
		{"BUILD on int", "K\x01}b.", "BUILD on int"},
		{"STACK_GLOBAL of ints", "\x80\x04K\x01K\x02\x93.", "two strings"},
		{"OBJ without class", "(o.", "without a class"},
		{"persistent id not storage", "(X\x03\x00\x00\x00fooctorch\nFloatStorage\nK\x00K\x00K\x00tQ.", "want 'storage'"},
		{"persistent negative numel", "(X\x07\x00\x00\x00storagectorch\nFloatStorage\nK\x00K\x00J\xff\xff\xff\xfftQ.", "bad element count"},
		{"PERSID text", "P0\n.", "not a storage tuple"},
		{"rebuild tensor of int", "ctorch._utils\n_rebuild_tensor_v2\n(K\x00K\x00)))tR.", "storage is int"},
		{"rebuild parameter of int", "ctorch._utils\n_rebuild_parameter\n(K\x00\x88tR.", "not a tensor"},
		{"OrderedDict of ints", "ccollections\nOrderedDict\n]K\x01a\x85R.", "not a pair"},
		{"too many MARKs", strings.Repeat("(", maxMarks+1) + ".", "nested MARKs"},
		{"os.system", "cos\nsystem\nX\x02\x00\x00\x00ls\x85R.", "forbidden global os.system"},
		{"os.path", "cos.path\njoin\n.", "forbidden global"},
		{"subprocess", "\x80\x04\x8c\nsubprocess\x8c\x05Popen\x93.", "forbidden global subprocess.Popen"},
		{"builtins.getattr", "c__builtin__\ngetattr\n.", "forbidden global"},
		{"builtins.open", "cbuiltins\nopen\n.", "forbidden global"},
		{"INST os.system", "(X\x02\x00\x00\x00lsios\nsystem\n.", "forbidden global"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := testUnpickle([]byte(tc.pickle))
			if err == nil {
				t.Fatalf("got %s, want error containing %q", repr(v), tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to contain %q", err, tc.want)
			}
			if strings.Contains(tc.want, "forbidden") && !errors.Is(err, ErrForbidden) {
				t.Fatalf("error %v is not ErrForbidden", err)
			}
		})
	}
}

// Nesting is never recursive in the unpickler: a list nested a quarter
// of a million deep unpickles without growing the Go stack.
func TestUnpickleDeep(t *testing.T) {
	const depth = 1 << 18
	var b bytes.Buffer
	b.WriteString("\x80\x02")
	b.WriteString(strings.Repeat("]", depth))
	b.WriteString(strings.Repeat("a", depth-1))
	b.WriteString(".")
	v, err := testUnpickle(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	l, ok := v.(*list)
	for n := 1; n < 100 && ok; n++ {
		if len(l.items) != 1 {
			t.Fatalf("level %d has %d items", n, len(l.items))
		}
		l, ok = l.items[0].(*list)
	}
	if !ok {
		t.Fatal("not nested lists")
	}
}

// The push budget bounds memory whatever the input: DUP in a loop would
// otherwise grow the stack by one value per input byte without limit.
func TestUnpicklePushBudget(t *testing.T) {
	data := append([]byte("K\x01"), bytes.Repeat([]byte("2"), 1000)...)
	u := &unpickler{maxPushes: 1000}
	_, err := u.unpickle(append(data, '.'))
	if err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("err = %v, want the push limit", err)
	}
}

func unpickleSeeds(t interface{ Helper() }) [][]byte {
	root, _, _ := sdLike()
	seeds := [][]byte{
		encodePickle(2, root),
		encodePickle(4, root),
		[]byte("\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R."),
		[]byte("\x80\x04\x95\x03\x00\x00\x00\x00\x00\x00\x00K\x01."),
		[]byte("(K\x01ifoo\nBar\n."),
		[]byte("L123L\nF1.5\nS'hi'\n\x86\x86."),
		[]byte("\x8f(K\x01K\x02\x90(K\x03\x91\x86."),
		[]byte("\x80\x02}q\x00X\x01\x00\x00\x00xh\x00s."),
	}
	return seeds
}

// FuzzUnpickle checks that the unpickler never panics, that the values it
// builds are bounded by the input (each opcode pushes at most one value),
// and that flattening whatever it builds never panics either.
func FuzzUnpickle(f *testing.F) {
	for _, s := range unpickleSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		u := &unpickler{persistentLoad: persistentStorage, call: callGlobal}
		v, err := u.unpickle(data)
		if u.pushes > len(data) {
			t.Fatalf("%d pushes for %d bytes", u.pushes, len(data))
		}
		if err != nil {
			return
		}
		refs, err := flatten(v)
		if err != nil {
			return
		}
		for _, r := range refs {
			validate(r, nil, "archive", 0)
		}
	})
}

// FuzzParse checks whole checkpoints: Parse never panics, and when it
// succeeds every tensor's Data has the size its Info gives.
func FuzzParse(f *testing.F) {
	root, storages, _ := sdLike()
	f.Add(archive{pickle: encodePickle(2, root), storages: storages}.bytes(f))
	f.Add(archive{pickle: encodePickle(4, root), storages: storages, deflate: true, byteorder: "big"}.bytes(f))
	f.Add([]byte("PK\x03\x04"))
	f.Add(legacyMagic)
	f.Fuzz(func(t *testing.T, data []byte) {
		cf, err := Parse(data)
		if err != nil {
			return
		}
		for _, name := range cf.Names() {
			dt, shape, ok := cf.Info(name)
			if !ok {
				t.Fatalf("Info(%s) not ok", name)
			}
			b, err := cf.Data(name)
			if err != nil {
				continue
			}
			n := dt.Size()
			for _, d := range shape {
				n *= d
			}
			if len(b) != n {
				t.Fatalf("Data(%s) has %d bytes, want %d", name, len(b), n)
			}
		}
	})
}
