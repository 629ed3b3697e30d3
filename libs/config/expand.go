package config

import (
	"fmt"
	"os"
	"regexp"
	"strings"
)

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// Expand returns a copy of cfg with every ${VAR} replaced by the environment
// variable's value. Configs are stored with the references intact, so
// secrets live only in the environment of the processes that use them and
// never in the config store, NATS payloads or API responses.
func Expand(cfg map[string]any) (map[string]any, error) {
	out, err := expandValue(cfg, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	m, _ := out.(map[string]any)
	return m, nil
}

func expandValue(v any, lookup func(string) (string, bool)) (any, error) {
	switch x := v.(type) {
	case string:
		var missing []string
		s := envRef.ReplaceAllStringFunc(x, func(ref string) string {
			name := envRef.FindStringSubmatch(ref)[1]
			val, ok := lookup(name)
			if !ok {
				missing = append(missing, name)
			}
			return val
		})
		if len(missing) > 0 {
			return nil, fmt.Errorf("environment variable %s is not set", strings.Join(missing, ", "))
		}
		return s, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			ev, err := expandValue(e, lookup)
			if err != nil {
				return nil, fmt.Errorf("config.%s: %w", k, err)
			}
			out[k] = ev
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			ev, err := expandValue(e, lookup)
			if err != nil {
				return nil, err
			}
			out[i] = ev
		}
		return out, nil
	default:
		return v, nil
	}
}

// secretField names config fields whose literal values are secret.
var secretField = regexp.MustCompile(`(?i)(password|secret|token|dsn|api_key|apikey|authorization|private_key|credentials)`)

// Redact returns a copy of cfg fit to show: secret fields keep their ${VAR}
// references but literal values are replaced, and passwords inside URLs or
// DSNs are masked.
func Redact(cfg map[string]any) map[string]any {
	out, _ := redactValue("", cfg).(map[string]any)
	return out
}

var urlPassword = regexp.MustCompile(`(://[^:/@]*:)[^@/]*@`)
var kvPassword = regexp.MustCompile(`(?i)(password=)[^ ]*`)

func redactValue(field string, v any) any {
	switch x := v.(type) {
	case string:
		if !secretField.MatchString(field) || envRef.MatchString(x) && envRef.ReplaceAllString(x, "") == "" {
			return x
		}
		if strings.Contains(x, "://") || strings.Contains(strings.ToLower(x), "password=") {
			x = urlPassword.ReplaceAllString(x, "${1}****@")
			return kvPassword.ReplaceAllString(x, "${1}****")
		}
		return "****"
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			name := k
			if secretField.MatchString(field) {
				name = field
			}
			out[k] = redactValue(name, e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = redactValue(field, e)
		}
		return out
	default:
		return v
	}
}
