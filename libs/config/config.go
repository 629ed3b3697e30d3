// Package config declares what users describe: sources, destinations and
// syncs, as written in ebb.yaml and stored in the config KV bucket.
package config

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Mode says which changes a sync sends.
type Mode string

const (
	ModeUpsert Mode = "upsert" // adds and changes
	ModeUpdate Mode = "update" // changes only
	ModeInsert Mode = "insert" // adds only
	ModeMirror Mode = "mirror" // adds, changes and deletes
	ModeAll    Mode = "all"    // every row of the model, every run
)

// Modes lists the known modes, in the order error messages show them.
var Modes = []Mode{ModeUpsert, ModeUpdate, ModeInsert, ModeMirror, ModeAll}

// Engine says how a sync's runs diff the model against the last snapshot.
type Engine string

const (
	// EngineAuto (the default) uses the local engine for Postgres, where
	// it is the faster, and for the other sources the warehouse engine
	// when their credentials can write to the snapshot schema, the local
	// engine otherwise.
	EngineAuto Engine = "auto"
	// EngineLocal keeps snapshots in the object store and diffs there:
	// read-only credentials suffice.
	EngineLocal Engine = "local"
	// EngineWarehouse keeps snapshots as tables in the source's snapshot
	// schema and diffs in SQL; a run fails when it cannot.
	EngineWarehouse Engine = "warehouse"
)

// Engines lists the known engines, in the order error messages show them.
var Engines = []Engine{EngineAuto, EngineLocal, EngineWarehouse}

// SourceTypes and DestinationTypes list the implemented types. The source and
// destination registries have tests that keep them in step with these lists,
// so validation does not have to link every driver.
var (
	SourceTypes      = []string{"bigquery", "duckdb", "postgres", "redshift", "snowflake"}
	DestinationTypes = []string{"amplitude", "braze", "hubspot", "mixpanel", "nats", "postgres", "salesforce", "segment", "slack", "webhook"}
)

// Source is a warehouse connection.
type Source struct {
	Name   string         `json:"name" yaml:"name"`
	Type   string         `json:"type" yaml:"type"`
	Config map[string]any `json:"config,omitempty" yaml:"config"`
}

// Destination is a tool Ebb writes to. Besides its type's own fields, every
// destination accepts the delivery settings read by Delivery().
type Destination struct {
	Name   string         `json:"name" yaml:"name"`
	Type   string         `json:"type" yaml:"type"`
	Config map[string]any `json:"config,omitempty" yaml:"config"`
}

// Model is the SQL whose rows a sync sends, and its primary key.
type Model struct {
	SQL        string   `json:"sql" yaml:"sql"`
	PrimaryKey []string `json:"primary_key" yaml:"primary_key"`
}

// Mapping puts a value in the record sent, at To: a path with dots for
// nesting and [i] for array items ("items[0].name"). The value is a model
// column (From), a constant (Const) or a template of columns (Template,
// "{{ first_name }} {{ last_name }}"); see mapping.go for the rest.
type Mapping struct {
	From     string `json:"from,omitempty" yaml:"from"`
	Const    any    `json:"const,omitempty" yaml:"const"`
	Template string `json:"template,omitempty" yaml:"template"`
	To       string `json:"to" yaml:"to"`
	// Cast converts the value: number, boolean, string or timestamp.
	Cast string `json:"cast,omitempty" yaml:"cast"`
	// Format is the timestamp format of cast: timestamp (see mapping.go).
	Format string `json:"format,omitempty" yaml:"format"`
	// Default replaces a NULL value.
	Default any `json:"default,omitempty" yaml:"default"`
	// OmitNull leaves the field out when its value is NULL.
	OmitNull bool `json:"omit_null,omitempty" yaml:"omit_null"`
	// Required fails the record, naming the field, when its value is NULL.
	Required bool `json:"required,omitempty" yaml:"required"`
}

