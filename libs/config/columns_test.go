package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheckColumns(t *testing.T) {
	s := Sync{Name: "s", Model: Model{SQL: "x", PrimaryKey: []string{"id"}},
		Mapping: []Mapping{{From: "email", To: "e"}, {Template: "{{ first }} {{ last }}", To: "n"}, {Const: 1, To: "c"}}}
	cols := []string{"id", "email", "first", "last"}
	require.NoError(t, s.CheckColumns(cols))
	require.EqualError(t, s.CheckColumns([]string{"id", "emial", "first", "last"}),
		`sync "s": mapping[0].from: unknown column "email": the model returns id, emial, first, last`)
	require.ErrorContains(t, s.CheckColumns([]string{"id", "email", "first"}), `mapping[1].template: unknown column "last"`)
	require.ErrorContains(t, s.CheckColumns([]string{"ID", "email", "first", "last"}), `model.primary_key[0]: unknown column "id"`)
}
