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
	out, err := expandValue("config", cfg, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	m, _ := out.(map[string]any)
	return m, nil
}

// expandValue expands v, found at path; errors name the path and the
// variable, never a value.
func expandValue(path string, v any, lookup func(string) (string, bool)) (any, error) {
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
		switch len(missing) {
		case 0:
		case 1:
			return nil, fmt.Errorf("%s: environment variable %s is not set", path, missing[0])
		default:
			return nil, fmt.Errorf("%s: environment variables %s are not set", path, strings.Join(missing, ", "))
		}
		return s, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			ev, err := expandValue(path+"."+k, e, lookup)
			if err != nil {
				return nil, err
			}
			out[k] = ev
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			ev, err := expandValue(fmt.Sprintf("%s[%d]", path, i), e, lookup)
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

var (
	urlPassword = regexp.MustCompile(`(://[^:/@]*:)([^@/]*)@`)
	kvPassword  = regexp.MustCompile(`(?i)(password=)([^ ]*)`)
)

// onlyRefs reports whether s is made of ${VAR} references only.
func onlyRefs(s string) bool { return envRef.MatchString(s) && envRef.ReplaceAllString(s, "") == "" }

// mask replaces the second group of each match of re, unless it is made of
// ${VAR} references.
func mask(re *regexp.Regexp, s string) string {
	return re.ReplaceAllStringFunc(s, func(m string) string {
		g := re.FindStringSubmatch(m)
		if onlyRefs(g[2]) {
			return m
		}
		return g[1] + "****" + m[len(g[1])+len(g[2]):]
	})
}

func redactValue(field string, v any) any {
	switch x := v.(type) {
	case string:
		if !secretField.MatchString(field) || onlyRefs(x) {
			return x
		}
		if strings.Contains(x, "://") || strings.Contains(strings.ToLower(x), "password=") {
			return mask(kvPassword, mask(urlPassword, x))
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
