package postgres_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/postgres"

	"github.com/ebb-etl/ebb/libs/source/postgres/pgtest"
	"github.com/ebb-etl/ebb/libs/source/sourcetest"
)

func TestAcceptance(t *testing.T) {
	sourcetest.Run(t, pgtest.Harness)
}

func TestOpenRequiresDSN(t *testing.T) {
	_, err := postgres.Open(context.Background(), map[string]any{})
	require.ErrorContains(t, err, `"dsn"`)
	_, err = postgres.Open(context.Background(), map[string]any{"dsn": 5})
	require.ErrorContains(t, err, `"dsn"`)
	_, err = postgres.Open(context.Background(), map[string]any{"dsn": "postgres://u:secret@127.0.0.1:1/x?connect_timeout=1"})
	require.Error(t, err)
	require.NotContains(t, err.Error(), "secret")
}

func TestModelErrorIsPostgresMessage(t *testing.T) {
	e := pgtest.Env(t)
	src := sourcetest.Open(t, e)
	_, err := src.Columns(context.Background(), "SELECT * FROM ebb_no_such_table")
	require.EqualError(t, err, `running model: ERROR: relation "ebb_no_such_table" does not exist (SQLSTATE 42P01)`)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
}

func TestPostgresValues(t *testing.T) {
	e := pgtest.Env(t)
	table := e.Table("pgvalues")
	sourcetest.Exec(t, e,
		"CREATE TYPE "+e.Table("mood")+" AS ENUM ('sad', 'happy')",
		"CREATE TABLE "+table+` (id int2, n numeric, f float8, r real, ints int4[], texts text[], nums numeric[],
			grid int8[], stamps timestamptz[], u uuid, jb jsonb, ts timestamp, tstz timestamptz, d date,
			iv interval, ip inet, mood `+e.Table("mood")+`, moods `+e.Table("mood")+`[], vc varchar(5), ch char(3))`,
		"INSERT INTO "+table+` VALUES
			(1, 'NaN', 'NaN', 'Infinity', '{1,NULL,-3}', '{"a,b",NULL,"é"}', '{1.50,NULL,-0.001}',
			 '{{1,2},{3,4}}', '{"2024-01-01 00:00:00+05"}', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
			 '{"b": 1, "a": [1.10, true]}', 'infinity', '-infinity', 'infinity', '1 day 02:00:00', '10.0.0.1/8',
			 'happy', '{sad,happy}', 'ab', 'x'),
			(2, 'Infinity', '-Infinity', -1.5, '{}', '{}', '{}', '{}', '{}', NULL, 'null', '2024-01-01 00:00:00.000001',
			 '2024-06-30 23:59:59.999999+00', '-infinity', '-1 mons', '::1', 'sad', '{}', '', ''),
			(3, '-Infinity', 1e300, 0, NULL, NULL, NULL, NULL, NULL, NULL, '[]', '0001-01-01 00:00:00', NULL, '2000-01-01',
			 NULL, NULL, NULL, NULL, NULL, NULL)`)
	m := source.Model{SQL: "SELECT * FROM " + table + " -- trailing comment", PrimaryKey: []string{"id"}}
	_, rows := sourcetest.Rows(t, sourcetest.Open(t, e), m, nil)
	require.Len(t, rows, 3)
	require.Equal(t, map[string]any{
		"id": int64(1), "n": "NaN", "f": "NaN", "r": "Infinity",
		"ints":   []any{int64(1), nil, int64(-3)},
		"texts":  []any{"a,b", nil, "é"},
		"nums":   []any{json.Number("1.50"), nil, json.Number("-0.001")},
		"grid":   []any{[]any{int64(1), int64(2)}, []any{int64(3), int64(4)}},
		"stamps": []any{"2023-12-31T19:00:00Z"},
		"u":      "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
		"jb":     json.RawMessage(`{"a": [1.10, true], "b": 1}`),
		"ts":     "infinity", "tstz": "-infinity", "d": "infinity",
		"iv": "1 day 02:00:00", "ip": "10.0.0.1/8", "mood": "happy", "moods": "{sad,happy}",
		"vc": "ab", "ch": "x  ",
	}, rows[0])
	require.Equal(t, map[string]any{
		"id": int64(2), "n": "Infinity", "f": "-Infinity", "r": -1.5,
		"ints": []any{}, "texts": []any{}, "nums": []any{}, "grid": []any{}, "stamps": []any{},
		"u": nil, "jb": json.RawMessage(`null`),
		"ts": "2024-01-01T00:00:00.000001", "tstz": "2024-06-30T23:59:59.999999Z", "d": "-infinity",
		"iv": "-1 mons", "ip": "::1", "mood": "sad", "moods": "{}", "vc": "", "ch": "   ",
	}, rows[1])
	require.Equal(t, "-Infinity", rows[2]["n"])
	require.Equal(t, 1e300, rows[2]["f"])
	require.Equal(t, 0.0, rows[2]["r"])
	require.Equal(t, "0001-01-01T00:00:00", rows[2]["ts"])
	require.Equal(t, "2000-01-01", rows[2]["d"])
}

