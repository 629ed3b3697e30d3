package snapshot_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/snapshot"
	"github.com/ebb-etl/ebb/libs/source"
)

func TestTypeChanges(t *testing.T) {
	col := func(name, typ string, isInt bool) source.Column {
		return source.Column{Name: name, Type: typ, Int: isInt}
	}
	key := []string{"region", "id"}
	committed := []source.Column{
		col("region", "text", false), col("id", "int4", true), col("n", "int4", true),
		col("note", "text", false), col("gone", "text", false),
	}
	for _, tc := range []struct {
		name    string
		current []source.Column
		want    []snapshot.TypeChange
	}{
		{"same types", committed, nil},
		{"integers of another width", []source.Column{
			col("region", "text", false), col("id", "int8", true), col("n", "int2", true), col("note", "text", false),
		}, nil},
		{"new and dropped columns are not type changes", []source.Column{
			col("region", "text", false), col("id", "int4", true), col("added", "int4", true),
		}, nil},
		{"a key column turns to text", []source.Column{
			col("region", "text", false), col("id", "text", false), col("n", "int4", true),
		}, []snapshot.TypeChange{{Column: "id", From: "int4", To: "text", Key: true}}},
		{"a key column turns to an integer", []source.Column{
			col("region", "int8", true), col("id", "int4", true),
		}, []snapshot.TypeChange{{Column: "region", From: "text", To: "int8", Key: true}}},
		{"a key column keeps its encoding: reported, not a key change", []source.Column{
			col("region", "varchar", false), col("id", "int4", true),
		}, []snapshot.TypeChange{{Column: "region", From: "text", To: "varchar"}}},
		{"non-key columns, in the model's order", []source.Column{
			col("note", "jsonb", false), col("n", "text", false), col("id", "int4", true),
		}, []snapshot.TypeChange{{Column: "note", From: "text", To: "jsonb"}, {Column: "n", From: "int4", To: "text"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, snapshot.TypeChanges(committed, tc.current, key))
		})
	}

	t.Run("a snapshot without recorded types is not compared", func(t *testing.T) {
		require.Nil(t, snapshot.TypeChanges(nil, []source.Column{col("id", "text", false)}, []string{"id"}))
	})
	t.Run("String", func(t *testing.T) {
		c := snapshot.TypeChange{Column: "n", From: "int4", To: "text"}
		require.Equal(t, `column "n" changed type from int4 to text`, c.String())
	})
}
