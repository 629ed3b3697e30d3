package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Casts are the conversions a mapping entry may ask for.
var Casts = []string{"number", "boolean", "string", "timestamp"}

// Timestamp formats of cast: timestamp, besides a Go layout such as
// "2006-01-02 15:04". The default is rfc3339.
var TimestampFormats = []string{"rfc3339", "rfc3339_ms", "date", "unix", "unix_ms"}

// PathStep is one step of a mapping's target path: an object field, or an
// array index when Index >= 0.
type PathStep struct {
	Key   string
	Index int
}

// ParsePath splits a target path such as "items[0].name" or "traits.email".
func ParsePath(s string) ([]PathStep, error) {
	var steps []PathStep
	for part := range strings.SplitSeq(s, ".") {
		name, rest, _ := strings.Cut(part, "[")
		if name == "" {
			return nil, fmt.Errorf("path %q has an empty field name", s)
		}
		steps = append(steps, PathStep{Key: name, Index: -1})
		for rest != "" {
			num, after, ok := strings.Cut(rest, "]")
			i, err := strconv.Atoi(num)
			if !ok || err != nil || i < 0 || i > 1000 {
				return nil, fmt.Errorf("path %q has a bad index [%s]: use [0] to [1000]", s, num)
			}
			steps = append(steps, PathStep{Index: i})
			if after != "" && !strings.HasPrefix(after, "[") {
				return nil, fmt.Errorf("path %q: want . or [ after ]", s)
			}
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return steps, nil
}

// TemplatePart is literal text, or a column when Column is set.
type TemplatePart struct {
	Text   string
	Column string
}

// ParseTemplate splits "{{ first_name }} {{ last_name }}" into text and
// columns.
func ParseTemplate(s string) ([]TemplatePart, error) {
	var parts []TemplatePart
	for s != "" {
		open := strings.Index(s, "{{")
		if open < 0 {
			parts = append(parts, TemplatePart{Text: s})
			break
		}
		if open > 0 {
			parts = append(parts, TemplatePart{Text: s[:open]})
		}
		end := strings.Index(s[open:], "}}")
		if end < 0 {
			return nil, fmt.Errorf("template has {{ without }}")
		}
		col := strings.TrimSpace(s[open+2 : open+end])
		if col == "" || strings.ContainsAny(col, "{} ") {
			return nil, fmt.Errorf("template has a bad column name %q", col)
		}
		parts = append(parts, TemplatePart{Column: col})
		s = s[open+end+2:]
	}
	return parts, nil
}

// validate checks one mapping entry; path is "mapping[i]".
func (m Mapping) validate(r, path string) error {
	sources := 0
	for _, set := range []bool{m.From != "", m.Const != nil, m.Template != ""} {
		if set {
			sources++
		}
	}
	switch {
	case m.From != "" && m.Const != nil:
		return fieldErr(r, path, "has both from and const; use one")
	case sources > 1:
		return fieldErr(r, path, "has template and from or const; use one")
	case sources == 0:
		return fieldErr(r, path, "needs from, const or template")
	case m.To == "":
		return fieldErr(r, path+".to", "is required")
	}
	if _, err := ParsePath(m.To); err != nil {
		return &FieldError{Resource: r, Path: path + ".to", Err: err}
	}
	if m.Template != "" {
		if _, err := ParseTemplate(m.Template); err != nil {
			return &FieldError{Resource: r, Path: path + ".template", Err: err}
		}
	}
	if m.Cast != "" && !slices.Contains(Casts, m.Cast) {
		return fieldErr(r, path+".cast", "unknown cast %q (known: %s)", m.Cast, strings.Join(Casts, ", "))
	}
	if m.Format != "" {
		if m.Cast != "timestamp" {
			return fieldErr(r, path+".format", "needs cast: timestamp")
		}
		if !slices.Contains(TimestampFormats, m.Format) && !strings.Contains(m.Format, "2006") {
			return fieldErr(r, path+".format", "unknown format %q (known: %s, or a Go layout such as 2006-01-02)",
				m.Format, strings.Join(TimestampFormats, ", "))
		}
	}
	return nil
}

// CheckColumns checks that every column the sync names (primary key,
// mapping from, template columns) is one of the model's columns, and names
// the first that is not.
func (s Sync) CheckColumns(columns []string) error {
	r := resource(KindSync, s.Name)
	known := func(c string) bool { return slices.Contains(columns, c) }
	unknown := func(path, c string) error {
		return fieldErr(r, path, "unknown column %q: the model returns %s", c, strings.Join(columns, ", "))
	}
	for i, c := range s.Model.PrimaryKey {
		if !known(c) {
			return unknown(fmt.Sprintf("model.primary_key[%d]", i), c)
		}
	}
	for i, m := range s.Mapping {
		path := fmt.Sprintf("mapping[%d]", i)
		if m.From != "" && !known(m.From) {
			return unknown(path+".from", m.From)
		}
		parts, _ := ParseTemplate(m.Template)
		for _, p := range parts {
			if p.Column != "" && !known(p.Column) {
				return unknown(path+".template", p.Column)
			}
		}
	}
	return nil
}
