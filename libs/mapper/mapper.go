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
	from  string
	value any
	path  []string
}

// Mapper applies a compiled mapping. It is safe for concurrent use.
type Mapper struct {
	steps []step
}

// New compiles a mapping. An empty mapping passes rows through unchanged.
func New(mapping []config.Mapping) (*Mapper, error) {
	m := &Mapper{}
	for i, e := range mapping {
		path := strings.Split(e.To, ".")
		for _, p := range path {
			if p == "" {
				return nil, fmt.Errorf("mapping[%d].to %q has an empty path segment", i, e.To)
			}
		}
		m.steps = append(m.steps, step{from: e.From, value: e.Const, path: path})
	}
	return m, nil
}

// Map returns the mapped record for a row. A column named in the mapping
// but missing from the row is an error naming it.
func (m *Mapper) Map(row map[string]any) (map[string]any, error) {
	if len(m.steps) == 0 {
		return row, nil
	}
	out := make(map[string]any, len(m.steps))
	for _, s := range m.steps {
		v := s.value
		if s.from != "" {
			var ok bool
			if v, ok = row[s.from]; !ok {
				return nil, fmt.Errorf("mapping: column %q is not in the model", s.from)
			}
		}
		if err := set(out, s.path, v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// set puts v at path, creating nested objects.
func set(obj map[string]any, path []string, v any) error {
	for i, p := range path[:len(path)-1] {
		next, ok := obj[p]
		if !ok {
			child := map[string]any{}
			obj[p] = child
			obj = child
			continue
		}
		child, ok := next.(map[string]any)
		if !ok {
			return fmt.Errorf("mapping: %s is both a value and an object", strings.Join(path[:i+1], "."))
		}
		obj = child
	}
	obj[path[len(path)-1]] = v
	return nil
}
