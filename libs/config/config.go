// Package config declares what users describe: sources, destinations and
// syncs, as written in ebb.yaml and stored in the config KV bucket.
package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
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

// SourceTypes and DestinationTypes list the implemented types. The source and
// destination registries have tests that keep them in step with these lists,
// so validation does not have to link every driver.
var (
	SourceTypes      = []string{"duckdb", "postgres"}
	DestinationTypes = []string{"postgres", "webhook"}
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

// Mapping copies a model column (From) or a constant (Const) to a path in
// the record sent (To, dot-separated for nesting).
type Mapping struct {
	From  string `json:"from,omitempty" yaml:"from"`
	Const any    `json:"const,omitempty" yaml:"const"`
	To    string `json:"to" yaml:"to"`
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

// Validate checks a source on its own.
func (s Source) Validate() error {
	if err := ValidateName("source", s.Name); err != nil {
		return err
	}
	if !slices.Contains(SourceTypes, s.Type) {
		return fmt.Errorf("source %q: unknown type %q (known: %s)", s.Name, s.Type, strings.Join(SourceTypes, ", "))
	}
	return nil
}

// Validate checks a destination on its own.
func (d Destination) Validate() error {
	if err := ValidateName("destination", d.Name); err != nil {
		return err
	}
	if !slices.Contains(DestinationTypes, d.Type) {
		return fmt.Errorf("destination %q: unknown type %q (known: %s)", d.Name, d.Type, strings.Join(DestinationTypes, ", "))
	}
	if _, err := d.Delivery(); err != nil {
		return fmt.Errorf("destination %q: %w", d.Name, err)
	}
	return nil
}

// Validate checks a sync on its own; references to sources and destinations
// are checked by File.Validate and by the admin API against the store.
func (s Sync) Validate() error {
	if err := ValidateName("sync", s.Name); err != nil {
		return err
	}
	if s.Source == "" {
		return fmt.Errorf("sync %q: source is required", s.Name)
	}
	if s.Destination == "" {
		return fmt.Errorf("sync %q: destination is required", s.Name)
	}
	if strings.TrimSpace(s.Model.SQL) == "" {
		return fmt.Errorf("sync %q: model.sql is required", s.Name)
	}
	if len(s.Model.PrimaryKey) == 0 {
		return fmt.Errorf("sync %q: model.primary_key needs at least one column", s.Name)
	}
	for _, c := range s.Model.PrimaryKey {
		if strings.TrimSpace(c) == "" {
			return fmt.Errorf("sync %q: model.primary_key has an empty column name", s.Name)
		}
	}
	if !slices.Contains(Modes, s.Mode) {
		known := make([]string, len(Modes))
		for i, m := range Modes {
			known[i] = string(m)
		}
		return fmt.Errorf("sync %q: unknown mode %q (known: %s)", s.Name, s.Mode, strings.Join(known, ", "))
	}
	for i, m := range s.Mapping {
		if m.To == "" {
			return fmt.Errorf("sync %q: mapping[%d].to is required", s.Name, i)
		}
		if (m.From == "") == (m.Const == nil) {
			return fmt.Errorf("sync %q: mapping[%d] needs exactly one of from or const", s.Name, i)
		}
	}
	if _, err := ParseSchedule(s.Schedule); err != nil {
		return fmt.Errorf("sync %q: %w", s.Name, err)
	}
	return nil
}

// Validate checks every resource and the references between them.
func (f File) Validate() error {
	seen := map[string]bool{}
	sources := map[string]bool{}
	for _, s := range f.Sources {
		if err := s.Validate(); err != nil {
			return err
		}
		if seen["source/"+s.Name] {
			return fmt.Errorf("source %q is declared twice", s.Name)
		}
		seen["source/"+s.Name], sources[s.Name] = true, true
	}
	dests := map[string]bool{}
	for _, d := range f.Destinations {
		if err := d.Validate(); err != nil {
			return err
		}
		if dests[d.Name] {
			return fmt.Errorf("destination %q is declared twice", d.Name)
		}
		dests[d.Name] = true
	}
	syncs := map[string]bool{}
	for _, s := range f.Syncs {
		if err := s.Validate(); err != nil {
			return err
		}
		if syncs[s.Name] {
			return fmt.Errorf("sync %q is declared twice", s.Name)
		}
		syncs[s.Name] = true
		if !sources[s.Source] {
			return fmt.Errorf("sync %q: source %q is not declared", s.Name, s.Source)
		}
		if !dests[s.Destination] {
			return fmt.Errorf("sync %q: destination %q is not declared", s.Name, s.Destination)
		}
	}
	return nil
}
