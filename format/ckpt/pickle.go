package ckpt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Limits of the unpickler. Every value it builds costs at least one push,
// so the push budget bounds memory independently of the input's size.
const (
	maxPushes     = 1 << 24 // values pushed onto the stack, in all
	maxMemo       = 1 << 22 // distinct memo entries
	maxMarks      = 1 << 16 // open MARKs
	maxTextNumber = 1 << 10 // length of a decimal number in a text opcode
)

// Values built by the unpickler. Python ints are int64 (or *big.Int when they
// do not fit), floats float64, str string, bytes []byte, None nil.
type (
	// tuple is a Python tuple.
	tuple []any
	// list is a Python list.
	list struct{ items []any }
	// dict is a Python dict or OrderedDict, in insertion order. String keys
	// are indexed; other keys are kept but never looked up.
	dict struct {
		keys, vals []any
		index      map[string]int
		state      any // from BUILD (an OrderedDict's __dict__, e.g. _metadata)
	}
	// global is a reference to a module-level class or function, which the
	// unpickler never resolves to code.
	global struct{ module, name string }
	// object is an inert placeholder for an instance of a class that is not
	// needed to rebuild tensors: it records what the pickle would have passed
	// to the constructor and to __setstate__, and calls nothing.
	object struct {
		class *global
		args  []any
		state any
		items []any // from APPEND(S), SETITEM(S), ADDITEMS
	}
)

func newDict() *dict { return &dict{index: map[string]int{}} }

func (d *dict) set(k, v any) {
	if s, ok := k.(string); ok {
		if i, ok := d.index[s]; ok {
			d.vals[i] = v
			return
		}
		d.index[s] = len(d.keys)
	}
	d.keys = append(d.keys, k)
	d.vals = append(d.vals, v)
}

func (d *dict) get(k string) (any, bool) {
	i, ok := d.index[k]
	if !ok {
		return nil, false
	}
	return d.vals[i], true
}

func (g *global) String() string { return g.module + "." + g.name }

// errStop ends the opcode loop.
var errStop = errors.New("STOP")

// unpickler is a restricted pickle virtual machine: it understands the
// opcodes of protocols 0 to 5 but never imports or calls anything. GLOBAL
// yields an inert *global; REDUCE, NEWOBJ, INST and OBJ hand the reference to
// call, which either rebuilds a known value (tensors, OrderedDict, ...) or
// returns an inert *object. Globals naming code that has no business in a
// checkpoint (os.system, builtins.eval, ...) are refused outright. Every
// length read from the input is checked against the bytes left before
// anything is allocated, and the machine never recurses, so hostile input
// costs memory in proportion to its size and no Go stack.
type unpickler struct {
	data   []byte
	pos    int
	op     byte // current opcode, for errors
	opPos  int  // its offset
	stack  []any
	marks  []int
	memo   map[uint32]any
	pushes int

	// maxPushes overrides the push budget when positive (for tests).
	maxPushes int

	// persistentLoad resolves BINPERSID/PERSID ids (torch storages).
	persistentLoad func(pid any) (any, error)
	// call applies a global to arguments (REDUCE, NEWOBJ, INST, OBJ).
	call func(g *global, args []any) (any, error)
}

// PickleError reports malformed or refused pickle data.
type PickleError struct {
	Offset int  // byte offset of the opcode
	Op     byte // the opcode
	Err    error
}

func (e *PickleError) Error() string {
	return fmt.Sprintf("pickle offset %d, opcode 0x%02x %s: %v", e.Offset, e.Op, strconv.QuoteRune(rune(e.Op)), e.Err)
}

func (e *PickleError) Unwrap() error { return e.Err }