// TestNumericMatchesText checks the binary numeric decoder against the
// server's own text form over many scales and magnitudes.
func TestNumericMatchesText(t *testing.T) {
	e := pgtest.Env(t)
	table := e.Table("nums")
	sourcetest.Exec(t, e,
		"CREATE TABLE "+table+" (id int, v numeric)",
		"INSERT INTO "+table+` SELECT g, round(((random() - 0.5) * 10 ^ (g % 60 - 25))::numeric, g % 31)
			FROM generate_series(1, 3000) AS s(g)`,
		"INSERT INTO "+table+` VALUES (0, 0), (-1, 0.000), (-2, 10000), (-3, 0.0001), (-4, 123456789012345678901234567890.123456789),
			(-5, -99999999.99990000), (-6, 1e-30), (-7, 100000000), (-8, 0.1), (-9, 12.3456)`)
	m := source.Model{SQL: "SELECT id, v, v::text AS text FROM " + table, PrimaryKey: []string{"id"}}
	_, rows := sourcetest.Rows(t, sourcetest.Open(t, e), m, nil)
	require.Len(t, rows, 3010)
	for _, r := range rows {
		require.Equal(t, json.Number(r["text"].(string)), r["v"], "id %d", r["id"])
	}
}

// TestKeysOfOtherTypes checks keys of types compared as text (uuid, date,
// numeric, bool) keep the order and resume.
func TestKeysOfOtherTypes(t *testing.T) {
	e := pgtest.Env(t)
	table := e.Table("otherkeys")
	sourcetest.Exec(t, e,
		"CREATE TABLE "+table+" (u uuid, d date, n numeric, b bool)",
		"INSERT INTO "+table+` SELECT gen_random_uuid(), date '2024-01-01' + g, g * 1.5 - 100, g % 2 = 0
			FROM generate_series(1, 500) AS s(g)`)
	src := sourcetest.Open(t, e)
	for _, col := range []string{"u", "d", "n"} {
		m := source.Model{SQL: "SELECT * FROM " + table, PrimaryKey: []string{col}}
		keys, _ := sourcetest.Hashes(t, src, m)
		require.Len(t, keys, 500)
		for i := 1; i < len(keys); i++ {
			require.Negative(t, record.Compare(keys[i-1], keys[i]), col)
		}
		rowKeys, _ := sourcetest.Rows(t, src, m, keys[249])
		require.Equal(t, keys[250:], rowKeys, col)
	}
	keys, _ := sourcetest.Hashes(t, src, source.Model{SQL: "SELECT * FROM " + table, PrimaryKey: []string{"b", "d"}})
	parts, err := keys[0].Parts()
	require.NoError(t, err)
	require.Equal(t, []any{"false", "2024-01-02"}, parts)
}

func TestDuplicateColumnNames(t *testing.T) {
	src := sourcetest.Open(t, pgtest.Env(t))
	m := source.Model{SQL: "SELECT 1 AS id, 2 AS x, 3 AS x", PrimaryKey: []string{"id"}}
	err := src.ScanRows(context.Background(), m, nil, func(record.Key, map[string]any) error { return nil })
	require.ErrorContains(t, err, `more than one column named "x"`)
}

// FetchRows gives the rows ScanRows gives for the wanted keys, in the same
// order and shape, whatever the key's types; keys without a row are left
// out.
func TestFetchRowsByKey(t *testing.T) {
	e := pgtest.Env(t)
	table := e.Table("fetch")
	sourcetest.Exec(t, e,
		"CREATE TABLE "+table+" (id int PRIMARY KEY, u uuid, d date, b bool, name text)",
		"INSERT INTO "+table+` SELECT g, gen_random_uuid(), date '2024-01-01' + g, g % 2 = 0, 'row ' || g
			FROM generate_series(1, 300) AS s(g)`)
	src := sourcetest.Open(t, e)
	fetcher, ok := src.(source.KeyFetcher)
	require.True(t, ok)
	require.True(t, fetcher.FetchesRows())

	for _, pk := range [][]string{{"id"}, {"u"}, {"d"}, {"b", "d"}} {
		m := source.Model{SQL: "SELECT id, u, d, b, name FROM " + table + " WHERE id <> 150", PrimaryKey: pk}
		allKeys, allRows := sourcetest.Rows(t, src, m, nil)
		var want []record.Key
		var wantRows []map[string]any
		for i := 0; i < len(allKeys); i += 7 {
			want, wantRows = append(want, allKeys[i]), append(wantRows, allRows[i])
		}
		// A key the model does not have (id 150 is filtered out; 999 is not there).
		missing := map[string]record.Key{
			"id": record.AppendInt(nil, 999),
			"u":  record.AppendString(nil, "00000000-0000-0000-0000-000000000000"),
			"d":  record.AppendString(nil, "2024-05-30"), // id 150's date
			"b":  record.AppendString(record.AppendString(nil, "true"), "2024-05-30"),
		}[pk[0]]
		asked := append([]record.Key{missing}, want...)
		slices.SortFunc(asked, record.Compare)

		var gotKeys []record.Key
		var gotRows []map[string]any
		err := fetcher.FetchRows(context.Background(), m, asked, func(key record.Key, row map[string]any) error {
			gotKeys, gotRows = append(gotKeys, slices.Clone(key)), append(gotRows, row)
			return nil
		})
		require.NoError(t, err, pk)
		require.Equal(t, want, gotKeys, pk)
		require.Equal(t, wantRows, gotRows, pk)
	}
}
