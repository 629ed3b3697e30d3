package transform

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/dop251/goja"
)

// Bounds on what one record's log() calls keep, so a chatty loop cannot
// grow memory until its time limit.
const (
	maxLogLines = 100
	maxLogLine  = 1024
)

// maxCallStack bounds recursion, which otherwise grows the Go heap until the
// time limit.
const maxCallStack = 10_000

// vm is one runtime with the code loaded. Only one goroutine uses it at a
// time: the one that took it from the pool.
type vm struct {
	t     *Transformation
	rt    *goja.Runtime
	fn    goja.Callable
	batch bool // transformBatch rather than transformEvent

	// meta is the JavaScript metadata function; cur is the metadata of the
	// record being transformed, which it returns.
	meta  *goja.Object
	cur   Metadata
	curJS goja.Value
	// stamp marks each input object of transformBatch with its index, so
	// outputs (even copies made with {...record}) are traced to their input.
	stamp  *goja.Symbol
	inputs []Input

	logs []string
	// bigs are the exact numbers given to the code as strings (see toJS), so
	// those it returns untouched go out as numbers again.
	bigs map[string]struct{}
}

func (t *Transformation) newVM() (*vm, error) {
	rt := goja.New()
	rt.SetMaxCallStackSize(maxCallStack)
	v := &vm{t: t, rt: rt, stamp: goja.NewSymbol("ebb.input"), bigs: map[string]struct{}{}}
	if err := v.install(); err != nil {
		return nil, err
	}
	// The top level runs under the time limit too: it is user code.
	stop := v.arm(context.Background(), t.opts.Timeout)
	_, err := rt.RunProgram(t.prg)
	stop()
	if err != nil {
		return nil, fmt.Errorf("%s: running the top level: %s", t.name, describe(err, t.opts.Timeout))
	}
	if fn, ok := goja.AssertFunction(rt.Get("transformEvent")); ok {
		v.fn = fn
		return v, nil
	}
	if fn, ok := goja.AssertFunction(rt.Get("transformBatch")); ok {
		v.fn, v.batch = fn, true
		return v, nil
	}
	return nil, fmt.Errorf("%s: defines neither transformEvent(record, metadata) nor transformBatch(records, metadata)", t.name)
}

// install adds log() and the metadata function, and caps the string
// built-ins that allocate in one uninterruptible call.
func (v *vm) install() error {
	if err := v.rt.Set("log", v.log); err != nil {
		return err
	}
	v.meta = v.rt.ToValue(v.metadata).(*goja.Object)
	// Properties too, so metadata.op works as well as metadata(record).op.
	for _, name := range []string{"sync", "run", "op", "key"} {
		getter := v.rt.ToValue(func(goja.FunctionCall) goja.Value { return v.metaValue().Get(name) })
		if err := v.meta.DefineAccessorProperty(name, getter, nil, goja.FLAG_FALSE, goja.FLAG_TRUE); err != nil {
			return err
		}
	}
	return v.capStrings()
}

// capStrings wraps String.prototype.repeat, padStart and padEnd so a result
// longer than the output cap is a RangeError instead of one huge allocation.
func (v *vm) capStrings() error {
	proto := v.rt.Get("String").ToObject(v.rt).Get("prototype").ToObject(v.rt)
	limit := int64(v.t.opts.MaxOutputBytes)
	for _, name := range []string{"repeat", "padStart", "padEnd"} {
		orig, ok := goja.AssertFunction(proto.Get(name))
		if !ok {
			return fmt.Errorf("String.prototype.%s is missing", name)
		}
		wrapped := func(call goja.FunctionCall) goja.Value {
			n := call.Argument(0).ToFloat()
			size := n
			if name == "repeat" {
				size = n * float64(len(call.This.String()))
			}
			if size > float64(limit) {
				msg := fmt.Sprintf("String.prototype.%s would make %.0f characters, over the limit of %d", name, size, limit)
				e, _ := v.rt.New(v.rt.Get("RangeError"), v.rt.ToValue(msg))
				panic(e)
			}
			res, err := orig(call.This, call.Arguments...)
			if err != nil {
				panic(err)
			}
			return res
		}
		if err := proto.Set(name, wrapped); err != nil {
			return err
		}
	}
	return nil
}

