// Package mapper turns a model row into the record a destination receives,
// following a sync's field mapping.
package mapper

import (
	"fmt"
	"strings"

	"github.com/ebb-etl/ebb/libs/config"
)

// step is one compiled mapping entry.
type step struct {
	to       string
	path     []config.PathStep
	from     string
	value    any                   // a constant
	template []config.TemplatePart // a template, when set
	cast     string
	format   string
	def      any
	omitNull bool
	required bool
}

// Mapper applies a compiled mapping. It is safe for concurrent use.
type Mapper struct {
	steps []step
}

// New compiles a mapping. An empty mapping passes rows through unchanged.
func New(mapping []config.Mapping) (*Mapper, error) {
	m := &Mapper{}
	for i, e := range mapping {
		path, err := config.ParsePath(e.To)
		if err != nil {
			return nil, fmt.Errorf("mapping[%d].to: %w", i, err)
		}
		s := step{to: e.To, path: path, from: e.From, value: e.Const, cast: e.Cast, format: e.Format,
			def: e.Default, omitNull: e.OmitNull, required: e.Required}
		if e.Template != "" {
			if s.template, err = config.ParseTemplate(e.Template); err != nil {
				return nil, fmt.Errorf("mapping[%d].template: %w", i, err)
			}
		}
		if e.Cast == "timestamp" && e.Format != "" && !isNamedFormat(e.Format) && !strings.Contains(e.Format, "2006") {
			return nil, fmt.Errorf("mapping[%d].format: unknown format %q", i, e.Format)
		}
		m.steps = append(m.steps, s)
	}
	return m, nil
}

// Identity reports whether the mapping passes rows through unchanged (no
// mapping was given), so a caller may skip decoding them.
func (m *Mapper) Identity() bool { return len(m.steps) == 0 }

// Map returns the mapped record for a row. A column named in the mapping
// but missing from the row is an error naming it, and so is a required
// field whose value is NULL or a value that does not cast.
func (m *Mapper) Map(row map[string]any) (map[string]any, error) {
	if len(m.steps) == 0 {
		return row, nil
	}
	out := make(map[string]any, len(m.steps))
	for _, s := range m.steps {
		v, err := s.source(row)
		if err != nil {
			return nil, err
		}
		if v == nil {
			v = s.def
		}
		if v != nil && s.cast != "" {
			if v, err = cast(v, s.cast, s.format); err != nil {
				return nil, fmt.Errorf("mapping: %s: %w", s.to, err)
			}
		}
		if v == nil {
			if s.required {
				return nil, fmt.Errorf("mapping: required field %s is NULL%s", s.to, s.fromWhat())
			}
			if s.omitNull {
				continue
			}
		}
		if err := set(out, s.path, v); err != nil {
			return nil, fmt.Errorf("mapping: %s: %w", s.to, err)
		}
	}
	return out, nil
}

// source reads the step's value from the row.
func (s *step) source(row map[string]any) (any, error) {
	switch {
	case s.from != "":
		v, ok := row[s.from]
		if !ok {
			return nil, fmt.Errorf("mapping: column %q is not in the model", s.from)
		}
		return v, nil
	case s.template != nil:
		return render(s.template, row)
	}
	return s.value, nil
}

func (s *step) fromWhat() string {
	if s.from != "" {
		return fmt.Sprintf(" (column %s)", s.from)
	}
	return ""
}

// render fills a template; a NULL column renders as nothing.
func render(parts []config.TemplatePart, row map[string]any) (string, error) {
	var b strings.Builder
	for _, p := range parts {
		if p.Column == "" {
			b.WriteString(p.Text)
			continue
		}
		v, ok := row[p.Column]
		if !ok {
			return "", fmt.Errorf("mapping: template column %q is not in the model", p.Column)
		}
		if v == nil {
			continue
		}
		s, err := toString(v)
		if err != nil {
			return "", err
		}
		b.WriteString(s)
	}
	return b.String(), nil
}

// set puts v at path, creating nested objects and arrays; arrays grow with
// nulls up to the index.
func set(out map[string]any, path []config.PathStep, v any) error {
	if len(path) == 1 {
		out[path[0].Key] = v // the common case, without the walk
		return nil
	}
	_, err := put(out, path, v)
	return err
}

// put returns cur with v placed at path.
func put(cur any, path []config.PathStep, v any) (any, error) {
	if len(path) == 0 {
		return v, nil
	}
	s := path[0]
	if s.Index >= 0 {
		arr, ok := cur.([]any)
		if !ok && cur != nil {
			return nil, fmt.Errorf("[%d] is inside a value that is not an array", s.Index)
		}
		for len(arr) <= s.Index {
			arr = append(arr, nil)
		}
		e, err := put(arr[s.Index], path[1:], v)
		arr[s.Index] = e
		return arr, err
	}
	obj, ok := cur.(map[string]any)
	if !ok && cur != nil {
		return nil, fmt.Errorf("%s is inside a value that is not an object (both a value and an object)", s.Key)
	}
	if obj == nil {
		obj = map[string]any{}
	}
	e, err := put(obj[s.Key], path[1:], v)
	obj[s.Key] = e
	return obj, err
}