// unpickle runs the pickle in data and returns its value.
func (u *unpickler) unpickle(data []byte) (v any, err error) {
	u.data, u.pos = data, 0
	u.stack, u.marks, u.pushes = u.stack[:0], u.marks[:0], 0
	u.memo = map[uint32]any{}
	for {
		if u.pos >= len(u.data) {
			return nil, fmt.Errorf("pickle offset %d: data ends before STOP (truncated?)", u.pos)
		}
		u.opPos, u.op = u.pos, u.data[u.pos]
		u.pos++
		if err := u.step(); err != nil {
			if err == errStop {
				return u.pop()
			}
			return nil, &PickleError{Offset: u.opPos, Op: u.op, Err: err}
		}
	}
}

func (u *unpickler) push(v any) error {
	limit := maxPushes
	if u.maxPushes > 0 {
		limit = u.maxPushes
	}
	if u.pushes++; u.pushes > limit {
		return fmt.Errorf("more than %d values", limit)
	}
	u.stack = append(u.stack, v)
	return nil
}

func (u *unpickler) pop() (any, error) {
	n := len(u.stack)
	if n == 0 || (len(u.marks) > 0 && u.marks[len(u.marks)-1] == n) {
		return nil, errors.New("stack underflow")
	}
	v := u.stack[n-1]
	u.stack = u.stack[:n-1]
	return v, nil
}

func (u *unpickler) top() (any, error) {
	n := len(u.stack)
	if n == 0 || (len(u.marks) > 0 && u.marks[len(u.marks)-1] == n) {
		return nil, errors.New("stack underflow")
	}
	return u.stack[n-1], nil
}

// popMark removes and returns the values above the last MARK.
func (u *unpickler) popMark() ([]any, error) {
	if len(u.marks) == 0 {
		return nil, errors.New("no MARK on the stack")
	}
	m := u.marks[len(u.marks)-1]
	u.marks = u.marks[:len(u.marks)-1]
	items := append([]any(nil), u.stack[m:]...)
	u.stack = u.stack[:m]
	return items, nil
}

func (u *unpickler) read(n int) ([]byte, error) {
	if n < 0 || n > len(u.data)-u.pos {
		return nil, fmt.Errorf("needs %d bytes, %d left: truncated?", n, len(u.data)-u.pos)
	}
	b := u.data[u.pos : u.pos+n]
	u.pos += n
	return b, nil
}

func (u *unpickler) readLine() (string, error) {
	i := bytes.IndexByte(u.data[u.pos:], '\n')
	if i < 0 {
		return "", errors.New("line not terminated: truncated?")
	}
	s := string(u.data[u.pos : u.pos+i])
	u.pos += i + 1
	return s, nil
}

func (u *unpickler) readUint(n int) (uint64, error) {
	b, err := u.read(n)
	if err != nil {
		return 0, err
	}
	var v uint64
	for i := n - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v, nil
}

// readCounted reads a little-endian length of n bytes and then that many bytes.
func (u *unpickler) readCounted(n int) ([]byte, error) {
	l, err := u.readUint(n)
	if err != nil {
		return nil, err
	}
	if l > uint64(len(u.data)-u.pos) {
		return nil, fmt.Errorf("length %d exceeds the %d bytes left: truncated?", l, len(u.data)-u.pos)
	}
	return u.read(int(l))
}

func (u *unpickler) memoPut(i uint32) error {
	v, err := u.top()
	if err != nil {
		return err
	}
	if _, ok := u.memo[i]; !ok && len(u.memo) >= maxMemo {
		return fmt.Errorf("more than %d memo entries", maxMemo)
	}
	u.memo[i] = v
	return nil
}

func (u *unpickler) memoGet(i uint32) error {
	v, ok := u.memo[i]
	if !ok {
		return fmt.Errorf("memo index %d not defined", i)
	}
	return u.push(v)
}

