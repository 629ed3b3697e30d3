package config

import (
	"fmt"
	"net/url"
	"strings"
)

// URLFields are the config fields of each destination type that hold an
// http(s) URL. Validate checks them, so a destination that could never be
// opened is refused by plan and apply, at its line in the file, instead of
// failing its first run. The destination registry's tests keep this list
// in step with the types' specs (their fields of type url) and the
// webhook's url, so validation does not have to link every driver.
var URLFields = map[string][]string{
	"amplitude":  {"api_host"},
	"braze":      {"endpoint"},
	"hubspot":    {"base_url"},
	"mixpanel":   {"api_host"},
	"salesforce": {"instance_url", "login_url"},
	"segment":    {"endpoint"},
	"slack":      {"webhook_url"},
	"webhook":    {"url"},
}

// checkURLs checks d's URL fields that are set. A value with a ${VAR}
// reference is left alone: it is expanded only in the process that
// connects. Values are never quoted, since URLs may carry tokens (Slack's
// are the credential).
func (d Destination) checkURLs() error {
	for _, f := range URLFields[d.Type] {
		v, ok := d.Config[f]
		if !ok || v == nil {
			continue
		}
		s, isString := v.(string)
		if isString && strings.Contains(s, "${") {
			continue
		}
		if !isString || !absoluteHTTP(s) {
			return &FieldError{Path: "config." + f,
				Err: fmt.Errorf("destination %q: want an absolute http:// or https:// URL, such as https://example.com/hook", d.Name)}
		}
	}
	return nil
}

// absoluteHTTP reports whether s is an absolute http:// or https:// URL
// with a host.
func absoluteHTTP(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
