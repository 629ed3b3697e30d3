package destination

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/ebb-etl/ebb/libs/record"
)

// Field types a Spec declares.
const (
	TypeString = "string"
	TypeURL    = "url" // an absolute http:// or https:// URL
	TypeBool   = "bool"
	TypeEnum   = "enum" // a string, one of Field.Enum
)

// Field is one setting of a destination type's config.
type Field struct {
	Name     string
	Type     string
	Required bool
	// Secret fields are never quoted in errors: Open adds their values to
	// what the destination redacts from the answers it reports.
	Secret  bool
	Default any
	Enum    []string
	Doc     string
}

// Spec declares a destination type's own config fields (besides the
// delivery settings every type accepts, see config.Destination.Delivery)
// and the ops it can send.
type Spec struct {
	Type   string
	Fields []Field
	Ops    []record.Op
}

// Values are a config read by a Spec: every declared field has its value
// or its default, with the declared type.
type Values map[string]any

// String returns a string, URL or enum field ("" when unset).
func (v Values) String(name string) string { s, _ := v[name].(string); return s }

// Bool returns a bool field.
func (v Values) Bool(name string) bool { b, _ := v[name].(bool); return b }

// Parse checks cfg against the spec: required fields are present and
// non-empty, types match, enums are known values. Errors name the field as
// "<type> config.<field>" and never quote a secret's value. Fields the spec
// does not declare are ignored: they are the delivery settings.
func (s Spec) Parse(cfg map[string]any) (Values, error) {
	vals := make(Values, len(s.Fields))
	for _, f := range s.Fields {
		v, err := s.parseField(f, cfg[f.Name])
		if err != nil {
			return nil, err
		}
		if v != nil {
			vals[f.Name] = v
		}
	}
	return vals, nil
}

// Secrets returns the values of the secret fields, for redaction.
func (s Spec) Secrets(vals Values) []string {
	var out []string
	for _, f := range s.Fields {
		if v := vals.String(f.Name); f.Secret && len(v) >= 4 {
			out = append(out, v)
		}
	}
	return out
}

// Supports reports whether the type can send op.
func (s Spec) Supports(op record.Op) bool { return slices.Contains(s.Ops, op) }

func (s Spec) parseField(f Field, v any) (any, error) {
	name := s.Type + " config." + f.Name
	if v == nil {
		if f.Required {
			return nil, fmt.Errorf("%s is required", name)
		}
		return f.Default, nil
	}
	if f.Type == TypeBool {
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("%s: want true or false, got %T", name, v)
		}
		return b, nil
	}
	str, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("%s: want a string, got %T", name, v)
	}
	if strings.TrimSpace(str) == "" {
		// Most likely an unset ${VAR}: refuse rather than fall back
		// silently to the default.
		if f.Required || f.Secret {
			return nil, fmt.Errorf("%s is required", name)
		}
		return f.Default, nil
	}
	switch f.Type {
	case TypeURL:
		// URLs may carry tokens (Slack's do): never quoted.
		u, err := url.Parse(str)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("%s: want an absolute http:// or https:// URL", name)
		}
		return strings.TrimRight(u.String(), "/"), nil
	case TypeEnum:
		if !slices.Contains(f.Enum, str) {
			return nil, fmt.Errorf("%s: %q is not one of %s", name, str, strings.Join(f.Enum, ", "))
		}
	}
	return str, nil
}
