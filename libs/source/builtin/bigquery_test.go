package builtin

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/bigquery/bqtest"
	"github.com/ebb-etl/ebb/libs/source/duckdb/ducktest"
	"github.com/ebb-etl/ebb/libs/source/sourcetest"
)

// TestBigQueryReadsLikeDuckDB checks the same data reads the same, keys and
// canonical values, from BigQuery (the local server) as from DuckDB. Only
// decimals compare by value: BigQuery keeps no declared scale.
func TestBigQueryReadsLikeDuckDB(t *testing.T) {
	type result struct {
		keys []record.Key
		rows []map[string]any
	}
	var results []result
	for _, e := range []sourcetest.Env{ducktest.Env(t), bqtest.Env(t)} {
		table := e.Table("people")
		sourcetest.Exec(t, e,
			"CREATE TABLE "+table+` (org integer, name text, note text, score numeric(10,2), seen timestamptz,
				tags text[], doc json, raw blob)`,
			"INSERT INTO "+table+` VALUES (1, 'Zoë', NULL, 1.5, '2024-01-01 00:00:00+01', ['a', 'b'], '{"x": [1]}', 'ab'),
				(1, 'zoe', '', -2, NULL, [], NULL, NULL), (-3, '日本', '😀', 0, NULL, NULL, 'null', ''),
				(2, 'a b', 'x', 100, '2024-07-01 12:00:00.25+00', ['c'], '[]', NULL), (2, 'A', NULL, NULL, NULL, NULL, NULL, NULL)`)
		m := source.Model{SQL: "SELECT * FROM " + table, PrimaryKey: []string{"org", "name"}}
		src, err := Open(context.Background(), config.Source{Name: "wh", Type: e.Type, Config: e.Config})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, src.Close()) })
		hashKeys, _ := sourcetest.Hashes(t, src, m)
		keys, rows := sourcetest.Rows(t, src, m, nil)
		require.Equal(t, hashKeys, keys, e.Type)
		for _, row := range rows {
			if n, ok := row["score"].(json.Number); ok && strings.Contains(string(n), ".") {
				row["score"] = json.Number(strings.TrimSuffix(strings.TrimRight(string(n), "0"), "."))
			}
			if row["tags"] == nil {
				row["tags"] = []any{} // BigQuery has no NULL arrays: they read as empty
			}
		}
		results = append(results, result{keys, rows})
	}
	require.Equal(t, results[0], results[1], "bigquery reads differ from duckdb reads")
	require.Len(t, results[0].rows, 5)
}
