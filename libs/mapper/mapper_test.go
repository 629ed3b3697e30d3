package mapper

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/config"
)

func TestMapNestedAndConst(t *testing.T) {
	m, err := New([]config.Mapping{
		{From: "email", To: "traits.email"},
		{From: "plan", To: "traits.plan"},
		{Const: "warehouse", To: "context.source"},
	})
	require.NoError(t, err)
	out, err := m.Map(map[string]any{"id": int64(1), "email": "a@x", "plan": nil})
	require.NoError(t, err)
	require.Equal(t, map[string]any{
		"traits":  map[string]any{"email": "a@x", "plan": nil},
		"context": map[string]any{"source": "warehouse"},
	}, out)
}

func TestMapErrors(t *testing.T) {
	m, err := New([]config.Mapping{{From: "nope", To: "x"}})
	require.NoError(t, err)
	_, err = m.Map(map[string]any{"id": 1})
	require.ErrorContains(t, err, `column "nope"`)

	m, err = New([]config.Mapping{{Const: 1, To: "a"}, {Const: 2, To: "a.b"}})
	require.NoError(t, err)
	_, err = m.Map(map[string]any{})
	require.ErrorContains(t, err, "both a value and an object")

	_, err = New([]config.Mapping{{Const: 1, To: "a..b"}})
	require.Error(t, err)
}

func TestEmptyMappingPassesThrough(t *testing.T) {
	m, err := New(nil)
	require.NoError(t, err)
	row := map[string]any{"a": 1}
	out, err := m.Map(row)
	require.NoError(t, err)
	require.Equal(t, row, out)
}

func mapOne(t *testing.T, mapping []config.Mapping, row map[string]any) (map[string]any, error) {
	t.Helper()
	m, err := New(mapping)
	require.NoError(t, err)
	return m.Map(row)
}

func TestMapArraysAndNestedPaths(t *testing.T) {
	out, err := mapOne(t, []config.Mapping{
		{From: "a", To: "items[0].name"},
		{From: "b", To: "items[2].name"},
		{From: "c", To: "items[0].tags[1]"},
		{Const: "x", To: "deep.er.est"},
	}, map[string]any{"a": "first", "b": "third", "c": "t1"})
	require.NoError(t, err)
	require.Equal(t, map[string]any{
		"items": []any{map[string]any{"name": "first", "tags": []any{nil, "t1"}}, nil, map[string]any{"name": "third"}},
		"deep":  map[string]any{"er": map[string]any{"est": "x"}},
	}, out)

	_, err = mapOne(t, []config.Mapping{{Const: 1, To: "a"}, {Const: 2, To: "a[0]"}}, map[string]any{})
	require.ErrorContains(t, err, "not an array")
}

func TestMapTemplates(t *testing.T) {
	out, err := mapOne(t, []config.Mapping{
		{Template: "{{ first_name }} {{ last_name }}", To: "name"},
		{Template: "#{{id}} ({{ missing_ok }})", To: "label"},
	}, map[string]any{"first_name": "Ada", "last_name": "Lovelace", "id": json.Number("7"), "missing_ok": nil})
	require.NoError(t, err)
	require.Equal(t, map[string]any{"name": "Ada Lovelace", "label": "#7 ()"}, out)

	_, err = mapOne(t, []config.Mapping{{Template: "{{ nope }}", To: "x"}}, map[string]any{})
	require.ErrorContains(t, err, `template column "nope" is not in the model`)
}

func TestMapCasts(t *testing.T) {
	row := map[string]any{
		"n": "42.50", "i": int64(7), "big": json.Number("123456789012345678901"), "flag": "yes", "zero": json.Number("0"),
		"obj": map[string]any{"a": json.Number("1")}, "ts": "2024-03-01T12:34:56.789+02:00", "day": "2024-03-01",
		"epoch": json.Number("1700000000"), "naive": "2024-03-01T12:34:56",
	}
	out, err := mapOne(t, []config.Mapping{
		{From: "n", To: "n", Cast: "number"},
		{From: "big", To: "big", Cast: "number"},
		{From: "i", To: "i", Cast: "string"},
		{From: "obj", To: "obj", Cast: "string"},
		{From: "flag", To: "flag", Cast: "boolean"},
		{From: "zero", To: "zero", Cast: "boolean"},
		{From: "ts", To: "ts", Cast: "timestamp"},
		{From: "ts", To: "ts_ms", Cast: "timestamp", Format: "rfc3339_ms"},
		{From: "ts", To: "ts_unix", Cast: "timestamp", Format: "unix"},
		{From: "ts", To: "ts_unix_ms", Cast: "timestamp", Format: "unix_ms"},
		{From: "day", To: "day", Cast: "timestamp", Format: "02/01/2006"},
		{From: "epoch", To: "epoch", Cast: "timestamp", Format: "date"},
		{From: "naive", To: "naive", Cast: "timestamp"},
	}, row)
	require.NoError(t, err)
	require.Equal(t, map[string]any{
		"n": json.Number("42.50"), "big": json.Number("123456789012345678901"), "i": "7", "obj": `{"a":1}`,
		"flag": true, "zero": false,
		"ts": "2024-03-01T10:34:56.789Z", "ts_ms": "2024-03-01T10:34:56.789Z",
		"ts_unix": json.Number("1709289296"), "ts_unix_ms": json.Number("1709289296789"),
		"day": "01/03/2024", "epoch": "2023-11-14", "naive": "2024-03-01T12:34:56Z",
	}, out)

	for _, c := range []struct {
		v    any
		cast string
	}{{"abc", "number"}, {"maybe", "boolean"}, {json.Number("2"), "boolean"}, {"yesterday", "timestamp"}, {"1e", "number"}} {
		_, err := mapOne(t, []config.Mapping{{From: "v", To: "out.v", Cast: c.cast}}, map[string]any{"v": c.v})
		require.ErrorContains(t, err, "mapping: out.v: cannot cast", "%v to %s", c.v, c.cast)
	}
}

func TestMapNullHandling(t *testing.T) {
	row := map[string]any{"email": nil, "plan": nil, "age": nil, "name": "Ada"}
	out, err := mapOne(t, []config.Mapping{
		{From: "email", To: "traits.email", OmitNull: true},
		{From: "plan", To: "traits.plan", Default: "free"},
		{From: "age", To: "traits.age", Default: "0", Cast: "number"},
		{From: "name", To: "traits.name", Required: true},
	}, row)
	require.NoError(t, err)
	require.Equal(t, map[string]any{"traits": map[string]any{"plan": "free", "age": json.Number("0"), "name": "Ada"}}, out)

	_, err = mapOne(t, []config.Mapping{{From: "email", To: "traits.email", Required: true}}, row)
	require.EqualError(t, err, "mapping: required field traits.email is NULL (column email)")

	// A default satisfies required.
	out, err = mapOne(t, []config.Mapping{{From: "email", To: "email", Required: true, Default: "none@example.com"}}, row)
	require.NoError(t, err)
	require.Equal(t, map[string]any{"email": "none@example.com"}, out)
}
