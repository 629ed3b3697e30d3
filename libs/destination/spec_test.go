package destination

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/record"
)

var testSpec = Spec{Type: "t", Fields: []Field{
	{Name: "url", Type: TypeURL, Required: true},
	{Name: "key", Type: TypeString, Required: true, Secret: true},
	{Name: "mode", Type: TypeEnum, Enum: []string{"a", "b"}, Default: "a"},
	{Name: "flag", Type: TypeBool, Default: false},
}}

func TestSpecParse(t *testing.T) {
	v, err := testSpec.Parse(map[string]any{"url": "https://h/x/", "key": "s3cret", "batch_size": 5})
	require.NoError(t, err)
	assert.Equal(t, "https://h/x", v.String("url"))
	assert.Equal(t, "a", v.String("mode"))
	assert.False(t, v.Bool("flag"))
	assert.Equal(t, []string{"s3cret"}, testSpec.Secrets(v))

	for want, cfg := range map[string]map[string]any{
		"t config.url is required":                     {"key": "k"},
		"t config.key is required":                     {"url": "http://h", "key": " "},
		`t config.mode: "c" is not one of a, b`:        {"url": "http://h", "key": "k", "mode": "c"},
		"t config.flag: want true or false, got int":   {"url": "http://h", "key": "k", "flag": 1},
		"t config.url: want an absolute http:// or ht": {"url": "h/x", "key": "k"},
		"t config.key: want a string, got int":         {"url": "http://h", "key": 7},
	} {
		_, err := testSpec.Parse(cfg)
		require.Error(t, err, want)
		assert.Contains(t, err.Error(), want)
	}
}

func TestID(t *testing.T) {
	r := record.Record{Op: record.OpUpsert, Key: map[string]any{"id": json.Number("42")}, Data: map[string]any{"email": "a@x.io", "n": nil}}
	id, err := ID(r, "")
	require.NoError(t, err)
	assert.Equal(t, "42", id)
	id, err = ID(r, "email")
	require.NoError(t, err)
	assert.Equal(t, "a@x.io", id)
	_, err = ID(r, "n")
	require.EqualError(t, err, "n is null")
	_, err = ID(r, "nope")
	require.EqualError(t, err, `the record has no field "nope" to use as id`)
	_, err = ID(record.Record{Key: map[string]any{"a": 1, "b": 2}}, "")
	require.ErrorContains(t, err, "the key has 2 columns")
	// Deletes carry no data: the key is where the id is.
	id, err = ID(record.Record{Op: record.OpDelete, Key: map[string]any{"email": "k@x.io"}}, "email")
	require.NoError(t, err)
	assert.Equal(t, "k@x.io", id)
}

func TestMessageIDIsStableAcrossBatchSplits(t *testing.T) {
	r := record.Record{Op: record.OpUpsert, KeyEnc: record.AppendInt(nil, 1)}
	a := MessageID(Batch{ID: "x/0", Sync: "s", RunID: "r"}, r)
	assert.Equal(t, a, MessageID(Batch{ID: "x/0.1", Sync: "s", RunID: "r"}, r))
	assert.NotEqual(t, a, MessageID(Batch{Sync: "s", RunID: "r2"}, r))
	r.Op = record.OpDelete
	assert.NotEqual(t, a, MessageID(Batch{Sync: "s", RunID: "r"}, r))
}

func TestTemplate(t *testing.T) {
	tpl, err := ParseTemplate("{{key}} / {{ key.id }} / {{ a.b }} / {{ id }} / {{ n }}")
	require.NoError(t, err)
	r := record.Record{KeyEnc: record.AppendInt(nil, 7), Key: map[string]any{"id": int64(7)},
		Data: map[string]any{"a": map[string]any{"b": json.Number("1.5")}, "n": nil}}
	s, err := tpl.Render(r, nil)
	require.NoError(t, err)
	assert.Equal(t, "7 / 7 / 1.5 / 7 / ", s)

	tpl, err = ParseTemplate("{{ a.c }}")
	require.NoError(t, err)
	_, err = tpl.Render(r, nil)
	require.EqualError(t, err, `template: the record has no field "a.c"`)
	_, err = ParseTemplate("{{ a")
	require.Error(t, err)
}