// Opcodes, as named in Python's pickletools.
const (
	opMark           = '('
	opStop           = '.'
	opPop            = '0'
	opPopMark        = '1'
	opDup            = '2'
	opFloat          = 'F'
	opInt            = 'I'
	opBinInt         = 'J'
	opBinInt1        = 'K'
	opLong           = 'L'
	opBinInt2        = 'M'
	opNone           = 'N'
	opPersID         = 'P'
	opBinPersID      = 'Q'
	opReduce         = 'R'
	opString         = 'S'
	opBinString      = 'T'
	opShortBinString = 'U'
	opUnicode        = 'V'
	opBinUnicode     = 'X'
	opAppend         = 'a'
	opBuild          = 'b'
	opGlobal         = 'c'
	opDict           = 'd'
	opEmptyDict      = '}'
	opAppends        = 'e'
	opGet            = 'g'
	opBinGet         = 'h'
	opInst           = 'i'
	opLongBinGet     = 'j'
	opList           = 'l'
	opEmptyList      = ']'
	opObj            = 'o'
	opPut            = 'p'
	opBinPut         = 'q'
	opLongBinPut     = 'r'
	opSetItem        = 's'
	opTuple          = 't'
	opEmptyTuple     = ')'
	opSetItems       = 'u'
	opBinFloat       = 'G'
	opBinBytes       = 'B'
	opShortBinBytes  = 'C'
	opProto          = 0x80
	opNewObj         = 0x81
	opExt1           = 0x82
	opExt2           = 0x83
	opExt4           = 0x84
	opTuple1         = 0x85
	opTuple2         = 0x86
	opTuple3         = 0x87
	opNewTrue        = 0x88
	opNewFalse       = 0x89
	opLong1          = 0x8a
	opLong4          = 0x8b
	opShortBinUni    = 0x8c
	opBinUnicode8    = 0x8d
	opBinBytes8      = 0x8e
	opEmptySet       = 0x8f
	opAddItems       = 0x90
	opFrozenSet      = 0x91
	opNewObjEx       = 0x92
	opStackGlobal    = 0x93
	opMemoize        = 0x94
	opFrame          = 0x95
	opByteArray8     = 0x96
	opNextBuffer     = 0x97
	opReadOnlyBuffer = 0x98
)

