package ckpt

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/pigment-sd/pigment/tensor"
)

// ErrForbidden is wrapped by errors for pickles that reference code with no
// place in a checkpoint (os.system, builtins.eval, subprocess.Popen, ...).
// Such a file is refused before anything else is read from it.
var ErrForbidden = errors.New("forbidden global")

// storageRef is a persistent reference to a storage: the zip entry
// <archive>/data/<key> holding numel elements of dtype.
type storageRef struct {
	key      string
	typeName string       // e.g. "torch.FloatStorage"
	dtype    tensor.DType // "" for storage types pigment does not read
	numel    int64
}

// tensorRef is a strided view of a storage, as _rebuild_tensor_v2 makes it.
type tensorRef struct {
	storage *storageRef
	offset  int64 // in elements
	shape   []int64
	stride  []int64 // in elements
}

// lookupGlobal turns a GLOBAL or STACK_GLOBAL into an inert reference, or
// refuses a dangerous one.
func lookupGlobal(module, name string) (*global, error) {
	if forbidden(module, name) {
		return nil, fmt.Errorf("%w %s.%s", ErrForbidden, module, name)
	}
	return &global{module: module, name: name}, nil
}

// forbidden reports whether module.name is code that a state dict never
// references and that a malicious pickle would use to run commands, read
// files or reach arbitrary attributes. Everything else that is not needed
// for tensors becomes an inert placeholder.
func forbidden(module, name string) bool {
	root, _, _ := strings.Cut(module, ".")
	switch root {
	case "os", "posix", "nt", "posixpath", "ntpath", "subprocess", "sys", "shutil",
		"socket", "importlib", "runpy", "pickle", "_pickle", "cPickle", "marshal",
		"code", "codeop", "ctypes", "pty", "webbrowser", "commands", "multiprocessing",
		"signal", "asyncio", "operator", "_operator", "pdb", "bdb", "timeit",
		"io", "_io", "tempfile", "glob", "pathlib", "http", "urllib", "ftplib",
		"smtplib", "telnetlib", "requests", "dill", "joblib", "exec", "eval":
		return true
	case "types":
		return name != "SimpleNamespace" // FunctionType, CodeType build code
	case "builtins", "__builtin__":
		switch name {
		case "set", "frozenset", "dict", "list", "tuple", "object", "bytearray",
			"bytes", "str", "int", "float", "complex", "bool", "slice", "range":
			return false
		}
		return true // eval, exec, getattr, __import__, open, compile, ...
	case "numpy":
		return strings.HasPrefix(module, "numpy.testing") || strings.HasPrefix(module, "numpy.f2py") ||
			strings.HasPrefix(module, "numpy.distutils") || name == "load" || name == "fromfile"
	case "torch":
		return module == "torch.hub" || strings.HasPrefix(module, "torch.hub.") ||
			module == "torch.jit" || strings.HasPrefix(module, "torch.jit.") ||
			name == "load" || name == "_load_from_bytes" || name == "_load"
	}
	return false
}

// storageDType maps a torch storage class to its element type.
func storageDType(g *global) (tensor.DType, bool) {
	if g.module != "torch" && g.module != "torch.cuda" && g.module != "torch.storage" {
		return "", false
	}
	switch g.name {
	case "FloatStorage":
		return tensor.F32, true
	case "HalfStorage":
		return tensor.F16, true
	case "BFloat16Storage":
		return tensor.BF16, true
	case "DoubleStorage":
		return tensor.F64, true
	case "LongStorage":
		return tensor.I64, true
	case "IntStorage":
		return tensor.I32, true
	case "ShortStorage":
		return tensor.I16, true
	case "CharStorage":
		return tensor.I8, true
	case "ByteStorage", "UntypedStorage":
		return tensor.U8, true
	case "BoolStorage":
		return tensor.Bool, true
	}
	return "", strings.HasSuffix(g.name, "Storage")
}

// persistentStorage resolves torch.save's persistent ids
// ('storage', storage_type, key, location, numel).
func persistentStorage(pid any) (any, error) {
	t, ok := pid.(tuple)
	if !ok || len(t) < 5 {
		return nil, fmt.Errorf("persistent id is %s, not a storage tuple", typeName(pid))
	}
	if s, _ := t[0].(string); s != "storage" {
		return nil, fmt.Errorf("persistent id of kind %s, want 'storage'", typeName(t[0]))
	}
	g, ok := t[1].(*global)
	if !ok {
		return nil, fmt.Errorf("storage type is %s", typeName(t[1]))
	}
	dt, ok := storageDType(g)
	if !ok {
		return nil, fmt.Errorf("%s is not a storage type", g)
	}
	var key string
	switch k := t[2].(type) {
	case string:
		key = k
	case int64:
		key = strconv.FormatInt(k, 10)
	default:
		return nil, fmt.Errorf("storage key is %s", typeName(t[2]))
	}
	numel, ok := t[4].(int64)
	if !ok || numel < 0 {
		return nil, fmt.Errorf("storage %s: bad element count (%s)", key, typeName(t[4]))
	}
	return &storageRef{key: key, typeName: g.String(), dtype: dt, numel: numel}, nil
}