// arm interrupts the runtime when the time limit passes or ctx ends. The
// returned stop must be called before the runtime is reused: it waits out a
// concurrent interrupt and clears the flag, so the next batch does not
// start interrupted.
func (v *vm) arm(ctx context.Context, limit time.Duration) (stop func()) {
	var mu sync.Mutex
	done := false
	interrupt := func(reason func() error) func() {
		return func() {
			mu.Lock()
			defer mu.Unlock()
			if !done {
				v.rt.Interrupt(reason())
			}
		}
	}
	timer := time.AfterFunc(limit, interrupt(func() error {
		return fmt.Errorf("%w: the transformation ran longer than %s for one batch", ErrTimeout, limit)
	}))
	stopCtx := context.AfterFunc(ctx, interrupt(func() error { return context.Cause(ctx) }))
	return func() {
		timer.Stop()
		stopCtx()
		mu.Lock()
		done = true
		mu.Unlock()
		v.rt.ClearInterrupt()
	}
}

func (v *vm) log(call goja.FunctionCall) goja.Value {
	if len(v.logs) >= maxLogLines {
		return goja.Undefined()
	}
	parts := make([]string, len(call.Arguments))
	for i, a := range call.Arguments {
		parts[i] = v.logString(a)
	}
	line := strings.Join(parts, " ")
	if len(line) > maxLogLine {
		line = line[:maxLogLine] + "…"
	}
	v.logs = append(v.logs, line)
	return goja.Undefined()
}

// logString writes objects as JSON, like console.log in spirit.
func (v *vm) logString(a goja.Value) string {
	if o, ok := a.(*goja.Object); ok && o.ClassName() != "Function" && o.ClassName() != "Error" {
		stringify, _ := goja.AssertFunction(v.rt.Get("JSON").ToObject(v.rt).Get("stringify"))
		if s, err := stringify(goja.Undefined(), a); err == nil && !goja.IsUndefined(s) {
			return s.String()
		}
	}
	return a.String()
}

// metadata is the JavaScript metadata(record) function: in transformBatch
// it answers for the record's input, elsewhere for the current record.
func (v *vm) metadata(call goja.FunctionCall) goja.Value {
	if v.batch {
		if i, ok := v.inputIndex(call.Argument(0)); ok {
			return v.metaObject(v.inputs[i].Meta, true)
		}
		return v.metaObject(Metadata{Sync: v.cur.Sync, Run: v.cur.Run}, true)
	}
	return v.metaValue()
}

func (v *vm) metaValue() *goja.Object {
	if v.curJS == nil {
		v.curJS = v.metaObject(v.cur, !v.batch)
	}
	return v.curJS.(*goja.Object)
}

func (v *vm) metaObject(m Metadata, perRecord bool) *goja.Object {
	o := v.rt.NewObject()
	_ = o.Set("sync", m.Sync)
	_ = o.Set("run", m.Run)
	if perRecord {
		_ = o.Set("op", m.Op)
		_ = o.Set("key", v.toJS(m.Key))
	}
	return o
}

// inputIndex finds the input a transformBatch value came from.
func (v *vm) inputIndex(val goja.Value) (int, bool) {
	o, ok := val.(*goja.Object)
	if !ok {
		return 0, false
	}
	s := o.GetSymbol(v.stamp)
	if s == nil || goja.IsUndefined(s) {
		return 0, false
	}
	i := int(s.ToInteger())
	return i, i >= 0 && i < len(v.inputs)
}

// runEvents calls transformEvent once per input.
func (v *vm) runEvents(inputs []Input) []Output {
	out := make([]Output, len(inputs))
	for i, in := range inputs {
		v.cur, v.curJS, v.logs = in.Meta, nil, nil
		clear(v.bigs)
		res, err := v.fn(goja.Undefined(), v.toJS(in.Data), v.meta)
		out[i].Logs = v.logs
		if err != nil {
			out[i].Err = errors.New(describe(err, v.t.opts.Timeout))
			if isInterrupt(err) {
				failRest(out[i+1:], "not run: an earlier record used up the batch's time limit")
				break
			}
			continue
		}
		out[i].Records, out[i].Err = v.records(res, "transformEvent")
	}
	return out
}

// runBatch calls transformBatch once and traces each returned record to the
// input it came from.
func (v *vm) runBatch(inputs []Input) []Output {
	out := make([]Output, len(inputs))
	if len(inputs) == 0 {
		return out
	}
	v.inputs, v.logs = inputs, nil
	v.cur, v.curJS = Metadata{Sync: inputs[0].Meta.Sync, Run: inputs[0].Meta.Run}, nil
	defer func() { v.inputs = nil }()
	clear(v.bigs)
	arr := make([]any, len(inputs))
	for i, in := range inputs {
		o := v.toJS(in.Data).(*goja.Object)
		_ = o.SetSymbol(v.stamp, i)
		arr[i] = o
	}
	res, err := v.fn(goja.Undefined(), v.rt.NewArray(arr...), v.meta)
	if err != nil {
		failRest(out, describe(err, v.t.opts.Timeout))
		out[0].Logs = v.logs
		return out
	}
	if err := v.traceBatch(res, out); err != nil {
		failRest(out, err.Error())
	}
	// The batch's log lines are not per record: the first output holds them.
	out[0].Logs = v.logs
	return out
}

