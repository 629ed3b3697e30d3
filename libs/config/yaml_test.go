package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func example(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("testdata/ebb.yaml")
	require.NoError(t, err)
	return string(data)
}

func TestParseExample(t *testing.T) {
	t.Setenv("WAREHOUSE_DSN", "postgres://ebb:hunter2@127.0.0.1/wh")
	f, err := LoadFile("testdata/ebb.yaml")
	require.NoError(t, err)
	want := File{
		Sources: []Source{{
			Name: "warehouse", Type: "postgres",
			Config: map[string]any{"dsn": "${WAREHOUSE_DSN}"}, // kept verbatim
		}},
		Destinations: []Destination{{
			Name: "crm_hook", Type: "webhook",
			Config: map[string]any{
				"url":        "http://127.0.0.1:9000/hook",
				"batch_size": 100,
				"headers":    map[string]any{"X-Team": "growth"},
			},
		}},
		Syncs: []Sync{{
			Name:        "customers_to_crm",
			Source:      "warehouse",
			Destination: "crm_hook",
			Model:       Model{SQL: "SELECT id, email, plan FROM customers", PrimaryKey: []string{"id"}},
			Mode:        ModeMirror,
			Mapping: []Mapping{
				{From: "email", To: "traits.email"},
				{From: "plan", To: "traits.plan"},
				{Const: "warehouse", To: "context.source"},
			},
			Schedule: "manual",
		}},
	}
	assert.Equal(t, want, f)
}

func TestParseValues(t *testing.T) {
	f, err := Parse("ebb.yaml", []byte(`
sources:
  - name: wh
    type: duckdb
    config:
      path: "${DATA_DIR}/wh.duckdb"
      threads: 4
      ratio: 0.5
      enabled: true
      nothing: null
      day: 2024-01-31
      nested: {list: [1, two, {three: 3}]}
      shared: &shared {a: 1}
      again: *shared
`))
	require.NoError(t, err)
	assert.Equal(t, map[string]any{
		"path":    "${DATA_DIR}/wh.duckdb",
		"threads": 4,
		"ratio":   0.5,
		"enabled": true,
		"nothing": nil,
		"day":     "2024-01-31",
		"nested":  map[string]any{"list": []any{1, "two", map[string]any{"three": 3}}},
		"shared":  map[string]any{"a": 1},
		"again":   map[string]any{"a": 1},
	}, f.Sources[0].Config)
}