func (u *unpickler) step() error {
	switch u.op {
	case opProto:
		p, err := u.readUint(1)
		if err != nil {
			return err
		}
		if p > 5 {
			return fmt.Errorf("unsupported pickle protocol %d", p)
		}
		return nil
	case opFrame:
		// Frames only group opcodes for buffered reading; the whole pickle
		// is in memory, so check the size and carry on.
		n, err := u.readUint(8)
		if err != nil {
			return err
		}
		if n > uint64(len(u.data)-u.pos) {
			return fmt.Errorf("frame of %d bytes exceeds the %d bytes left: truncated?", n, len(u.data)-u.pos)
		}
		return nil
	case opStop:
		return errStop
	case opMark:
		if len(u.marks) >= maxMarks {
			return fmt.Errorf("more than %d nested MARKs", maxMarks)
		}
		u.marks = append(u.marks, len(u.stack))
		return nil
	case opPop:
		if len(u.marks) > 0 && u.marks[len(u.marks)-1] == len(u.stack) {
			_, err := u.popMark() // POP of a bare MARK discards the mark
			return err
		}
		_, err := u.pop()
		return err
	case opPopMark:
		_, err := u.popMark()
		return err
	case opDup:
		v, err := u.top()
		if err != nil {
			return err
		}
		return u.push(v)

	case opNone:
		return u.push(nil)
	case opNewTrue:
		return u.push(true)
	case opNewFalse:
		return u.push(false)
	case opBinInt:
		v, err := u.readUint(4)
		if err != nil {
			return err
		}
		return u.push(int64(int32(uint32(v))))
	case opBinInt1:
		v, err := u.readUint(1)
		if err != nil {
			return err
		}
		return u.push(int64(v))
	case opBinInt2:
		v, err := u.readUint(2)
		if err != nil {
			return err
		}
		return u.push(int64(v))
	case opLong1:
		b, err := u.readCounted(1)
		if err != nil {
			return err
		}
		return u.push(decodeLong(b))
	case opLong4:
		b, err := u.readCounted(4)
		if err != nil {
			return err
		}
		return u.push(decodeLong(b))
	case opInt, opLong:
		s, err := u.readLine()
		if err != nil {
			return err
		}
		v, err := parseTextInt(s, u.op == opInt)
		if err != nil {
			return err
		}
		return u.push(v)
	case opFloat:
		s, err := u.readLine()
		if err != nil {
			return err
		}
		if len(s) > maxTextNumber {
			return errors.New("number too long")
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("bad float %q", s)
		}
		return u.push(f)
	case opBinFloat:
		v, err := u.readUint(8)
		if err != nil {
			return err
		}
		// BINFLOAT is big-endian.
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], v)
		return u.push(math.Float64frombits(binary.BigEndian.Uint64(b[:])))

	case opBinUnicode, opBinString:
		b, err := u.readCounted(4)
		if err != nil {
			return err
		}
		return u.push(string(b))
	case opShortBinUni, opShortBinString:
		b, err := u.readCounted(1)
		if err != nil {
			return err
		}
		return u.push(string(b))
	case opBinUnicode8:
		b, err := u.readCounted(8)
		if err != nil {
			return err
		}
		return u.push(string(b))
	case opUnicode:
		s, err := u.readLine()
		if err != nil {
			return err
		}
		return u.push(s)
	case opString:
		s, err := u.readLine()
		if err != nil {
			return err
		}
		if len(s) < 2 || s[0] != s[len(s)-1] || (s[0] != '\'' && s[0] != '"') {
			return errors.New("STRING argument is not quoted")
		}
		return u.push(s[1 : len(s)-1])
	case opShortBinBytes:
		b, err := u.readCounted(1)
		if err != nil {
			return err
		}
		return u.push(append([]byte(nil), b...))
	case opBinBytes:
		b, err := u.readCounted(4)
		if err != nil {
			return err
		}
		return u.push(append([]byte(nil), b...))
	case opBinBytes8, opByteArray8:
		b, err := u.readCounted(8)
		if err != nil {
			return err
		}
		return u.push(append([]byte(nil), b...))
	case opNextBuffer:
		return errors.New("out-of-band buffers are not supported")
	case opReadOnlyBuffer:
		_, err := u.top()
		return err

	case opEmptyTuple:
		return u.push(tuple{})
	case opTuple1, opTuple2, opTuple3:
		n := int(u.op-opTuple1) + 1
		if len(u.stack) < n || (len(u.marks) > 0 && u.marks[len(u.marks)-1] > len(u.stack)-n) {
			return errors.New("stack underflow")
		}
		t := append(tuple(nil), u.stack[len(u.stack)-n:]...)
		u.stack = u.stack[:len(u.stack)-n]
		return u.push(t)
	case opTuple:
		items, err := u.popMark()
		if err != nil {
			return err
		}
		return u.push(tuple(items))
	case opEmptyList:
		return u.push(&list{})
	case opList:
		items, err := u.popMark()
		if err != nil {
			return err
		}
		return u.push(&list{items: items})
	case opAppend:
		v, err := u.pop()
		if err != nil {
			return err
		}
		return u.appendTo([]any{v})
	case opAppends:
		items, err := u.popMark()
		if err != nil {
			return err
		}
		return u.appendTo(items)
	case opEmptyDict:
		return u.push(newDict())
	case opDict:
		items, err := u.popMark()
		if err != nil {
			return err
		}
		if len(items)%2 != 0 {
			return errors.New("odd number of items for DICT")
		}
		d := newDict()
		for i := 0; i < len(items); i += 2 {
			d.set(items[i], items[i+1])
		}
		return u.push(d)
	case opSetItem:
		v, err := u.pop()
		if err != nil {
			return err
		}
		k, err := u.pop()
		if err != nil {
			return err
		}
		return u.setItems([]any{k, v})
	case opSetItems:
		items, err := u.popMark()
		if err != nil {
			return err
		}
		if len(items)%2 != 0 {
			return errors.New("odd number of items for SETITEMS")
		}
		return u.setItems(items)
	case opEmptySet:
		return u.push(&object{class: &global{"builtins", "set"}})
	case opFrozenSet:
		items, err := u.popMark()
		if err != nil {
			return err
		}
		return u.push(&object{class: &global{"builtins", "frozenset"}, items: items})
	case opAddItems:
		items, err := u.popMark()
		if err != nil {
			return err
		}
		s, err := u.top()
		if err != nil {
			return err
		}
		o, ok := s.(*object)
		if !ok || o.class.module != "builtins" || o.class.name != "set" {
			return fmt.Errorf("ADDITEMS to %s", typeName(s))
		}
		o.items = append(o.items, items...)
		return nil

	case opPut:
		s, err := u.readLine()
		if err != nil {
			return err
		}
		i, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return fmt.Errorf("bad memo index %q", s)
		}
		return u.memoPut(uint32(i))
	case opBinPut:
		i, err := u.readUint(1)
		if err != nil {
			return err
		}
		return u.memoPut(uint32(i))
	case opLongBinPut:
		i, err := u.readUint(4)
		if err != nil {
			return err
		}
		return u.memoPut(uint32(i))
	case opMemoize:
		return u.memoPut(uint32(len(u.memo)))
	case opGet:
		s, err := u.readLine()
		if err != nil {
			return err
		}
		i, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return fmt.Errorf("bad memo index %q", s)
		}
		return u.memoGet(uint32(i))
	case opBinGet:
		i, err := u.readUint(1)
		if err != nil {
			return err
		}
		return u.memoGet(uint32(i))
	case opLongBinGet:
		i, err := u.readUint(4)
		if err != nil {
			return err
		}
		return u.memoGet(uint32(i))

	case opGlobal:
		mod, err := u.readLine()
		if err != nil {
			return err
		}
		name, err := u.readLine()
		if err != nil {
			return err
		}
		g, err := lookupGlobal(mod, name)
		if err != nil {
			return err
		}
		return u.push(g)
	case opStackGlobal:
		name, err := u.pop()
		if err != nil {
			return err
		}
		mod, err := u.pop()
		if err != nil {
			return err
		}
		ms, ok1 := mod.(string)
		ns, ok2 := name.(string)
		if !ok1 || !ok2 {
			return errors.New("STACK_GLOBAL needs two strings")
		}
		g, err := lookupGlobal(ms, ns)
		if err != nil {
			return err
		}
		return u.push(g)
	case opReduce:
		args, err := u.pop()
		if err != nil {
			return err
		}
		fn, err := u.pop()
		if err != nil {
			return err
		}
		return u.apply(fn, args)
	case opNewObj:
		args, err := u.pop()
		if err != nil {
			return err
		}
		cls, err := u.pop()
		if err != nil {
			return err
		}
		return u.apply(cls, args)
	case opNewObjEx:
		if _, err := u.pop(); err != nil { // kwargs, ignored
			return err
		}
		args, err := u.pop()
		if err != nil {
			return err
		}
		cls, err := u.pop()
		if err != nil {
			return err
		}
		return u.apply(cls, args)
	case opInst:
		mod, err := u.readLine()
		if err != nil {
			return err
		}
		name, err := u.readLine()
		if err != nil {
			return err
		}
		g, err := lookupGlobal(mod, name)
		if err != nil {
			return err
		}
		args, err := u.popMark()
		if err != nil {
			return err
		}
		return u.apply(g, tuple(args))
	case opObj:
		items, err := u.popMark()
		if err != nil {
			return err
		}
		if len(items) == 0 {
			return errors.New("OBJ without a class")
		}
		return u.apply(items[0], tuple(items[1:]))
	case opBuild:
		state, err := u.pop()
		if err != nil {
			return err
		}
		v, err := u.top()
		if err != nil {
			return err
		}
		switch o := v.(type) {
		case *object:
			o.state = state
		case *dict:
			o.state = state
		case *tensorRef, *list:
			// Tensor attributes (e.g. a Parameter's __dict__) and list
			// subclass state carry nothing needed here.
		default:
			return fmt.Errorf("BUILD on %s", typeName(v))
		}
		return nil
	case opBinPersID, opPersID:
		var pid any
		var err error
		if u.op == opPersID {
			pid, err = u.readLine()
		} else {
			pid, err = u.pop()
		}
		if err != nil {
			return err
		}
		if u.persistentLoad == nil {
			return errors.New("persistent ids are not supported here")
		}
		v, err := u.persistentLoad(pid)
		if err != nil {
			return err
		}
		return u.push(v)
	case opExt1, opExt2, opExt4:
		return errors.New("extension registry codes are not supported")
	}
	return errors.New("unknown opcode")
}

