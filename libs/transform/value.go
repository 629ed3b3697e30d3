package transform

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"time"

	"github.com/dop251/goja"
)

// maxDepth bounds nesting in returned records; it also stops cycles.
const maxDepth = 64

// toJS builds native JavaScript values from a decoded record, so the code
// sees plain objects and arrays.
//
// Numbers arrive as json.Number. One that a float64 holds without losing a
// digit becomes a JavaScript number; one that does not (a 20-digit id, a
// decimal with 17 significant digits) becomes a string, so the code never
// sees a silently rounded value. Such a string returned unchanged goes out
// as the exact number it was.
func (v *vm) toJS(x any) goja.Value {
	switch x := x.(type) {
	case nil:
		return goja.Null()
	case json.Number:
		if f, ok := exactFloat(string(x)); ok {
			return v.rt.ToValue(f)
		}
		v.bigs[string(x)] = struct{}{}
		return v.rt.ToValue(string(x))
	case string:
		return v.rt.ToValue(x)
	case map[string]any:
		o := v.rt.NewObject()
		for k, e := range x {
			_ = o.Set(k, v.toJS(e))
		}
		return o
	case []any:
		items := make([]any, len(x))
		for i, e := range x {
			items[i] = v.toJS(e)
		}
		return v.rt.NewArray(items...)
	case time.Time:
		return v.rt.ToValue(x.Format(time.RFC3339Nano))
	}
	return v.rt.ToValue(x)
}

// exactFloat parses a JSON number and reports whether the float64 keeps
// every digit of it.
func exactFloat(s string) (float64, bool) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, false
	}
	if significantDigits(s) <= 15 {
		return f, true // float64 keeps any 15 significant digits
	}
	want, ok1 := new(big.Rat).SetString(s)
	got, ok2 := new(big.Rat).SetString(strconv.FormatFloat(f, 'g', -1, 64))
	return f, ok1 && ok2 && want.Cmp(got) == 0
}

// significantDigits counts the mantissa digits of a JSON number, without
// leading zeros.
func significantDigits(s string) int {
	n, leading := 0, true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == 'e' || c == 'E':
			return n
		case c == '0' && leading:
		case c >= '0' && c <= '9':
			leading = false
			n++
		}
	}
	return n
}

// exporter turns a returned JavaScript object into JSON-able Go values.
// goja's Export does the bulk of the work; the walk after it applies
// JSON.stringify's rules (functions are left out, NaN and Infinity are
// null, dates are RFC 3339 strings), restores exact numbers and counts the
// JSON size, so an oversized record fails. goja exports undefined as nil,
// so a field set to undefined goes out as null.
type exporter struct {
	v     *vm
	size  int
	limit int
}

func (x *exporter) grow(n int) error {
	x.size += n
	if x.size > x.limit {
		return fmt.Errorf("output is over the limit of %d bytes of JSON (max_output_bytes)", x.limit)
	}
	return nil
}

func (x *exporter) object(o *goja.Object, depth int) (map[string]any, error) {
	m, ok := o.Export().(map[string]any)
	if !ok {
		return nil, fmt.Errorf("a record must be a plain object, got %T", o.Export())
	}
	if err := x.fixMap(m, depth); err != nil {
		return nil, err
	}
	return m, nil
}

func (x *exporter) fixMap(m map[string]any, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("output nests deeper than %d levels (a cycle?)", maxDepth)
	}
	if err := x.grow(2); err != nil {
		return err
	}
	for k, e := range m {
		if n, plain := x.plain(e); plain { // most values: nothing to change
			if err := x.grow(len(k) + 4 + n); err != nil {
				return err
			}
			continue
		}
		out, keep, err := x.fix(e, depth)
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		if !keep {
			delete(m, k)
			continue
		}
		if err := x.grow(len(k) + 4); err != nil {
			return err
		}
		m[k] = out
	}
	return nil
}

// plain reports whether v goes out as it is, and its JSON size.
func (x *exporter) plain(v any) (int, bool) {
	switch e := v.(type) {
	case string:
		if len(x.v.bigs) > 0 {
			if _, big := x.v.bigs[e]; big {
				return 0, false
			}
		}
		return len(e) + 2, true
	case int64:
		return 20, true
	case bool:
		return 5, true
	case float64:
		return 24, !math.IsNaN(e) && !math.IsInf(e, 0)
	}
	return 0, false
}

// fix checks and converts one exported value; keep is false for what JSON
// leaves out of objects (null in arrays).
func (x *exporter) fix(v any, depth int) (out any, keep bool, err error) {
	switch e := v.(type) {
	case nil:
		return nil, true, x.grow(4)
	case string:
		if _, big := x.v.bigs[e]; big {
			return json.Number(e), true, x.grow(len(e))
		}
		return e, true, x.grow(len(e) + 2)
	case int64:
		return e, true, x.grow(20)
	case float64:
		if math.IsNaN(e) || math.IsInf(e, 0) {
			return nil, true, x.grow(4)
		}
		return e, true, x.grow(24)
	case bool:
		return e, true, x.grow(5)
	case map[string]any:
		return e, true, x.fixMap(e, depth+1)
	case []any:
		if depth > maxDepth {
			return nil, false, fmt.Errorf("output nests deeper than %d levels (a cycle?)", maxDepth)
		}
		if err := x.grow(2 + len(e)); err != nil {
			return nil, false, err
		}
		for i, item := range e {
			out, keep, err := x.fix(item, depth+1)
			if err != nil {
				return nil, false, fmt.Errorf("[%d]: %w", i, err)
			}
			if !keep {
				out = nil
			}
			e[i] = out
		}
		return e, true, nil
	case time.Time:
		s := e.UTC().Format(time.RFC3339Nano)
		return s, true, x.grow(len(s) + 2)
	case *big.Int:
		s := e.String()
		return json.Number(s), true, x.grow(len(s))
	case func(goja.FunctionCall) goja.Value, func(goja.ConstructorCall) *goja.Object:
		return nil, false, nil
	}
	return nil, false, fmt.Errorf("cannot send a %T", v)
}
