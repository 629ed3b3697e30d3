// Package transform runs user JavaScript transformations on records, with
// github.com/dop251/goja.
//
// A transformation defines transformEvent(record, metadata), which returns
// the record, null to drop it or an array to fan it out, or
// transformBatch(records, metadata), which returns the array of records to
// send; the signatures follow RudderStack's user transformations.
//
// The code is compiled once per version and run on a pool of runtimes, one
// per core. It is sandboxed: goja exposes no filesystem, network, process or
// module loading, and this package adds only log(). Each batch has a time
// limit, enforced by interrupting its runtime. goja has no memory limit: the
// time limit is what bounds a runaway allocation loop, and the built-ins that
// can allocate a huge string in one call (repeat, padStart, padEnd) are
// capped, since a built-in cannot be interrupted.
package transform

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/dop251/goja"
	"github.com/dop251/goja/parser"
)

// Defaults of Options.
const (
	DefaultTimeout        = time.Second
	DefaultMaxOutputBytes = 1 << 20
)

// Options are a transformation's limits.
type Options struct {
	// Timeout is the time one batch may run, all records included.
	Timeout time.Duration
	// MaxOutputBytes caps the JSON size of what one record becomes.
	MaxOutputBytes int
	// Runtimes is the pool size; 0 means GOMAXPROCS.
	Runtimes int
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxOutputBytes <= 0 {
		o.MaxOutputBytes = DefaultMaxOutputBytes
	}
	if o.Runtimes <= 0 {
		o.Runtimes = runtime.GOMAXPROCS(0)
	}
	return o
}

// Version is the version of a transformation's code: a short sha256.
func Version(code string) string {
	sum := sha256.Sum256([]byte(code))
	return hex.EncodeToString(sum[:6])
}

// SyntaxError is code that does not compile. Line and Column start at 1.
type SyntaxError struct {
	File    string
	Line    int
	Column  int
	Message string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%s:%d:%d: SyntaxError: %s", e.File, e.Line, e.Column, e.Message)
}

// Compile checks the syntax of code; name is the file name errors use.
func Compile(name, code string) (*goja.Program, error) {
	ast, err := parser.ParseFile(nil, name, code, 0)
	var list parser.ErrorList
	if errors.As(err, &list) && len(list) > 0 {
		e := list[0]
		return nil, &SyntaxError{File: name, Line: e.Position.Line, Column: e.Position.Column, Message: e.Message}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	prg, err := goja.CompileAST(ast, false)
	var cse *goja.CompilerSyntaxError
	if errors.As(err, &cse) && cse.File != nil {
		p := cse.File.Position(cse.Offset)
		return nil, &SyntaxError{File: name, Line: p.Line, Column: p.Column, Message: cse.Message}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return prg, nil
}

// Transformation is compiled code with its pool of runtimes. It is safe for
// concurrent use.
type Transformation struct {
	name    string
	version string
	prg     *goja.Program
	opts    Options

	mu      sync.Mutex
	created int
	free    chan *vm
}

// New compiles code and starts one runtime, which checks that the code
// defines transformEvent or transformBatch.
func New(name, code string, opts Options) (*Transformation, error) {
	prg, err := Compile(name, code)
	if err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	t := &Transformation{name: name, version: Version(code), prg: prg, opts: opts, free: make(chan *vm, opts.Runtimes)}
	v, err := t.newVM()
	if err != nil {
		return nil, err
	}
	t.created = 1
	t.free <- v
	return t, nil
}

// Version returns the code's version.
func (t *Transformation) Version() string { return t.version }

// Metadata is what the code learns about a record besides its data.
type Metadata struct {
	Sync string
	Run  string
	Op   string
	Key  map[string]any
}

// Input is one record to transform.
type Input struct {
	Data map[string]any
	Meta Metadata
}

// Output is what one input became. Records empty and Err nil means the
// code dropped it. Logs are the lines log() wrote while transforming it.
type Output struct {
	Records []map[string]any
	Err     error
	Logs    []string
}

// ErrTimeout is the error of records cut short, or never reached, because
// their batch ran out of time.
var ErrTimeout = errors.New("time limit exceeded")

// Run transforms a batch. Every input has an output at the same index; a
// record that fails does not stop the others, except that once the batch's
// time limit has passed the records not yet done fail with ErrTimeout.
func (t *Transformation) Run(ctx context.Context, inputs []Input) []Output {
	v, err := t.get(ctx)
	if err != nil {
		return failAll(len(inputs), err)
	}
	defer t.put(v)
	stop := v.arm(ctx, t.opts.Timeout)
	defer stop()
	if v.batch {
		return v.runBatch(inputs)
	}
	return v.runEvents(inputs)
}

func failAll(n int, err error) []Output {
	out := make([]Output, n)
	for i := range out {
		out[i].Err = err
	}
	return out
}

// get takes a free runtime, creating one while the pool is not full.
func (t *Transformation) get(ctx context.Context) (*vm, error) {
	select {
	case v := <-t.free:
		return v, nil
	default:
	}
	t.mu.Lock()
	grow := t.created < t.opts.Runtimes
	if grow {
		t.created++
	}
	t.mu.Unlock()
	if grow {
		v, err := t.newVM()
		if err != nil {
			t.mu.Lock()
			t.created--
			t.mu.Unlock()
		}
		return v, err
	}
	select {
	case v := <-t.free:
		return v, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (t *Transformation) put(v *vm) { t.free <- v }