func (u *unpickler) apply(fn, args any) error {
	g, ok := fn.(*global)
	if !ok {
		return fmt.Errorf("cannot call %s", typeName(fn))
	}
	a, ok := args.(tuple)
	if !ok {
		return fmt.Errorf("arguments of %s are %s, not a tuple", g, typeName(args))
	}
	if u.call == nil {
		return u.push(&object{class: g, args: a})
	}
	v, err := u.call(g, a)
	if err != nil {
		return fmt.Errorf("%s: %w", g, err)
	}
	return u.push(v)
}

func (u *unpickler) appendTo(items []any) error {
	v, err := u.top()
	if err != nil {
		return err
	}
	switch l := v.(type) {
	case *list:
		l.items = append(l.items, items...)
	case *object:
		l.items = append(l.items, items...)
	default:
		return fmt.Errorf("APPEND to %s", typeName(v))
	}
	return nil
}

func (u *unpickler) setItems(kv []any) error {
	v, err := u.top()
	if err != nil {
		return err
	}
	switch d := v.(type) {
	case *dict:
		for i := 0; i < len(kv); i += 2 {
			d.set(kv[i], kv[i+1])
		}
	case *object:
		d.items = append(d.items, kv...)
	default:
		return fmt.Errorf("SETITEM on %s", typeName(v))
	}
	return nil
}

