package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// LoadFile reads and parses an ebb.yaml; errors name the file as path.
func LoadFile(path string) (File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return File{}, fmt.Errorf("reading config file: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates an ebb.yaml. name is the file name used in
// errors, which read "name:line:col: field.path: problem"; an error about a
// field wraps a *FieldError whose Path is relative to the file.
// Unknown fields are errors, and ${VAR} references are kept as written:
// Expand resolves them where the config is used.
func Parse(name string, data []byte) (File, error) {
	empty := fmt.Errorf("%s: file is empty: declare sources, destinations and syncs", name)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return File{}, empty
	} else if err != nil {
		return File{}, syntaxError(name, err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		return File{}, fmt.Errorf("%s:%d: only one YAML document is allowed", name, next.Line)
	} else if !errors.Is(err, io.EOF) {
		return File{}, syntaxError(name, err)
	}
	if len(doc.Content) == 0 || doc.Content[0].ShortTag() == "!!null" {
		return File{}, empty
	}

	d := &decoder{file: name, nodes: map[string]*yaml.Node{}}
	var f File
	root := doc.Content[0]
	d.nodes[""] = root
	err := d.object(root, "", fields{
		"sources": d.list(func(n *yaml.Node, path string) error {
			f.Sources = append(f.Sources, Source{})
			r := &f.Sources[len(f.Sources)-1]
			return d.object(n, path, fields{
				"name":   d.str(&r.Name),
				"type":   d.str(&r.Type),
				"config": d.config(&r.Config),
			})
		}),
		"destinations": d.list(func(n *yaml.Node, path string) error {
			f.Destinations = append(f.Destinations, Destination{})
			r := &f.Destinations[len(f.Destinations)-1]
			return d.object(n, path, fields{
				"name":   d.str(&r.Name),
				"type":   d.str(&r.Type),
				"config": d.config(&r.Config),
			})
		}),
		"syncs": d.list(func(n *yaml.Node, path string) error {
			f.Syncs = append(f.Syncs, Sync{})
			return d.sync(n, path, &f.Syncs[len(f.Syncs)-1])
		}),
	})
	if err != nil {
		return File{}, err
	}
	if err := f.Validate(); err != nil {
		return File{}, d.locate(err)
	}
	return f, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// syntaxError turns "yaml: line 3: problem" into "name:3: problem".
func syntaxError(name string, err error) error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("%s:%s: %s", name, m[1], msg[len(m[0]):])
	}
	return fmt.Errorf("%s: %s", name, strings.TrimPrefix(msg, "yaml: "))
}

// posError is a *FieldError placed in a file.
type posError struct {
	pos string // "name:line:col"
	fe  *FieldError
}

func (e *posError) Error() string {
	if e.fe.Path == "" {
		return e.pos + ": " + e.fe.Err.Error()
	}
	return e.pos + ": " + e.fe.Path + ": " + e.fe.Err.Error()
}

func (e *posError) Unwrap() error { return e.fe }

// maxAliases bounds the aliases followed, and maxValues the values decoded
// with every alias expanded, against "billion laughs" documents: a few
// aliases of aliases can stand for billions of values (a 42 KB file took
// 51 s and 3.1 GB when only aliases were counted). A config of a thousand
// syncs is well under 100,000 values.
const (
	maxAliases = 10000
	maxValues  = 200_000
)

// decoder walks a yaml.Node tree into a File, remembering the node of every
// field path so that validation errors can be placed.
type decoder struct {
	file    string
	nodes   map[string]*yaml.Node
	aliases int
	values  int // values decoded so far, aliases expanded
}

// field decodes the value node n, found at path.
type field func(n *yaml.Node, path string) error

// fields are the known keys of a mapping.
type fields map[string]field

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) error {
	return &posError{
		pos: fmt.Sprintf("%s:%d:%d", d.file, n.Line, n.Column),
		fe:  fieldErr("", path, format, args...),
	}
}

// locate places a validation error at the node of its path, or of the
// nearest enclosing path that is in the file.
func (d *decoder) locate(err error) error {
	var fe *FieldError
	if !errors.As(err, &fe) {
		return fmt.Errorf("%s: %w", d.file, err)
	}
	p := fe.Path
	for {
		if n, ok := d.nodes[p]; ok {
			return &posError{pos: fmt.Sprintf("%s:%d:%d", d.file, n.Line, n.Column), fe: fe}
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			p = ""
		} else {
			p = p[:i]
		}
	}
}