func TestParseErrors(t *testing.T) {
	base := example(t)
	for _, tc := range []struct {
		name     string
		old, new string // replaced in the example file
		want     string
	}{
		{"wrong mode", "mode: mirror", "mode: mirorr",
			`ebb.yaml:14:11: syncs[0].mode: unknown mode "mirorr" (known: upsert, update, insert, mirror, all)`},
		{"missing mode", "    mode: mirror", "   #mode: mirror",
			`ebb.yaml:10:5: syncs[0].mode: is required (known: upsert, update, insert, mirror, all)`},
		{"unknown source type", "type: postgres ", "type: mysql ",
			`ebb.yaml:3:11: sources[0].type: unknown source type "mysql" (known: ` + strings.Join(SourceTypes, ", ") + `)`},
		{"unknown destination type", "type: webhook", "type: kafka",
			`ebb.yaml:7:11: destinations[0].type: unknown destination type "kafka" (known: amplitude, braze, hubspot, mixpanel, nats, postgres, salesforce, segment, slack, webhook)`},
		{"unknown field", "  - name: warehouse", "  - nmae: warehouse",
			`ebb.yaml:2:5: sources[0].nmae: unknown field (known: config, name, type)`},
		{"unknown top-level field", "syncs:", "sync:",
			`ebb.yaml:9:1: sync: unknown field (known: destinations, sources, syncs)`},
		{"field set twice", "    mode: mirror", "    mode: mirror\n    mode: upsert",
			`ebb.yaml:15:5: syncs[0].mode: is set twice`},
		{"missing primary key", ", primary_key: [id] }", " }",
			`ebb.yaml:13:12: syncs[0].model.primary_key: needs at least one column`},
		{"primary key not a list", "primary_key: [id]", "primary_key: {id: 1}",
			`ebb.yaml:13:73: syncs[0].model.primary_key: want a list, got a mapping`},
		{"missing sql", `sql: "SELECT id, email, plan FROM customers", `, "",
			`ebb.yaml:13:12: syncs[0].model.sql: is required`},
		{"mapping with from and const", `{const: "warehouse"`, `{from: id, const: "warehouse"`,
			`ebb.yaml:15:80: syncs[0].mapping[2]: has both from and const; use one`},
		{"mapping with neither", `{from: plan, to: traits.plan}`, `{to: traits.plan}`,
			`ebb.yaml:15:49: syncs[0].mapping[1]: needs from, const or template`},
		{"mapping without to", `{from: plan, to: traits.plan}`, `{from: plan}`,
			`ebb.yaml:15:49: syncs[0].mapping[1].to: is required`},
		{"bad schedule", "schedule: manual", "schedule: every 5m",
			`ebb.yaml:16:15: syncs[0].schedule: schedule "every 5m": not manual, @every <duration> or a cron expression: expected exactly 5 fields, found 2: [every 5m]`},
		{"schedule too often", "schedule: manual", `schedule: "@every 10ms"`,
			`ebb.yaml:16:15: syncs[0].schedule: schedule "@every 10ms": want @every with a duration of at least 1s, such as "@every 5m"`},
		{"duplicate source", "destinations:", "  - name: warehouse\n    type: duckdb\ndestinations:",
			`ebb.yaml:5:11: sources[1].name: source "warehouse" is declared twice (also sources[0])`},
		{"dangling source", "source: warehouse", "source: wh",
			`ebb.yaml:11:13: syncs[0].source: source "wh" is not declared`},
		{"dangling destination", "destination: crm_hook", "destination: crm",
			`ebb.yaml:12:18: syncs[0].destination: destination "crm" is not declared`},
		{"name with a dot", "name: customers_to_crm", "name: customers.crm",
			`ebb.yaml:10:11: syncs[0].name: sync name "customers.crm" is invalid: use 1-64 letters, digits, '_' or '-'`},
		{"missing name", "  - name: crm_hook\n", "  -\n",
			`ebb.yaml:7:5: destinations[0].name: destination name "" is invalid: use 1-64 letters, digits, '_' or '-'`},
		{"batch size out of range", "batch_size: 100,", "batch_size: 100000,",
			`ebb.yaml:8:62: destinations[0].config.batch_size: 100000 is out of range [1, 10000]`},
		{"batch size not a number", "batch_size: 100,", "batch_size: lots,",
			`ebb.yaml:8:62: destinations[0].config.batch_size: want a number, got string`},
		{"url not a url", `url: "http://127.0.0.1:9000/hook"`, `url: "not a url"`,
			`ebb.yaml:8:20: destinations[0].config.url: destination "crm_hook": want an absolute http:// or https:// URL, such as https://example.com/hook`},
		{"url relative", `url: "http://127.0.0.1:9000/hook"`, `url: "/hook"`,
			`ebb.yaml:8:20: destinations[0].config.url: destination "crm_hook": want an absolute http:// or https:// URL, such as https://example.com/hook`},
		{"url of another scheme", `url: "http://127.0.0.1:9000/hook"`, `url: "ftp://127.0.0.1/hook"`,
			`ebb.yaml:8:20: destinations[0].config.url: destination "crm_hook": want an absolute http:// or https:// URL, such as https://example.com/hook`},
		{"url not a string", `url: "http://127.0.0.1:9000/hook"`, `url: 42`,
			`ebb.yaml:8:20: destinations[0].config.url: destination "crm_hook": want an absolute http:// or https:// URL, such as https://example.com/hook`},
		{"url field of a spec", "type: webhook             # or postgres\n    config: { url: \"http://127.0.0.1:9000/hook\", batch_size: 100,",
			"type: slack\n    config: { webhook_url: \"hooks.slack.com/services/T0/B0/secret\", text: hi,",
			`ebb.yaml:8:28: destinations[0].config.webhook_url: destination "crm_hook": want an absolute http:// or https:// URL, such as https://example.com/hook`},
		{"config not a mapping", `config: { dsn: "${WAREHOUSE_DSN}" }`, `config: "${WAREHOUSE_DSN}"`,
			`ebb.yaml:4:13: sources[0].config: want a mapping, got "${WAREHOUSE_DSN}"`},
		{"not a finite number", "batch_size: 100,", "batch_size: .nan,",
			`ebb.yaml:8:62: destinations[0].config.batch_size: .nan is not a finite number`},
		{"name is a list", "name: warehouse", "name: [warehouse]",
			`ebb.yaml:2:11: sources[0].name: want a string, got a list`},
		{"sources not a list", "sources:\n  - name: warehouse\n    type: postgres            # or duckdb\n    config: { dsn: \"${WAREHOUSE_DSN}\" }\n", "sources: warehouse\n",
			`ebb.yaml:1:10: sources: want a list, got "warehouse"`},
		{"merge key", "    source: warehouse", "    <<: {source: warehouse}",
			`ebb.yaml:11:5: syncs[0]: merge keys (<<) are not supported`},
		// yaml.v3 gives the line before for parser errors (the 0-based
		// line where the unclosed flow sequence starts).
		{"invalid YAML", "mode: mirror", "mode: [mirror",
			`ebb.yaml:13: did not find expected ',' or ']'`},
		{"tab indent", "    schedule: manual", "\tschedule: manual",
			`ebb.yaml:16: found character that cannot start any token`},
		{"two documents", "syncs:", "---\nsyncs:",
			`ebb.yaml:9: only one YAML document is allowed`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Contains(t, base, tc.old)
			src := strings.Replace(base, tc.old, tc.new, 1)
			_, err := Parse("ebb.yaml", []byte(src))
			require.EqualError(t, err, tc.want)
		})
	}
}

