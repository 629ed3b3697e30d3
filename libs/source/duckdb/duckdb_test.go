package duckdb_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/source"

	"github.com/ebb-etl/ebb/libs/source/duckdb/ducktest"
	"github.com/ebb-etl/ebb/libs/source/sourcetest"
)

func TestAcceptance(t *testing.T) {
	sourcetest.Run(t, ducktest.Harness)
}

func TestDuckDBValues(t *testing.T) {
	e := ducktest.Env(t)
	sourcetest.Exec(t, e,
		"CREATE TYPE mood AS ENUM ('sad', 'happy')",
		`CREATE TABLE vals (id UTINYINT, h HUGEINT, ub UBIGINT, d DECIMAL(38,10), small DECIMAL(4,2), ints INTEGER[],
			decs DECIMAL(10,2)[], grid INTEGER[][], fixed INTEGER[2], days DATE[], ivs INTERVAL[], docs JSON[], words VARCHAR[][], uids UUID[2],
			st STRUCT(a INTEGER, b VARCHAR), mp MAP(VARCHAR, INTEGER), u UUID, j JSON, ns TIMESTAMP_NS,
			m mood, iv INTERVAL, f DOUBLE, r REAL, t TIME)`,
		`INSERT INTO vals VALUES
			(1, 170141183460469231731687303715884105727, 18446744073709551615, 1234567890123456789012345678.0123456789,
			 -0.5, [1, NULL, -3], [1.5, NULL], [[1, 2], [3]], [7, 8], ['2024-02-29'], [INTERVAL 1 DAY], ['{"a":1}'], [['a', NULL], []], ['A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', NULL],
			 {'a': 1, 'b': 'x"y'}, MAP {'k': 1}, 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '{"a": 1.10}',
			 '2024-01-01 00:00:00.123456789', 'happy', INTERVAL 1 DAY, 'NaN', 'Infinity', '12:34:56.5'),
			(2, -1, 0, 0, 0, [], [], [], NULL, [], [], [], NULL, NULL, NULL, MAP {}, NULL, 'null', NULL, NULL, NULL, -1e300, 0.5, NULL)`)
	m := source.Model{SQL: "SELECT * FROM vals;", PrimaryKey: []string{"id"}}
	src := sourcetest.Open(t, e)
	keys, rows := sourcetest.Rows(t, src, m, nil)
	require.Equal(t, []record.Key{record.AppendInt(nil, 1), record.AppendInt(nil, 2)}, keys)
	require.Equal(t, map[string]any{
		"id":    int64(1),
		"h":     json.Number("170141183460469231731687303715884105727"),
		"ub":    json.Number("18446744073709551615"),
		"d":     json.Number("1234567890123456789012345678.0123456789"),
		"small": json.Number("-0.50"),
		"ints":  []any{int64(1), nil, int64(-3)},
		"decs":  []any{json.Number("1.50"), nil},
		"grid":  []any{[]any{int64(1), int64(2)}, []any{int64(3)}},
		"fixed": []any{int64(7), int64(8)},
		"days":  []any{"2024-02-29"},
		"ivs":   []any{"1 day"},
		"docs":  []any{`{"a":1}`}, // text: the driver names JSON[] "VARCHAR[]"
		"words": []any{[]any{"a", nil}, []any{}},
		"uids":  []any{"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", nil},
		"st":    json.RawMessage(`{"a":1,"b":"x\"y"}`),
		"mp":    json.RawMessage(`{"k":1}`),
		"u":     "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
		"j":     json.RawMessage(`{"a": 1.10}`),
		"ns":    "2024-01-01T00:00:00.123456",
		"m":     "happy",
		"iv":    "1 day",
		"f":     "NaN",
		"r":     "Infinity",
		"t":     "12:34:56.5",
	}, rows[0])
	require.Equal(t, json.Number("-1"), rows[1]["h"])
	require.Equal(t, json.Number("0.0000000000"), rows[1]["d"])
	require.Equal(t, []any{}, rows[1]["ints"])
	require.Equal(t, json.RawMessage(`null`), rows[1]["j"])
	require.Equal(t, -1e300, rows[1]["f"])
	require.Equal(t, 0.5, rows[1]["r"])
	_, err := json.Marshal(rows)
	require.NoError(t, err)
}

// TestHashTellsJSONNullFromNull checks values whose JSON rendering would
// collide (a JSON null document and SQL NULL, the string 'NULL') hash apart.
func TestHashTellsJSONNullFromNull(t *testing.T) {
	e := ducktest.Env(t)
	sourcetest.Exec(t, e,
		"CREATE TABLE docs (id INTEGER, j JSON, s VARCHAR)",
		`INSERT INTO docs VALUES (1, 'null', 'x'), (2, NULL, 'x'), (3, '"x"', NULL), (4, NULL, '"x"'),
			(5, NULL, 'NULL'), (6, NULL, NULL)`)
	src := sourcetest.Open(t, e)
	_, hashes := sourcetest.Hashes(t, src, source.Model{SQL: "SELECT id, j, s FROM docs", PrimaryKey: []string{"id"}})
	seen := map[string]bool{}
	for _, h := range hashes {
		seen[string(h)] = true
	}
	require.Len(t, seen, 6)
	// Only the non-key columns distinguish rows 1 and 2 here.
	_, hashes = sourcetest.Hashes(t, src, source.Model{
		SQL: "SELECT 1 AS k, j FROM docs WHERE id IN (1, 2)", PrimaryKey: []string{"k"}})
	require.NotEqual(t, hashes[0], hashes[1])
}

// TestTextKeysIgnoreDefaultCollation checks text keys stay in byte order
// when the database's default collation says otherwise.
func TestTextKeysIgnoreDefaultCollation(t *testing.T) {
	e := ducktest.Env(t)
	sourcetest.Exec(t, e,
		"SET GLOBAL default_collation = 'nocase'",
		"CREATE TABLE k (name VARCHAR)",
		"INSERT INTO k VALUES ('b'), ('B'), ('a'), ('A'), ('é'), ('E')")
	m := source.Model{SQL: "SELECT * FROM k", PrimaryKey: []string{"name"}}
	src := sourcetest.Open(t, e)
	var want []record.Key
	for _, s := range []string{"A", "B", "E", "a", "b", "é"} {
		want = append(want, record.AppendString(nil, s))
	}
	keys, _ := sourcetest.Hashes(t, src, m)
	require.Equal(t, want, keys)
	keys, _ = sourcetest.Rows(t, src, m, want[1])
	require.Equal(t, want[2:], keys)
}

func TestModelErrorIsDuckDBMessage(t *testing.T) {
	src := sourcetest.Open(t, ducktest.Env(t))
	_, err := src.Columns(context.Background(), "SELECT * FROM ebb_no_such_table")
	require.ErrorContains(t, err, "running model: Catalog Error: Table with name ebb_no_such_table does not exist")
}

// TestDuplicateColumnNames checks DuckDB's renaming of duplicate columns
// ("x", "x_1") reaches the rows, so no value is lost.
func TestDuplicateColumnNames(t *testing.T) {
	src := sourcetest.Open(t, ducktest.Env(t))
	m := source.Model{SQL: "SELECT 1 AS id, 2 AS x, 3 AS x", PrimaryKey: []string{"id"}}
	_, rows := sourcetest.Rows(t, src, m, nil)
	require.Equal(t, []map[string]any{{"id": int64(1), "x": int64(2), "x_1": int64(3)}}, rows)
}
