package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ebb-etl/ebb/libs/transform"
)

// Transformation is a sync's JavaScript transformation. In ebb.yaml it
// names a file (relative to the YAML file) or holds the code inline; the
// stored config always holds the code itself, because the services that
// run it cannot read the user's disk, and its Version.
type Transformation struct {
	// File is where the code was read from, kept for error messages.
	File string `json:"file,omitempty" yaml:"file"`
	Code string `json:"code,omitempty" yaml:"code"`
	// Version is a short sha256 of Code, set on load; runs record it.
	Version string `json:"version,omitempty" yaml:"-"`
	// TimeoutMS is the time one batch may run (default 1000).
	TimeoutMS int `json:"timeout_ms,omitempty" yaml:"timeout_ms"`
	// MaxOutputBytes caps the JSON a record becomes (default 1 MiB).
	MaxOutputBytes int `json:"max_output_bytes,omitempty" yaml:"max_output_bytes"`
}

// Limits bound what a transformation may do.
const (
	MaxTransformationTimeout = time.Minute
	MaxTransformationOutput  = 64 << 20
)

// Options returns the transformation's limits, with defaults filled in.
func (t *Transformation) Options() transform.Options {
	return transform.Options{
		Timeout:        time.Duration(t.TimeoutMS) * time.Millisecond,
		MaxOutputBytes: t.MaxOutputBytes,
	}
}

// Name is the file name errors and stack traces use.
func (t *Transformation) Name() string {
	if t.File != "" {
		return t.File
	}
	return "transformation.js"
}

// Normalize sets Version from Code. Every path into the config store calls
// it, so a stored version always matches its code.
func (t *Transformation) Normalize() {
	if t != nil {
		t.Version = transform.Version(t.Code)
	}
}

// load reads File, relative to dir, into Code.
func (t *Transformation) load(dir string) error {
	if t.File == "" {
		return nil
	}
	path := t.File
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	code, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading transformation: %w", err)
	}
	t.Code = string(code)
	return nil
}

// validate compiles the code and loads it once, so a syntax error (with
// its line and column) or code defining neither function is refused before
// any run.
func (t *Transformation) validate(r string) error {
	if t.Code == "" {
		return fieldErr(r, "transformation", "needs file or code")
	}
	if t.TimeoutMS < 0 || time.Duration(t.TimeoutMS)*time.Millisecond > MaxTransformationTimeout {
		return fieldErr(r, "transformation.timeout_ms", "must be between 0 (default 1000) and %d", MaxTransformationTimeout.Milliseconds())
	}
	if t.MaxOutputBytes < 0 || t.MaxOutputBytes > MaxTransformationOutput {
		return fieldErr(r, "transformation.max_output_bytes", "must be between 0 (default 1 MiB) and %d", MaxTransformationOutput)
	}
	at := "transformation.code"
	if t.File != "" {
		at = "transformation.file"
	}
	opts := t.Options()
	opts.Runtimes = 1
	if _, err := transform.New(t.Name(), t.Code, opts); err != nil {
		var se *transform.SyntaxError
		if errors.As(err, &se) {
			return &FieldError{Resource: r, Path: at, Err: se}
		}
		return &FieldError{Resource: r, Path: at, Err: err}
	}
	return nil
}