func (v *vm) traceBatch(res goja.Value, out []Output) error {
	o, ok := res.(*goja.Object)
	if !ok || o.ClassName() != "Array" {
		return fmt.Errorf("transformBatch must return an array of records, got %s", typeName(res))
	}
	size := make([]int, len(out))
	n := int(o.Get("length").ToInteger())
	for j := range n {
		e := o.Get(fmt.Sprint(j))
		if e == nil || goja.IsNull(e) || goja.IsUndefined(e) {
			continue
		}
		i, ok := v.inputIndex(e)
		if !ok {
			if len(out) != 1 {
				return fmt.Errorf("transformBatch returned a record (index %d) made from none of its inputs: return the input objects, or copies made with {...record}", j)
			}
			i = 0
		}
		if out[i].Err != nil {
			continue
		}
		rec, err := v.record(e, &size[i])
		if err != nil {
			out[i].Err = err
			continue
		}
		out[i].Records = append(out[i].Records, rec)
	}
	return nil
}

func failRest(out []Output, msg string) {
	for i := range out {
		out[i].Err = errors.New(msg)
	}
}

// records reads what transformEvent returned: null or undefined (dropped),
// an object, or an array of objects.
func (v *vm) records(res goja.Value, fn string) ([]map[string]any, error) {
	if res == nil || goja.IsNull(res) || goja.IsUndefined(res) {
		return nil, nil
	}
	o, ok := res.(*goja.Object)
	if !ok {
		return nil, fmt.Errorf("%s must return an object, an array of objects or null, got %s", fn, typeName(res))
	}
	size := 0
	if o.ClassName() != "Array" {
		rec, err := v.record(o, &size)
		if err != nil {
			return nil, err
		}
		return []map[string]any{rec}, nil
	}
	n := int(o.Get("length").ToInteger())
	recs := make([]map[string]any, 0, n)
	for j := range n {
		rec, err := v.record(o.Get(fmt.Sprint(j)), &size)
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", j, err)
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// record exports one returned record, adding its JSON size to *size.
func (v *vm) record(val goja.Value, size *int) (map[string]any, error) {
	o, ok := val.(*goja.Object)
	if !ok || o.ClassName() == "Array" || o.ClassName() == "Function" {
		return nil, fmt.Errorf("a record must be an object, got %s", typeName(val))
	}
	x := exporter{v: v, size: *size, limit: v.t.opts.MaxOutputBytes}
	m, err := x.object(o, 0)
	*size = x.size
	if err != nil {
		return nil, err
	}
	return m, nil
}

func typeName(v goja.Value) string {
	switch {
	case v == nil || goja.IsUndefined(v):
		return "undefined"
	case goja.IsNull(v):
		return "null"
	}
	if o, ok := v.(*goja.Object); ok {
		if o.ClassName() == "Array" {
			return "an array"
		}
		return "an object"
	}
	return fmt.Sprintf("%T %s", v.Export(), v.String())
}

func isInterrupt(err error) bool {
	var ie *goja.InterruptedError
	return errors.As(err, &ie)
}

// describe turns a JavaScript error into a message with its line:
// "TypeError: x is undefined at line 3, column 9".
func describe(err error, limit time.Duration) string {
	var ie *goja.InterruptedError
	if errors.As(err, &ie) {
		msg := fmt.Sprint(ie.Value())
		if line := position(ie.Stack()); line != "" {
			msg += " (stopped " + line + ")"
		}
		return msg
	}
	var so *goja.StackOverflowError
	if errors.As(err, &so) {
		return "RangeError: maximum call stack size exceeded" + prefixed(position(so.Stack()))
	}
	var ex *goja.Exception
	if errors.As(err, &ex) {
		msg := "uncaught exception"
		if val := ex.Value(); val != nil {
			msg = val.String()
		}
		return msg + prefixed(position(ex.Stack()))
	}
	return err.Error()
}

func prefixed(s string) string {
	if s == "" {
		return ""
	}
	return " " + s
}

// position names the innermost frame of user code in a stack.
func position(stack []goja.StackFrame) string {
	for _, f := range stack {
		p := f.Position()
		if p.Line > 0 {
			return fmt.Sprintf("at line %d, column %d", p.Line, p.Column)
		}
	}
	return ""
}
