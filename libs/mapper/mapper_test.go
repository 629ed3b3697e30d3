package mapper

import (
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