// A URL given as a ${VAR} reference is not checked: it is expanded only
// in the process that connects.
func TestParseURLReferences(t *testing.T) {
	base := example(t)
	for _, url := range []string{`"${HOOK_URL}"`, `"https://${HOOK_HOST}/hook"`, `"https://hooks.example.com/in?token=x"`} {
		src := strings.Replace(base, `"http://127.0.0.1:9000/hook"`, url, 1)
		_, err := Parse("ebb.yaml", []byte(src))
		require.NoError(t, err, url)
	}
	_, err := Parse("ebb.yaml", []byte(strings.Replace(base, `"http://127.0.0.1:9000/hook"`, `"hooks.example.com/in?token=s3cret"`, 1)))
	require.ErrorContains(t, err, "destinations[0].config.url")
	require.NotContains(t, err.Error(), "s3cret", "a URL may carry a token: never quoted")
}

func TestParseEmpty(t *testing.T) {
	for _, src := range []string{"", "\n  \n", "# nothing yet\n", "~\n", "---\n"} {
		_, err := Parse("ebb.yaml", []byte(src))
		require.EqualError(t, err, "ebb.yaml: file is empty: declare sources, destinations and syncs", "%q", src)
	}
}

func TestParseErrorHasFieldError(t *testing.T) {
	src := strings.Replace(example(t), "mode: mirror", "mode: mirorr", 1)
	_, err := Parse("ebb.yaml", []byte(src))
	var fe *FieldError
	require.True(t, errors.As(err, &fe))
	assert.Equal(t, "syncs[0].mode", fe.Path)
	assert.Equal(t, `sync "customers_to_crm"`, fe.Resource)
}

