package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/transform"
)

const transformYAML = `sources:
  - {name: wh, type: duckdb, config: {path: /tmp/x.duckdb}}
destinations:
  - {name: hook, type: webhook, config: {url: "http://127.0.0.1:9/"}}
syncs:
  - name: s
    source: wh
    destination: hook
    model: {sql: "SELECT 1 AS id", primary_key: [id]}
    mode: upsert
    transformation: %s
`

func writeConfig(t *testing.T, transformation string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, code := range files {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(code), 0o644))
	}
	path := filepath.Join(dir, "ebb.yaml")
	require.NoError(t, os.WriteFile(path, fmt.Appendf(nil, transformYAML, transformation), 0o644))
	return path
}

func TestTransformationFileIsReadRelativeToTheConfig(t *testing.T) {
	code := "function transformEvent(r) { return r; }\n"
	path := writeConfig(t, "{file: js/t.js, timeout_ms: 500, max_output_bytes: 2048}", map[string]string{"js/t.js": code})
	f, err := LoadFile(path)
	require.NoError(t, err)
	require.Equal(t, &Transformation{File: "js/t.js", Code: code, Version: transform.Version(code), TimeoutMS: 500, MaxOutputBytes: 2048},
		f.Syncs[0].Transformation, "the code is stored inline, with its version")
	require.Len(t, f.Syncs[0].Transformation.Version, 12)
}

func TestTransformationErrors(t *testing.T) {
	cases := map[string]struct {
		transformation string
		files          map[string]string
		want           string
	}{
		"syntax error in file": {
			transformation: "{file: t.js}",
			files:          map[string]string{"t.js": "function transformEvent(r) {\n  return r +;\n}\n"},
			want:           `ebb.yaml:11:28: syncs[0].transformation.file: t.js:2:13: SyntaxError: Unexpected token ;`,
		},
		"syntax error inline": {
			transformation: `{code: "function transformEvent(r) { return ( }"}`,
			want:           `ebb.yaml:11:28: syncs[0].transformation.code: transformation.js:1:39: SyntaxError: Unexpected token }`,
		},
		"no function": {
			transformation: `{code: "function other() {}"}`,
			want:           `defines neither transformEvent(record, metadata) nor transformBatch(records, metadata)`,
		},
		"missing file": {
			transformation: "{file: nope.js}",
			want:           `ebb.yaml:11:28: syncs[0].transformation.file: reading transformation: open`,
		},
		"file and code": {
			transformation: `{file: t.js, code: "x"}`,
			want:           `ebb.yaml:11:21: syncs[0].transformation: has both file and code; use one`,
		},
		"timeout": {
			transformation: `{code: "function transformEvent(r) { return r }", timeout_ms: 600000}`,
			want:           `syncs[0].transformation.timeout_ms: must be between 0 (default 1000) and 60000`,
		},
		"empty": {
			transformation: `{timeout_ms: 10}`,
			want:           `syncs[0].transformation: needs file or code`,
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			path := writeConfig(t, c.transformation, c.files)
			_, err := LoadFile(path)
			require.Error(t, err)
			require.Contains(t, err.Error(), c.want)
			if c.want[0] == 'e' {
				require.True(t, strings.HasPrefix(err.Error(), path+":11:"), "the error names the config file and line")
			}
		})
	}
}

func TestMappingValidation(t *testing.T) {
	base := Sync{Name: "s", Source: "a", Destination: "b", Mode: ModeUpsert,
		Model: Model{SQL: "SELECT 1", PrimaryKey: []string{"id"}}}
	cases := map[string]struct {
		m    Mapping
		want string
	}{
		"bad index":         {Mapping{From: "a", To: "items[x].name"}, `mapping[0].to: path "items[x].name" has a bad index [x]`},
		"empty segment":     {Mapping{From: "a", To: "a..b"}, `mapping[0].to: path "a..b" has an empty field name`},
		"template and from": {Mapping{From: "a", Template: "{{ a }}", To: "x"}, "has template and from or const"},
		"open template":     {Mapping{Template: "{{ a ", To: "x"}, "mapping[0].template: template has {{ without }}"},
		"unknown cast":      {Mapping{From: "a", To: "x", Cast: "int"}, `mapping[0].cast: unknown cast "int"`},
		"format no cast":    {Mapping{From: "a", To: "x", Format: "unix"}, "mapping[0].format: needs cast: timestamp"},
		"unknown format":    {Mapping{From: "a", To: "x", Cast: "timestamp", Format: "iso"}, `unknown format "iso"`},
	}
	for name, c := range cases {
		s := base
		s.Mapping = []Mapping{c.m}
		require.ErrorContains(t, s.Validate(), c.want, name)
	}
	s := base
	s.Mapping = []Mapping{
		{Template: "{{ first }} {{last}}", To: "name"},
		{From: "ts", To: "events[0].at", Cast: "timestamp", Format: "2006-01-02"},
		{From: "n", To: "n", Cast: "number", Default: 0, Required: true, OmitNull: true},
	}
	require.NoError(t, s.Validate())
}

func TestParsePathAndTemplate(t *testing.T) {
	steps, err := ParsePath("items[0][2].name")
	require.NoError(t, err)
	require.Equal(t, []PathStep{{Key: "items", Index: -1}, {Index: 0}, {Index: 2}, {Key: "name", Index: -1}}, steps)
	parts, err := ParseTemplate("Hi {{ first_name }}{{last_name}}!")
	require.NoError(t, err)
	require.Equal(t, []TemplatePart{{Text: "Hi "}, {Column: "first_name"}, {Column: "last_name"}, {Text: "!"}}, parts)
}