// decodeLong decodes a little-endian two's complement integer of any length.
func decodeLong(b []byte) any {
	if len(b) == 0 {
		return int64(0)
	}
	if len(b) <= 8 {
		var v uint64
		for i := len(b) - 1; i >= 0; i-- {
			v = v<<8 | uint64(b[i])
		}
		shift := uint(64 - 8*len(b))
		return int64(v<<shift) >> shift // sign-extend
	}
	be := make([]byte, len(b))
	for i, c := range b {
		be[len(b)-1-i] = c
	}
	x := new(big.Int).SetBytes(be)
	if b[len(b)-1]&0x80 != 0 {
		x.Sub(x, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	if x.IsInt64() {
		return x.Int64()
	}
	return x
}

// parseTextInt parses the argument of INT or LONG. INT's "00" and "01" are
// False and True.
func parseTextInt(s string, isInt bool) (any, error) {
	if len(s) > maxTextNumber {
		return nil, errors.New("number too long")
	}
	if isInt && s == "00" {
		return false, nil
	}
	if isInt && s == "01" {
		return true, nil
	}
	s = strings.TrimSuffix(s, "L")
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v, nil
	}
	x, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return nil, fmt.Errorf("bad integer %q", s)
	}
	return x, nil
}

// typeName names the Python type of a value, for errors.
func typeName(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case bool:
		return "bool"
	case int64, *big.Int:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case []byte:
		return "bytes"
	case tuple:
		return "tuple"
	case *list:
		return "list"
	case *dict:
		return "dict"
	case *global:
		return "global " + v.String()
	case *object:
		return v.class.String() + " object"
	case *storageRef:
		return "storage"
	case *tensorRef:
		return "tensor"
	}
	return fmt.Sprintf("%T", v)
}