// Sync sends a model's changes to a destination.
type Sync struct {
	Name        string    `json:"name" yaml:"name"`
	Source      string    `json:"source" yaml:"source"`
	Destination string    `json:"destination" yaml:"destination"`
	Model       Model     `json:"model" yaml:"model"`
	Mode        Mode      `json:"mode" yaml:"mode"`
	Mapping     []Mapping `json:"mapping,omitempty" yaml:"mapping"`
	// Schedule is "manual", "@every <duration>" or a cron expression.
	Schedule string `json:"schedule,omitempty" yaml:"schedule"`
	// QuarantineAfter is how many runs in a row a record may fail before it
	// is quarantined: no longer sent automatically until `ebb sync retry`.
	// 0 means the default (DefaultQuarantineAfter); a negative value never
	// quarantines.
	QuarantineAfter int `json:"quarantine_after,omitempty" yaml:"quarantine_after"`
	// Safety stops a run for approval before it sends an unusual change.
	Safety Safety `json:"safety,omitzero" yaml:"safety"`
	// KeepValues keeps the last payload sent for each key, so `ebb sync
	// plan` can show which fields of a changed record change, old → new.
	// It costs a KV write per record delivered.
	KeepValues bool `json:"keep_values,omitempty" yaml:"keep_values"`
	// Alerts notify people when a run fails, fails many records, sees the
	// model's size swing, or runs long.
	Alerts []Alert `json:"alerts,omitempty" yaml:"alerts"`
	// Transformation is optional JavaScript run on each mapped record.
	Transformation *Transformation `json:"transformation,omitempty" yaml:"transformation"`
	// Engine is the diff engine: auto (when empty), local or warehouse.
	Engine Engine `json:"engine,omitempty" yaml:"engine"`
	// MaxRecordBytes bounds one record: a larger one fails alone, naming
	// its key and size, and the rest of the run goes on. 0 means the
	// default (DefaultMaxRecordBytes). Records larger than a NATS message
	// travel through the object store.
	MaxRecordBytes int64 `json:"max_record_bytes,omitempty" yaml:"max_record_bytes"`
	// MaxRunDuration bounds a run, pauses and approvals included: a run
	// older than this fails with that reason. Empty means the default
	// (DefaultMaxRunDuration).
	MaxRunDuration string `json:"max_run_duration,omitempty" yaml:"max_run_duration"`
}

// Defaults of MaxRecordBytes and MaxRunDuration.
const (
	DefaultMaxRecordBytes = 64 << 20
	DefaultMaxRunDuration = 24 * time.Hour
)

// RecordLimit returns the largest record the sync sends, in bytes of its
// JSON.
func (s Sync) RecordLimit() int64 {
	if s.MaxRecordBytes <= 0 {
		return DefaultMaxRecordBytes
	}
	return s.MaxRecordBytes
}

// RunLimit returns how long a run of the sync may last.
func (s Sync) RunLimit() time.Duration {
	d, err := time.ParseDuration(s.MaxRunDuration)
	if err != nil || d <= 0 {
		return DefaultMaxRunDuration
	}
	return d
}

// DiffEngine returns the sync's engine, EngineAuto when unset.
func (s Sync) DiffEngine() Engine {
	if s.Engine == "" {
		return EngineAuto
	}
	return s.Engine
}

// DefaultQuarantineAfter is the default of Sync.QuarantineAfter.
const DefaultQuarantineAfter = 3

// Quarantine returns how many failed runs in a row quarantine a record, or
// 0 when the sync never quarantines.
func (s Sync) Quarantine() int {
	switch {
	case s.QuarantineAfter < 0:
		return 0
	case s.QuarantineAfter == 0:
		return DefaultQuarantineAfter
	}
	return s.QuarantineAfter
}

// File is a whole ebb.yaml.
type File struct {
	Sources      []Source      `json:"sources,omitempty" yaml:"sources"`
	Destinations []Destination `json:"destinations,omitempty" yaml:"destinations"`
	Syncs        []Sync        `json:"syncs,omitempty" yaml:"syncs"`
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidateName checks a resource name: names become NATS subject tokens and
// KV keys, so they are limited to letters, digits, '_' and '-'.
func ValidateName(kind, name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("%s name %q is invalid: use 1-64 letters, digits, '_' or '-'", kind, name)
	}
	return nil
}

// FieldError is a validation error about one field. Path is relative to
// what was validated: "mapping[2].to" from Sync.Validate,
// "syncs[0].mapping[2].to" from File.Validate. Parse uses it to point at the
// line of the field.
type FieldError struct {
	// Resource names the resource at fault, such as `sync "customers"`, for
	// messages read without the file; empty when the name itself is at fault.
	Resource string
	Path     string
	Err      error
}

func (e *FieldError) Error() string {
	if e.Resource == "" {
		return e.Path + ": " + e.Err.Error()
	}
	return e.Resource + ": " + e.Path + ": " + e.Err.Error()
}

func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(resource, path, format string, args ...any) *FieldError {
	return &FieldError{Resource: resource, Path: path, Err: fmt.Errorf(format, args...)}
}

// within returns err with its path made relative to prefix, such as
// "syncs[0]"; errors that are not *FieldError are returned as they are.
func within(prefix string, err error) error {
	var fe *FieldError
	if !errors.As(err, &fe) {
		return err
	}
	out := *fe
	out.Path = prefix + "." + fe.Path
	return &out
}

func resource(kind Kind, name string) string { return fmt.Sprintf("%s %q", kind, name) }

// Validate checks a source on its own.
func (s Source) Validate() error {
	if err := ValidateName("source", s.Name); err != nil {
		return &FieldError{Path: "name", Err: err}
	}
	if !slices.Contains(SourceTypes, s.Type) {
		return fieldErr(resource(KindSource, s.Name), "type", "unknown source type %q (known: %s)", s.Type, strings.Join(SourceTypes, ", "))
	}
	return nil
}