// resolve follows an alias to its anchored node.
func (d *decoder) resolve(n *yaml.Node, path string) (*yaml.Node, error) {
	if d.values++; d.values > maxValues {
		return nil, d.errorf(n, path, "the file stands for more than %d values with its aliases expanded", maxValues)
	}
	for n.Kind == yaml.AliasNode {
		if d.aliases++; d.aliases > maxAliases {
			return nil, d.errorf(n, path, "too many aliases")
		}
		n = n.Alias
	}
	return n, nil
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// pairs calls fn for each key and value of the mapping n, refusing merge
// keys and keys set twice.
func (d *decoder) pairs(n *yaml.Node, path string, fn func(k, v *yaml.Node, path string) error) error {
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := join(path, k.Value)
		switch {
		case k.Kind != yaml.ScalarNode:
			return d.errorf(k, path, "keys must be strings, got %s", describe(k))
		case k.ShortTag() == "!!merge":
			return d.errorf(k, path, "merge keys (<<) are not supported")
		case seen[k.Value]:
			return d.errorf(k, p, "is set twice")
		}
		seen[k.Value] = true
		d.nodes[p] = v
		if err := fn(k, v, p); err != nil {
			return err
		}
	}
	return nil
}

// object decodes a mapping whose keys must all be known; null is empty.
func (d *decoder) object(n *yaml.Node, path string, fs fields) error {
	n, err := d.resolve(n, path)
	if err != nil || isNull(n) {
		return err
	}
	if n.Kind != yaml.MappingNode {
		return d.errorf(n, path, "want a mapping, got %s", describe(n))
	}
	return d.pairs(n, path, func(k, v *yaml.Node, p string) error {
		fn, ok := fs[k.Value]
		if !ok {
			known := make([]string, 0, len(fs))
			for name := range fs {
				known = append(known, name)
			}
			slices.Sort(known)
			return d.errorf(k, p, "unknown field (known: %s)", strings.Join(known, ", "))
		}
		return fn(v, p)
	})
}

// list decodes a sequence, each item with item; null is empty.
func (d *decoder) list(item field) field {
	return func(n *yaml.Node, path string) error {
		n, err := d.resolve(n, path)
		if err != nil || isNull(n) {
			return err
		}
		if n.Kind != yaml.SequenceNode {
			return d.errorf(n, path, "want a list, got %s", describe(n))
		}
		for i, e := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.nodes[p] = e
			if err := item(e, p); err != nil {
				return err
			}
		}
		return nil
	}
}

// str decodes a scalar as written; null leaves dst empty.
func (d *decoder) str(dst *string) field {
	return func(n *yaml.Node, path string) error {
		n, err := d.resolve(n, path)
		if err != nil || isNull(n) {
			return err
		}
		if n.Kind != yaml.ScalarNode {
			return d.errorf(n, path, "want a string, got %s", describe(n))
		}
		*dst = n.Value
		return nil
	}
}

// integer decodes a whole number; null leaves dst unchanged.
func (d *decoder) integer(dst *int) field {
	return func(n *yaml.Node, path string) error {
		v, err := d.value(n, path)
		if err != nil || v == nil {
			return err
		}
		i, ok := v.(int)
		if !ok {
			return d.errorf(n, path, "want a whole number, got %s", describe(n))
		}
		*dst = i
		return nil
	}
}

func (d *decoder) strs(dst *[]string) field {
	return d.list(func(n *yaml.Node, path string) error {
		*dst = append(*dst, "")
		return d.str(&(*dst)[len(*dst)-1])(n, path)
	})
}

// config decodes a free-form mapping, such as a source's config.
func (d *decoder) config(dst *map[string]any) field {
	return func(n *yaml.Node, path string) error {
		v, err := d.value(n, path)
		if err != nil || v == nil {
			return err
		}
		m, ok := v.(map[string]any)
		if !ok {
			return d.errorf(n, path, "want a mapping, got %s", describe(n))
		}
		*dst = m
		return nil
	}
}

// value decodes any node into JSON-like values: map[string]any, []any,
// string, int, float64, bool or nil.
func (d *decoder) value(n *yaml.Node, path string) (any, error) {
	n, err := d.resolve(n, path)
	if err != nil {
		return nil, err
	}
	d.nodes[path] = n
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		err := d.pairs(n, path, func(k, v *yaml.Node, p string) error {
			e, err := d.value(v, p)
			m[k.Value] = e
			return err
		})
		return m, err
	case yaml.SequenceNode:
		s := make([]any, len(n.Content))
		for i, e := range n.Content {
			var err error
			if s[i], err = d.value(e, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return nil, err
			}
		}
		return s, nil
	default:
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, d.errorf(n, path, "%v", err)
		}
		switch x := v.(type) {
		case time.Time:
			return n.Value, nil // a timestamp, kept as written
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, d.errorf(n, path, "%s is not a finite number", n.Value)
			}
		}
		return v, nil
	}
}