// callGlobal applies a global to its arguments. Only the functions that
// rebuild tensors and containers are interpreted; any other class becomes an
// inert *object recording its arguments.
func callGlobal(g *global, args []any) (any, error) {
	switch g.module + "." + g.name {
	case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor":
		return rebuildTensor(args)
	case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
		if len(args) < 1 {
			return nil, errors.New("no arguments")
		}
		if _, ok := args[0].(*tensorRef); !ok {
			return nil, fmt.Errorf("data is %s, not a tensor", typeName(args[0]))
		}
		return args[0], nil
	case "torch._tensor._rebuild_from_type_v2", "torch._tensor._rebuild_from_type":
		// (func, type, args[, state]): a tensor subclass rebuilt by func.
		if len(args) < 3 {
			return nil, errors.New("too few arguments")
		}
		fn, ok := args[0].(*global)
		inner, ok2 := args[2].(tuple)
		if !ok || !ok2 {
			return nil, errors.New("bad arguments")
		}
		if fn.module != "torch._utils" || !strings.HasPrefix(fn.name, "_rebuild_tensor") {
			return &object{class: g, args: args}, nil
		}
		return callGlobal(fn, inner)
	case "collections.OrderedDict", "builtins.dict", "__builtin__.dict":
		return newDictFrom(args)
	case "torch.Size", "builtins.tuple", "__builtin__.tuple":
		if len(args) == 0 {
			return tuple{}, nil
		}
		items, ok := sequence(args[0])
		if !ok {
			return nil, fmt.Errorf("argument is %s", typeName(args[0]))
		}
		return tuple(append([]any(nil), items...)), nil
	case "builtins.list", "__builtin__.list":
		l := &list{}
		if len(args) > 0 {
			items, ok := sequence(args[0])
			if !ok {
				return nil, fmt.Errorf("argument is %s", typeName(args[0]))
			}
			l.items = append(l.items, items...)
		}
		return l, nil
	case "builtins.set", "builtins.frozenset", "__builtin__.set", "__builtin__.frozenset":
		o := &object{class: g}
		if len(args) > 0 {
			items, ok := sequence(args[0])
			if !ok {
				return nil, fmt.Errorf("argument is %s", typeName(args[0]))
			}
			o.items = append(o.items, items...)
		}
		return o, nil
	}
	return &object{class: g, args: args}, nil
}

// sequence returns the items of a tuple, list or set placeholder.
func sequence(v any) ([]any, bool) {
	switch v := v.(type) {
	case tuple:
		return v, true
	case *list:
		return v.items, true
	case *object:
		if v.class.name == "set" || v.class.name == "frozenset" {
			return v.items, true
		}
	}
	return nil, false
}

func newDictFrom(args []any) (*dict, error) {
	d := newDict()
	if len(args) == 0 {
		return d, nil
	}
	if src, ok := args[0].(*dict); ok {
		for i := range src.keys {
			d.set(src.keys[i], src.vals[i])
		}
		return d, nil
	}
	items, ok := sequence(args[0])
	if !ok {
		return nil, fmt.Errorf("argument is %s", typeName(args[0]))
	}
	for _, it := range items {
		kv, ok := sequence(it)
		if !ok || len(kv) != 2 {
			return nil, fmt.Errorf("item is %s, not a pair", typeName(it))
		}
		d.set(kv[0], kv[1])
	}
	return d, nil
}

// rebuildTensor interprets _rebuild_tensor_v2(storage, storage_offset, size,
// stride, requires_grad, backward_hooks[, metadata]). Values are checked
// later, when the tensor is validated under its name.
func rebuildTensor(args []any) (any, error) {
	if len(args) < 4 {
		return nil, fmt.Errorf("%d arguments, want at least 4", len(args))
	}
	st, ok := args[0].(*storageRef)
	if !ok {
		return nil, fmt.Errorf("storage is %s", typeName(args[0]))
	}
	off, ok := args[1].(int64)
	if !ok {
		return nil, fmt.Errorf("storage offset is %s", typeName(args[1]))
	}
	shape, err := intTuple(args[2])
	if err != nil {
		return nil, fmt.Errorf("size: %w", err)
	}
	stride, err := intTuple(args[3])
	if err != nil {
		return nil, fmt.Errorf("stride: %w", err)
	}
	if len(shape) != len(stride) {
		return nil, fmt.Errorf("size has %d dimensions, stride %d", len(shape), len(stride))
	}
	return &tensorRef{storage: st, offset: off, shape: shape, stride: stride}, nil
}

func intTuple(v any) ([]int64, error) {
	items, ok := sequence(v)
	if !ok {
		return nil, fmt.Errorf("%s, not a tuple", typeName(v))
	}
	out := make([]int64, len(items))
	for i, it := range items {
		n, ok := it.(int64)
		if !ok {
			return nil, fmt.Errorf("element %d is %s, not an int", i, typeName(it))
		}
		out[i] = n
	}
	return out, nil
}
