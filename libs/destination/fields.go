package destination

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/ebb-etl/ebb/libs/record"
)

// ID returns the record's identifier for an API: the value of field in the
// record's data, else in its key; with field empty, the key's only column.
// Deletes carry no data, so for them only the key is looked at. The value
// is rendered as text (APIs take ids as strings).
func ID(r record.Record, field string) (string, error) {
	if field == "" {
		if len(r.Key) != 1 {
			return "", fmt.Errorf("the key has %d columns: configure which field is the id", len(r.Key))
		}
		for _, v := range r.Key {
			return idText(v, "the key")
		}
	}
	if v, ok := r.Data[field]; ok && r.Op != record.OpDelete {
		return idText(v, field)
	}
	if v, ok := r.Key[field]; ok {
		return idText(v, field)
	}
	return "", fmt.Errorf("the record has no field %q to use as id", field)
}

func idText(v any, what string) (string, error) {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case json.Number:
		s = x.String()
	case int64:
		s = strconv.FormatInt(x, 10)
	case int:
		s = strconv.Itoa(x)
	case float64:
		s = strconv.FormatFloat(x, 'f', -1, 64)
	case nil:
		return "", fmt.Errorf("%s is null", what)
	default:
		return "", fmt.Errorf("%s is a %T, not a string or number", what, v)
	}
	if strings.TrimSpace(s) == "" {
		return "", fmt.Errorf("%s is empty", what)
	}
	return s, nil
}

// MessageID is a stable identifier of one record's operation in one run,
// for APIs that deduplicate per message: it does not change when the
// delivery splits a batch, unlike the batch ID.
func MessageID(b Batch, r record.Record) string {
	h := sha256.New()
	for _, s := range []string{b.Sync, b.RunID, string(r.Op), string(r.KeyEnc)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	if len(r.KeyEnc) == 0 {
		// Records built without an encoded key (tests, tools) fall back
		// on the key's JSON, which encoding/json writes with sorted keys.
		k, _ := json.Marshal(r.Key)
		h.Write(k)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Template renders "{{ name }}" references against a record: "key" is the
// key's values joined by commas, "key.col" one key column, any other name a
// data field (dot-separated for nesting), then a key column.
type Template struct {
	parts []string // literal, reference, literal, reference, ..., literal
}

var templateRef = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_$.-]+)\s*\}\}`)

// ParseTemplate reads s; an unclosed "{{" is an error.
func ParseTemplate(s string) (*Template, error) {
	t := &Template{}
	last := 0
	for _, m := range templateRef.FindAllStringSubmatchIndex(s, -1) {
		t.parts = append(t.parts, s[last:m[0]], s[m[2]:m[3]])
		last = m[1]
	}
	t.parts = append(t.parts, s[last:])
	for i := 0; i < len(t.parts); i += 2 {
		if strings.Contains(t.parts[i], "{{") {
			return nil, errors.New(`"{{" without a matching "}}" or a name of letters, digits, '_', '.', '-', '$'`)
		}
	}
	return t, nil
}

// Render returns the text for r. A reference to a field the record lacks
// is an error, so no message goes out with a silent hole in it; a null
// renders as "".
func (t *Template) Render(r record.Record, escape func(string) string) (string, error) {
	var b strings.Builder
	for i, p := range t.parts {
		if i%2 == 0 {
			b.WriteString(p)
			continue
		}
		v, err := lookup(r, p)
		if err != nil {
			return "", err
		}
		if escape != nil {
			v = escape(v)
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

func lookup(r record.Record, name string) (string, error) {
	if name == "key" {
		return keyText(r), nil
	}
	if col, ok := strings.CutPrefix(name, "key."); ok {
		if v, ok := r.Key[col]; ok {
			return text(v), nil
		}
		return "", fmt.Errorf("template: the key has no column %q", col)
	}
	if v, ok := path(r.Data, name); ok {
		return text(v), nil
	}
	if v, ok := r.Key[name]; ok {
		return text(v), nil
	}
	return "", fmt.Errorf("template: the record has no field %q", name)
}

// keyText is the key's values in column order, joined by commas.
func keyText(r record.Record) string {
	if len(r.KeyEnc) > 0 {
		return r.KeyEnc.String()
	}
	cols := slices.Sorted(maps.Keys(r.Key))
	vals := make([]string, len(cols))
	for i, c := range cols {
		vals[i] = text(r.Key[c])
	}
	return strings.Join(vals, ",")
}

// path follows a dot-separated path through nested objects.
func path(m map[string]any, p string) (any, bool) {
	var cur any = m
	for _, step := range strings.Split(p, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[step]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func text(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	case map[string]any, []any:
		b, _ := json.Marshal(x)
		return string(b)
	}
	return fmt.Sprint(v)
}