func (d *decoder) sync(n *yaml.Node, path string, s *Sync) error {
	return d.object(n, path, fields{
		"name":        d.str(&s.Name),
		"source":      d.str(&s.Source),
		"destination": d.str(&s.Destination),
		"model": func(n *yaml.Node, path string) error {
			return d.object(n, path, fields{
				"sql":         d.str(&s.Model.SQL),
				"primary_key": d.strs(&s.Model.PrimaryKey),
			})
		},
		"mode": d.str((*string)(&s.Mode)),
		"mapping": d.list(func(n *yaml.Node, path string) error {
			s.Mapping = append(s.Mapping, Mapping{})
			m := &s.Mapping[len(s.Mapping)-1]
			return d.object(n, path, fields{
				"from":     d.str(&m.From),
				"to":       d.str(&m.To),
				"template": d.str(&m.Template),
				"cast":     d.str(&m.Cast),
				"format":   d.str(&m.Format),
				"const": func(n *yaml.Node, path string) (err error) {
					m.Const, err = d.value(n, path)
					return err
				},
				"default": func(n *yaml.Node, path string) (err error) {
					m.Default, err = d.value(n, path)
					return err
				},
				"omit_null": d.boolean(&m.OmitNull),
				"required":  d.boolean(&m.Required),
			})
		}),
		"transformation":   d.transformation(&s.Transformation),
		"schedule":         d.str(&s.Schedule),
		"quarantine_after": d.integer(&s.QuarantineAfter),
		"engine":           d.str((*string)(&s.Engine)),
		"keep_values":      d.boolean(&s.KeepValues),
		"max_record_bytes": d.int64(&s.MaxRecordBytes),
		"max_run_duration": d.str(&s.MaxRunDuration),
		"safety": func(n *yaml.Node, path string) error {
			return d.object(n, path, fields{
				"max_delete_share": d.numberPtr(&s.Safety.MaxDeleteShare),
				"max_change_share": d.numberPtr(&s.Safety.MaxChangeShare),
				"min_rows":         d.int64Ptr(&s.Safety.MinRows),
			})
		},
		"alerts": d.list(func(n *yaml.Node, path string) error {
			s.Alerts = append(s.Alerts, Alert{})
			a := &s.Alerts[len(s.Alerts)-1]
			return d.object(n, path, fields{
				"on":      d.str(&a.On),
				"share":   d.number(&a.Share),
				"after":   d.str(&a.After),
				"webhook": d.str(&a.Webhook),
				"slack":   d.str(&a.Slack),
			})
		}),
	})
}

// number decodes a number, whole or not; null leaves dst unchanged.
func (d *decoder) number(dst *float64) field {
	return func(n *yaml.Node, path string) error {
		v, err := d.value(n, path)
		if err != nil || v == nil {
			return err
		}
		switch x := v.(type) {
		case int:
			*dst = float64(x)
		case float64:
			*dst = x
		default:
			return d.errorf(n, path, "want a number, got %s", describe(n))
		}
		return nil
	}
}

// numberPtr is number for an optional setting: set only when present.
func (d *decoder) numberPtr(dst **float64) field {
	return func(n *yaml.Node, path string) error {
		if v, err := d.value(n, path); err != nil || v == nil {
			return err
		}
		var f float64
		if err := d.number(&f)(n, path); err != nil {
			return err
		}
		*dst = &f
		return nil
	}
}

// int64 decodes a whole number; null leaves dst unchanged.
func (d *decoder) int64(dst *int64) field {
	return func(n *yaml.Node, path string) error {
		var i int
		if err := d.integer(&i)(n, path); err != nil {
			return err
		}
		if v, _ := d.value(n, path); v != nil {
			*dst = int64(i)
		}
		return nil
	}
}

// int64Ptr decodes an optional whole number: set only when present.
func (d *decoder) int64Ptr(dst **int64) field {
	return func(n *yaml.Node, path string) error {
		if v, err := d.value(n, path); err != nil || v == nil {
			return err
		}
		var i int
		if err := d.integer(&i)(n, path); err != nil {
			return err
		}
		v := int64(i)
		*dst = &v
		return nil
	}
}

// boolean decodes true or false; null leaves dst unchanged.
func (d *decoder) boolean(dst *bool) field {
	return func(n *yaml.Node, path string) error {
		v, err := d.value(n, path)
		if err != nil || v == nil {
			return err
		}
		b, ok := v.(bool)
		if !ok {
			return d.errorf(n, path, "want true or false, got %s", describe(n))
		}
		*dst = b
		return nil
	}
}

// transformation decodes a sync's transformation and reads its file,
// relative to the YAML file, into the code: the stored config carries the
// code itself.
func (d *decoder) transformation(dst **Transformation) field {
	return func(n *yaml.Node, path string) error {
		n, err := d.resolve(n, path)
		if err != nil || isNull(n) {
			return err
		}
		t := &Transformation{}
		err = d.object(n, path, fields{
			"file":             d.str(&t.File),
			"code":             d.str(&t.Code),
			"timeout_ms":       d.integer(&t.TimeoutMS),
			"max_output_bytes": d.integer(&t.MaxOutputBytes),
		})
		if err != nil {
			return err
		}
		if t.File != "" && t.Code != "" {
			return d.errorf(n, path, "has both file and code; use one")
		}
		if err := t.load(filepath.Dir(d.file)); err != nil {
			return d.errorf(d.nodes[path+".file"], path+".file", "%v", err)
		}
		t.Normalize()
		*dst = t
		return nil
	}
}