// Validate checks a destination on its own.
func (d Destination) Validate() error {
	if err := ValidateName("destination", d.Name); err != nil {
		return &FieldError{Path: "name", Err: err}
	}
	if !slices.Contains(DestinationTypes, d.Type) {
		return fieldErr(resource(KindDestination, d.Name), "type", "unknown destination type %q (known: %s)", d.Type, strings.Join(DestinationTypes, ", "))
	}
	if _, err := d.Delivery(); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			out := *fe
			out.Resource = resource(KindDestination, d.Name)
			return &out
		}
		return fmt.Errorf("%s: %w", resource(KindDestination, d.Name), err)
	}
	return d.checkURLs()
}

// Validate checks a sync on its own; references to sources and destinations
// are checked by File.Validate and by the admin API against the store.
func (s Sync) Validate() error {
	if err := ValidateName("sync", s.Name); err != nil {
		return &FieldError{Path: "name", Err: err}
	}
	r := resource(KindSync, s.Name)
	if s.Source == "" {
		return fieldErr(r, "source", "is required")
	}
	if s.Destination == "" {
		return fieldErr(r, "destination", "is required")
	}
	if strings.TrimSpace(s.Model.SQL) == "" {
		return fieldErr(r, "model.sql", "is required")
	}
	if len(s.Model.PrimaryKey) == 0 {
		return fieldErr(r, "model.primary_key", "needs at least one column")
	}
	for i, c := range s.Model.PrimaryKey {
		if strings.TrimSpace(c) == "" {
			return fieldErr(r, fmt.Sprintf("model.primary_key[%d]", i), "is an empty column name")
		}
	}
	if !slices.Contains(Modes, s.Mode) {
		known := make([]string, len(Modes))
		for i, m := range Modes {
			known[i] = string(m)
		}
		if s.Mode == "" {
			return fieldErr(r, "mode", "is required (known: %s)", strings.Join(known, ", "))
		}
		return fieldErr(r, "mode", "unknown mode %q (known: %s)", s.Mode, strings.Join(known, ", "))
	}
	if s.Engine != "" && !slices.Contains(Engines, s.Engine) {
		known := make([]string, len(Engines))
		for i, e := range Engines {
			known[i] = string(e)
		}
		return fieldErr(r, "engine", "unknown engine %q (known: %s)", s.Engine, strings.Join(known, ", "))
	}
	if s.MaxRecordBytes < 0 || s.MaxRecordBytes > 1<<30 {
		return fieldErr(r, "max_record_bytes", "%d is out of range [1, 1073741824] (0 or unset: %d)", s.MaxRecordBytes, DefaultMaxRecordBytes)
	}
	if s.MaxRunDuration != "" {
		if d, err := time.ParseDuration(s.MaxRunDuration); err != nil || d < time.Second {
			return fieldErr(r, "max_run_duration", "%q is not a positive duration such as \"24h\"", s.MaxRunDuration)
		}
	}
	if err := s.Safety.validate(r); err != nil {
		return err
	}
	if err := validateAlerts(r, s.Alerts); err != nil {
		return err
	}
	if s.Transformation != nil {
		if err := s.Transformation.validate(r); err != nil {
			return err
		}
	}
	for i, m := range s.Mapping {
		if err := m.validate(r, fmt.Sprintf("mapping[%d]", i)); err != nil {
			return err
		}
	}
	if _, err := ParseSchedule(s.Schedule); err != nil {
		return &FieldError{Resource: r, Path: "schedule", Err: err}
	}
	return nil
}

// Validate checks every resource and the references between them: a sync
// may only name sources and destinations declared in the same file. The
// admin API validates the desired state this way before applying a Plan.
func (f File) Validate() error {
	sources := map[string]int{}
	for i, s := range f.Sources {
		at := fmt.Sprintf("sources[%d]", i)
		if err := s.Validate(); err != nil {
			return within(at, err)
		}
		if j, dup := sources[s.Name]; dup {
			return fieldErr("", at+".name", "source %q is declared twice (also sources[%d])", s.Name, j)
		}
		sources[s.Name] = i
	}
	dests := map[string]int{}
	for i, d := range f.Destinations {
		at := fmt.Sprintf("destinations[%d]", i)
		if err := d.Validate(); err != nil {
			return within(at, err)
		}
		if j, dup := dests[d.Name]; dup {
			return fieldErr("", at+".name", "destination %q is declared twice (also destinations[%d])", d.Name, j)
		}
		dests[d.Name] = i
	}
	syncs := map[string]int{}
	for i, s := range f.Syncs {
		at := fmt.Sprintf("syncs[%d]", i)
		if err := s.Validate(); err != nil {
			return within(at, err)
		}
		if j, dup := syncs[s.Name]; dup {
			return fieldErr("", at+".name", "sync %q is declared twice (also syncs[%d])", s.Name, j)
		}
		syncs[s.Name] = i
		if _, ok := sources[s.Source]; !ok {
			return fieldErr(resource(KindSync, s.Name), at+".source", "source %q is not declared", s.Source)
		}
		if _, ok := dests[s.Destination]; !ok {
			return fieldErr(resource(KindSync, s.Name), at+".destination", "destination %q is not declared", s.Destination)
		}
	}
	return nil
}