func TestLoadFile(t *testing.T) {
	_, err := LoadFile(filepath.Join(t.TempDir(), "missing.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)

	path := filepath.Join(t.TempDir(), "ebb.yaml")
	require.NoError(t, os.WriteFile(path, []byte(strings.Replace(example(t), "source: warehouse", "source: wh", 1)), 0o600))
	_, err = LoadFile(path)
	require.EqualError(t, err, path+`:11:13: syncs[0].source: source "wh" is not declared`)
}

func TestParseAliasBomb(t *testing.T) {
	src := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	prev := "a"
	for _, l := range []string{"b", "c", "d", "e", "f", "g", "h"} {
		src += l + ": &" + l + " [" + strings.Repeat("*"+prev+", ", 9) + "*" + prev + "]\n"
		prev = l
	}
	src = "sources:\n  - name: x\n    type: duckdb\n    config:\n" + indent(src, "      ")
	_, err := Parse("ebb.yaml", []byte(src))
	require.ErrorContains(t, err, "too many aliases")
}

// Few aliases of a large anchored value stand for many values: counting
// aliases alone let a 42 KB file take 51 s and 3.1 GB. Here 1,000 aliases
// (well under maxAliases) of a 1,000-item list stand for a million values.
func TestParseAliasesOfALargeValue(t *testing.T) {
	src := "big: &big [" + strings.Repeat("x, ", 999) + "x]\ncopies: [" + strings.Repeat("*big, ", 999) + "*big]\n"
	src = "sources:\n  - name: x\n    type: duckdb\n    config:\n" + indent(src, "      ")
	start := time.Now()
	_, err := Parse("ebb.yaml", []byte(src))
	require.ErrorContains(t, err, "more than 200000 values with its aliases expanded")
	require.Less(t, time.Since(start), 5*time.Second)
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n"+prefix) + "\n"
}

func TestValidateMessages(t *testing.T) {
	s := Sync{
		Name: "x", Source: "wh", Destination: "crm",
		Model:   Model{SQL: "SELECT 1 AS id", PrimaryKey: []string{"id"}},
		Mode:    ModeUpsert,
		Mapping: []Mapping{{From: "a", To: "a"}, {From: "b", To: "b"}, {From: "c"}},
	}
	require.EqualError(t, s.Validate(), `sync "x": mapping[2].to: is required`)

	f := File{
		Sources:      []Source{{Name: "wh", Type: "duckdb"}},
		Destinations: []Destination{{Name: "crm", Type: "webhook", Config: map[string]any{"batch_size": 0}}},
		Syncs:        []Sync{s},
	}
	require.EqualError(t, f.Validate(), `destination "crm": destinations[0].config.batch_size: 0 is out of range [1, 10000]`)

	f.Destinations[0].Config = nil
	err := f.Validate()
	require.EqualError(t, err, `sync "x": syncs[0].mapping[2].to: is required`)
	var fe *FieldError
	require.True(t, errors.As(err, &fe))
	assert.Equal(t, "syncs[0].mapping[2].to", fe.Path)

	f.Syncs[0].Mapping = nil
	require.NoError(t, f.Validate())

	_, err = Destination{Name: "d", Config: map[string]any{"timeout": "soon"}}.Delivery()
	require.EqualError(t, err, `config.timeout: "soon" is not a positive duration such as "30s"`)
	require.EqualError(t, Source{Name: "a.b", Type: "duckdb"}.Validate(),
		`name: source name "a.b" is invalid: use 1-64 letters, digits, '_' or '-'`)
}

// Every sync setting can be written in ebb.yaml.
func TestParseSyncSettings(t *testing.T) {
	f, err := Parse("ebb.yaml", []byte(`
sources:
  - {name: wh, type: duckdb, config: {path: wh.duckdb}}
destinations:
  - {name: crm, type: webhook, config: {url: "https://crm.example.com/hook"}}
syncs:
  - name: s
    source: wh
    destination: crm
    model: {sql: "SELECT 1 AS id", primary_key: [id]}
    mode: mirror
    engine: local
    keep_values: true
    quarantine_after: 5
    safety: {max_delete_share: 0.1, max_change_share: 1, min_rows: 1000}
    alerts:
      - {on: run_failed, slack: "${SLACK_URL}"}
      - {on: failed_records, share: 0.05, webhook: "https://ops.example.com/ebb"}
      - {on: slow_run, after: 45m, webhook: "https://ops.example.com/ebb"}
`))
	require.NoError(t, err)
	s := f.Syncs[0]
	require.Equal(t, EngineLocal, s.Engine)
	require.True(t, s.KeepValues)
	require.Equal(t, 5, s.QuarantineAfter)
	require.Equal(t, 0.1, *s.Safety.MaxDeleteShare)
	require.Equal(t, 1.0, *s.Safety.MaxChangeShare)
	require.EqualValues(t, 1000, *s.Safety.MinRows)
	require.Equal(t, []Alert{
		{On: "run_failed", Slack: "${SLACK_URL}"},
		{On: "failed_records", Share: 0.05, Webhook: "https://ops.example.com/ebb"},
		{On: "slow_run", After: "45m", Webhook: "https://ops.example.com/ebb"},
	}, s.Alerts)

	_, err = Parse("ebb.yaml", []byte("syncs:\n  - name: s\n    safety: {max_delete_share: lots}\n"))
	require.ErrorContains(t, err, "syncs[0].safety.max_delete_share: want a number")
}
