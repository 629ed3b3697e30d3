// Package sourcetest is the acceptance suite every warehouse source passes:
// key encoding and order, hashing, keyset resume, canonical values and
// errors. A source's tests call Run with a Harness that gives each test an
// isolated place (a schema, a file) in a real warehouse.
package sourcetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/source"
)

// Env is one test's isolated place in a warehouse, removed when the test
// ends.
type Env struct {
	// Type is the source type, as in config.Source.Type.
	Type string
	// Config is the source config that reaches this place.
	Config map[string]any
	// Open opens a source on this place.
	Open func(ctx context.Context) (source.Source, error)
	// Exec runs DDL or DML in the warehouse's dialect.
	Exec func(ctx context.Context, sql string) error
	// Prefix qualifies table names: "schema." or "".
	Prefix string
	// Blob renders bytes as a literal of the warehouse's binary type.
	Blob func(b []byte) string
	// ScalelessDecimals is set for warehouses whose query results do not
	// keep a decimal column's declared scale (BigQuery returns 1.5 from a
	// NUMERIC(20,6) column): decimals are then expected without trailing
	// fraction zeros.
	ScalelessDecimals bool
}

// Table qualifies a table name.
func (e Env) Table(name string) string { return e.Prefix + name }

// Harness prepares an Env for one test and registers its cleanup on t.
type Harness func(t *testing.T) Env

// Run runs the suite, each test in an Env of its own.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, e Env)
	}{
		{"Columns", testColumns},
		{"CompositeKey", testCompositeKey},
		{"TextKeyOrder", testTextKeyOrder},
		{"HashChanges", testHashChanges},
		{"ResumeAfter", testResumeAfter},
		{"NullKeyParts", testNullKeyParts},
		{"ModelError", testModelError},
		{"MissingKeyColumn", testMissingKeyColumn},
		{"CanonicalValues", testCanonicalValues},
		{"ManyRows", testManyRows},
		{"StopEarly", testStopEarly},
		{"SchemaChange", testSchemaChange},
		{"Concurrent", testConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h(t)) })
	}
}

// Exec runs statements, failing the test on error.
func Exec(t testing.TB, e Env, sqls ...string) {
	t.Helper()
	for _, sql := range sqls {
		require.NoError(t, e.Exec(context.Background(), sql), sql)
	}
}

// Open opens a source on the Env, closed when the test ends.
func Open(t testing.TB, e Env) source.Source {
	t.Helper()
	src, err := e.Open(context.Background())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, src.Close()) })
	return src
}

// Hashes reads every key and hash of ScanHashes.
func Hashes(t testing.TB, src source.Source, m source.Model) ([]record.Key, [][]byte) {
	t.Helper()
	var keys []record.Key
	var hashes [][]byte
	err := src.ScanHashes(context.Background(), m, func(key record.Key, hash []byte) error {
		keys = append(keys, slices.Clone(key))
		hashes = append(hashes, slices.Clone(hash))
		return nil
	})
	require.NoError(t, err)
	return keys, hashes
}

// Rows reads every key and row of ScanRows after the given key.
func Rows(t testing.TB, src source.Source, m source.Model, after record.Key) ([]record.Key, []map[string]any) {
	t.Helper()
	var keys []record.Key
	var rows []map[string]any
	err := src.ScanRows(context.Background(), m, after, func(key record.Key, row map[string]any) error {
		keys = append(keys, slices.Clone(key))
		rows = append(rows, row)
		return nil
	})
	require.NoError(t, err)
	return keys, rows
}

// requireIncreasing checks keys are strictly increasing under record.Compare.
func requireIncreasing(t testing.TB, keys []record.Key) {
	t.Helper()
	for i := 1; i < len(keys); i++ {
		require.Negative(t, record.Compare(keys[i-1], keys[i]),
			"key %d (%s) does not sort before key %d (%s)", i-1, keys[i-1], i, keys[i])
	}
}

func intKey(id int64) record.Key { return record.AppendInt(nil, id) }

// testColumns checks names and types, and that Int marks the columns keys
// encode as integers: the differ compares it across runs.
func testColumns(t *testing.T, e Env) {
	Exec(t, e, "CREATE TABLE "+e.Table("cols")+" (id integer, name text, big bigint, dec numeric(20,6))")
	cols, err := Open(t, e).Columns(context.Background(), "SELECT * FROM "+e.Table("cols")+" -- a comment\n;\n")
	require.NoError(t, err)
	require.Len(t, cols, 4)
	require.Equal(t, []string{"id", "name", "big", "dec"}, []string{cols[0].Name, cols[1].Name, cols[2].Name, cols[3].Name})
	for _, c := range cols {
		require.NotEmpty(t, c.Type, c.Name)
	}
	require.Equal(t, []bool{true, false, true, false}, []bool{cols[0].Int, cols[1].Int, cols[2].Int, cols[3].Int})
}

// testCompositeKey reads an (int, text) key with unicode text and NULLs in
// the other columns.
func testCompositeKey(t *testing.T, e Env) {
	table := e.Table("composite")
	Exec(t, e,
		"CREATE TABLE "+table+" (org integer, name text, note text, n integer)",
		"INSERT INTO "+table+` VALUES
			(2, 'b', NULL, 1), (1, 'zoë', 'x', NULL), (1, 'Zoe', NULL, NULL),
			(10, 'a', '', 3), (-5, '日本', 'ü', 4), (1, 'zo', 'y', 5), (2, 'B', 'it''s', 6)`)
	m := source.Model{SQL: "SELECT * FROM " + table, PrimaryKey: []string{"org", "name"}}
	src := Open(t, e)

	keys, hashes := Hashes(t, src, m)
	requireIncreasing(t, keys)
	want := [][2]any{{-5, "日本"}, {1, "Zoe"}, {1, "zo"}, {1, "zoë"}, {2, "B"}, {2, "b"}, {10, "a"}}
	require.Len(t, keys, len(want))
	for i, w := range want {
		require.Equal(t, record.AppendString(intKey(int64(w[0].(int))), w[1].(string)), keys[i], "key %d", i)
		require.Len(t, hashes[i], 16)
	}

	rowKeys, rows := Rows(t, src, m, nil)
	require.Equal(t, keys, rowKeys)
	require.Equal(t, map[string]any{"org": int64(1), "name": "zoë", "note": "x", "n": nil}, rows[3])
	require.Equal(t, map[string]any{"org": int64(2), "name": "B", "note": "it's", "n": int64(6)}, rows[4])
}

// testTextKeyOrder checks the warehouse orders text keys as record.Compare
// does: by bytes, whatever the case, accents, digits or length.
func testTextKeyOrder(t *testing.T, e Env) {
	table := e.Table("textkeys")
	values := []string{
		"a", "A", "ab", "a b", "a-b", "aa", "b", "B", "Z", "z", "é", "e", "f", "ä", "Ä", "10", "9", "1",
		"01", " a", "~", "😀", "日本", "ｚ", "a\u0301", "İ", "ß", "ss", "zz", "it's", `say "hi"`,
	}
	var tuples []string
	for _, v := range values {
		tuples = append(tuples, "('"+strings.ReplaceAll(v, "'", "''")+"')")
	}
	Exec(t, e,
		"CREATE TABLE "+table+" (k text)",
		"INSERT INTO "+table+" VALUES "+strings.Join(tuples, ", "))
	m := source.Model{SQL: "SELECT k FROM " + table, PrimaryKey: []string{"k"}}
	src := Open(t, e)

	want := make([]record.Key, len(values))
	for i, v := range values {
		want[i] = record.AppendString(nil, v)
	}
	slices.SortFunc(want, record.Compare)
	keys, _ := Hashes(t, src, m)
	require.Equal(t, want, keys)
	rowKeys, _ := Rows(t, src, m, nil)
	require.Equal(t, want, rowKeys)
}

// testHashChanges checks a row's hash follows every change of its values,
// NULL to empty string included, and nothing else.
func testHashChanges(t *testing.T, e Env) {
	table := e.Table("hashes")
	Exec(t, e,
		"CREATE TABLE "+table+" (id integer, a text, b text, n integer)",
		"INSERT INTO "+table+" VALUES (1, 'x', NULL, 1), (2, '', 'y', NULL), (3, 'a,b', 'c', 3)")
	m := source.Model{SQL: "SELECT * FROM " + table, PrimaryKey: []string{"id"}}
	src := Open(t, e)
	_, base := Hashes(t, src, m)
	_, again := Hashes(t, src, m)
	require.Equal(t, base, again, "hashes must be stable")
	require.NotEqual(t, base[0], base[1])

	changes := []struct {
		update, undo string
		row          int
	}{
		{"UPDATE " + table + " SET b = '' WHERE id = 1", "UPDATE " + table + " SET b = NULL WHERE id = 1", 0},
		{"UPDATE " + table + " SET a = NULL WHERE id = 2", "UPDATE " + table + " SET a = '' WHERE id = 2", 1},
		{"UPDATE " + table + " SET n = 0 WHERE id = 2", "UPDATE " + table + " SET n = NULL WHERE id = 2", 1},
		{"UPDATE " + table + " SET n = 2 WHERE id = 1", "UPDATE " + table + " SET n = 1 WHERE id = 1", 0},
		{"UPDATE " + table + " SET a = 'X' WHERE id = 1", "UPDATE " + table + " SET a = 'x' WHERE id = 1", 0},
		// Moving text across the column boundary must change the hash.
		{"UPDATE " + table + " SET a = 'a', b = 'b,c' WHERE id = 3", "UPDATE " + table + " SET a = 'a,b', b = 'c' WHERE id = 3", 2},
		{"UPDATE " + table + " SET a = 'a,b,c', b = '' WHERE id = 3", "UPDATE " + table + " SET a = 'a,b', b = 'c' WHERE id = 3", 2},
	}
	for _, c := range changes {
		Exec(t, e, c.update)
		_, changed := Hashes(t, src, m)
		for i := range base {
			if i == c.row {
				require.NotEqual(t, base[i], changed[i], "%s: row %d", c.update, i)
			} else {
				require.Equal(t, base[i], changed[i], "%s: row %d", c.update, i)
			}
		}
		Exec(t, e, c.undo)
		_, undone := Hashes(t, src, m)
		require.Equal(t, base, undone, "after %s", c.undo)
	}
}

// testResumeAfter checks ScanRows resumes exactly after a key, present in
// the table or not.
func testResumeAfter(t *testing.T, e Env) {
	table := e.Table("resume")
	Exec(t, e,
		"CREATE TABLE "+table+" (id integer, name text, v text)",
		"INSERT INTO "+table+` VALUES (1, 'a', 'v1'), (1, 'b', 'v2'), (1, 'ba', 'v3'), (2, 'A', 'v4'),
			(2, 'a', 'v5'), (3, '', 'v6'), (3, 'é', 'v7')`)
	m := source.Model{SQL: "SELECT * FROM " + table, PrimaryKey: []string{"id", "name"}}
	src := Open(t, e)
	all, _ := Rows(t, src, m, nil)
	require.Len(t, all, 7)
	for i := range all {
		keys, rows := Rows(t, src, m, all[i])
		require.Equal(t, all[i+1:], append([]record.Key{}, keys...), "after %s", all[i])
		for j, r := range rows {
			require.Equal(t, fmt.Sprintf("v%d", i+j+2), r["v"])
		}
	}
	between := []struct {
		after record.Key
		first int
	}{
		{record.AppendString(intKey(0), "z"), 0},
		{record.AppendString(intKey(1), "az"), 1},
		{record.AppendString(intKey(1), "b "), 2},
		{record.AppendString(intKey(2), "B"), 4},
		{record.AppendString(intKey(3), "z"), 6},
		{record.AppendString(intKey(3), "ÿ"), 7},
		{record.AppendString(intKey(9), ""), 7},
		{record.AppendNull(intKey(3)), 5},
		{record.AppendString(record.AppendNull(nil), "x"), 0},
	}
	for _, b := range between {
		keys, _ := Rows(t, src, m, b.after)
		require.Equal(t, all[b.first:], append([]record.Key{}, keys...), "after %s", b.after)
	}

	err := src.ScanRows(context.Background(), m, intKey(1), func(record.Key, map[string]any) error { return nil })
	require.ErrorContains(t, err, "2 columns")
	err = src.ScanRows(context.Background(), m, record.AppendInt(intKey(1), 2),
		func(record.Key, map[string]any) error { return nil })
	require.ErrorContains(t, err, `column "name"`)
}

// testNullKeyParts checks NULL key parts are encoded, not refused: the
// differ reports them. They sort first, like record.AppendNull.
func testNullKeyParts(t *testing.T, e Env) {
	table := e.Table("nullkeys")
	Exec(t, e,
		"CREATE TABLE "+table+" (id integer, name text)",
		"INSERT INTO "+table+" VALUES (1, 'a'), (NULL, 'b'), (2, NULL), (NULL, NULL), (1, 'b')")
	m := source.Model{SQL: "SELECT * FROM " + table, PrimaryKey: []string{"id", "name"}}
	src := Open(t, e)
	null := func() record.Key { return record.AppendNull(nil) }
	want := []record.Key{
		record.AppendNull(null()),
		record.AppendString(null(), "b"),
		record.AppendString(intKey(1), "a"),
		record.AppendString(intKey(1), "b"),
		record.AppendNull(intKey(2)),
	}
	keys, _ := Hashes(t, src, m)
	require.Equal(t, want, keys)
	var nulls int
	for _, k := range keys {
		if k.HasNull() {
			nulls++
		}
	}
	require.Equal(t, 3, nulls)
	rowKeys, rows := Rows(t, src, m, nil)
	require.Equal(t, want, rowKeys)
	require.Equal(t, map[string]any{"id": nil, "name": "b"}, rows[1])
}

// testModelError checks a failing model surfaces the warehouse's message.
func testModelError(t *testing.T, e Env) {
	src := Open(t, e)
	missing := e.Table("no_such_table")
	m := source.Model{SQL: "SELECT * FROM " + missing, PrimaryKey: []string{"id"}}
	requireModelError := func(err error) {
		t.Helper()
		require.Error(t, err)
		require.Contains(t, err.Error(), "running model: ")
		require.Contains(t, err.Error(), "no_such_table")
	}
	_, err := src.Columns(context.Background(), m.SQL)
	requireModelError(err)
	requireModelError(src.ScanHashes(context.Background(), m, func(record.Key, []byte) error { return nil }))
	requireModelError(src.ScanRows(context.Background(), m, nil, func(record.Key, map[string]any) error { return nil }))

	// An error while rows stream (not while planning) is a model error too.
	table := e.Table("divide")
	Exec(t, e, "CREATE TABLE "+table+" (id integer, d integer)", "INSERT INTO "+table+" VALUES (1, 1), (2, 0)")
	bad := source.Model{SQL: "SELECT id, CAST('x' || CAST(d AS text) AS integer) AS n FROM " + table + " WHERE id = 2", PrimaryKey: []string{"id"}}
	err = src.ScanRows(context.Background(), bad, nil, func(record.Key, map[string]any) error { return nil })
	require.ErrorContains(t, err, "running model: ")
}

func testMissingKeyColumn(t *testing.T, e Env) {
	table := e.Table("nokey")
	Exec(t, e, "CREATE TABLE "+table+" (id integer, email text)")
	src := Open(t, e)
	m := source.Model{SQL: "SELECT * FROM " + table, PrimaryKey: []string{"user_id"}}
	for _, err := range []error{
		src.ScanHashes(context.Background(), m, func(record.Key, []byte) error { return nil }),
		src.ScanRows(context.Background(), m, nil, func(record.Key, map[string]any) error { return nil }),
	} {
		require.ErrorContains(t, err, `primary key column "user_id"`)
		require.ErrorContains(t, err, "id, email")
	}
}

// CanonicalTable creates a table holding one value of each common type (and
// a row of NULLs) and returns a model over it with the rows every source
// must return for it.
func CanonicalTable(t testing.TB, e Env) (source.Model, []map[string]any) {
	t.Helper()
	table := e.Table("canonical")
	Exec(t, e,
		"CREATE TABLE "+table+` (id integer, dec numeric(20,6), small numeric(20,6), tstz timestamptz,
			ts timestamp, d date, flag boolean, doc json, bin bytea, txt text, f float8, big bigint)`,
		"INSERT INTO "+table+` VALUES
			(1, 12345678901234.123456, -0.000001, '2024-03-01 12:34:56.789012+02', '2024-03-01 12:34:56.5',
			 '2024-02-29', true, '{"a":[1,2.50,"x"],"b":null}', `+e.Blob([]byte{0, 1, 0xff, 'A'})+`,
			 'héllo "wörld", it''s 😀', 1.5, 9007199254740993),
			(2, 0, 1.5, '1999-12-31 23:59:59+00', '1999-12-31 23:59:59', '0001-01-01', false, '[]', `+e.Blob(nil)+`,
			 '', -0.25, -1),
			(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`)
	m := source.Model{SQL: "SELECT * FROM " + table, PrimaryKey: []string{"id"}}
	want := []map[string]any{{
		"id":    int64(1),
		"dec":   json.Number("12345678901234.123456"),
		"small": json.Number("-0.000001"),
		"tstz":  "2024-03-01T10:34:56.789012Z",
		"ts":    "2024-03-01T12:34:56.5",
		"d":     "2024-02-29",
		"flag":  true,
		"doc":   json.RawMessage(`{"a":[1,2.50,"x"],"b":null}`),
		"bin":   "AAH/QQ==",
		"txt":   `héllo "wörld", it's 😀`,
		"f":     1.5,
		"big":   int64(9007199254740993),
	}, {
		"id":    int64(2),
		"dec":   json.Number("0.000000"),
		"small": json.Number("1.500000"),
		"tstz":  "1999-12-31T23:59:59Z",
		"ts":    "1999-12-31T23:59:59",
		"d":     "0001-01-01",
		"flag":  false,
		"doc":   json.RawMessage(`[]`),
		"bin":   "",
		"txt":   "",
		"f":     -0.25,
		"big":   int64(-1),
	}, {
		"id": int64(3), "dec": nil, "small": nil, "tstz": nil, "ts": nil, "d": nil, "flag": nil,
		"doc": nil, "bin": nil, "txt": nil, "f": nil, "big": nil,
	}}
	return m, want
}

func testCanonicalValues(t *testing.T, e Env) {
	m, want := CanonicalTable(t, e)
	keys, rows := Rows(t, Open(t, e), m, nil)
	require.Equal(t, []record.Key{intKey(1), intKey(2), intKey(3)}, keys)
	if e.ScalelessDecimals {
		for _, row := range want {
			for k, v := range row {
				if n, ok := v.(json.Number); ok {
					row[k] = trimScale(n)
				}
			}
		}
	}
	require.Equal(t, want, rows)
	// Rows are sent as JSON: every canonical value must encode.
	_, err := json.Marshal(rows)
	require.NoError(t, err)
}

// trimScale drops trailing fraction zeros: "1.500000" is 1.5, "0.000" is 0.
func trimScale(n json.Number) json.Number {
	s := string(n)
	if !strings.Contains(s, ".") {
		return n
	}
	return json.Number(strings.TrimSuffix(strings.TrimRight(s, "0"), "."))
}

func testManyRows(t *testing.T, e Env) {
	const n = 10000
	table := e.Table("many")
	Exec(t, e,
		"CREATE TABLE "+table+" (id bigint, name text, score integer)",
		"INSERT INTO "+table+" SELECT g, 'name ' || CAST(g AS text), g % 7 FROM generate_series(1, 10000) AS s(g)")
	m := source.Model{SQL: "SELECT * FROM " + table, PrimaryKey: []string{"id"}}
	src := Open(t, e)
	keys, hashes := Hashes(t, src, m)
	require.Len(t, keys, n)
	require.Len(t, hashes, n)
	requireIncreasing(t, keys)
	require.Equal(t, intKey(1), keys[0])
	require.Equal(t, intKey(n), keys[n-1])

	rowKeys, rows := Rows(t, src, m, keys[n/2-1])
	require.Equal(t, keys[n/2:], rowKeys)
	require.Equal(t, map[string]any{"id": int64(n/2 + 1), "name": fmt.Sprintf("name %d", n/2+1), "score": int64((n/2 + 1) % 7)}, rows[0])
}

// testStopEarly checks an error from the callback ends the scan with that
// error and leaves the source usable.
func testStopEarly(t *testing.T, e Env) {
	table := e.Table("stop")
	Exec(t, e,
		"CREATE TABLE "+table+" (id bigint)",
		"INSERT INTO "+table+" SELECT g FROM generate_series(1, 10000) AS s(g)")
	m := source.Model{SQL: "SELECT * FROM " + table, PrimaryKey: []string{"id"}}
	src := Open(t, e)
	stop := errors.New("stop")
	var n int
	err := src.ScanHashes(context.Background(), m, func(record.Key, []byte) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	require.ErrorIs(t, err, stop)
	require.Equal(t, 3, n)
	n = 0
	err = src.ScanRows(context.Background(), m, nil, func(record.Key, map[string]any) error {
		n++
		return stop
	})
	require.ErrorIs(t, err, stop)
	require.Equal(t, 1, n)
	keys, _ := Hashes(t, src, m)
	require.Len(t, keys, 10000)
}

// testSchemaChange checks scans follow a table that changes shape between
// them (no stale cached statement).
func testSchemaChange(t *testing.T, e Env) {
	table := e.Table("shape")
	Exec(t, e, "CREATE TABLE "+table+" (id integer, a text)", "INSERT INTO "+table+" VALUES (1, 'x')")
	m := source.Model{SQL: "SELECT * FROM " + table, PrimaryKey: []string{"id"}}
	src := Open(t, e)
	_, before := Hashes(t, src, m)
	_, rows := Rows(t, src, m, nil)
	require.Equal(t, []map[string]any{{"id": int64(1), "a": "x"}}, rows)

	Exec(t, e, "ALTER TABLE "+table+" ADD COLUMN b integer", "UPDATE "+table+" SET b = 2")
	_, after := Hashes(t, src, m)
	require.NotEqual(t, before, after)
	_, rows = Rows(t, src, m, nil)
	require.Equal(t, []map[string]any{{"id": int64(1), "a": "x", "b": int64(2)}}, rows)
	_, rows = Rows(t, src, m, intKey(0))
	require.Len(t, rows, 1)
}

// testConcurrent runs scans of one source in parallel.
func testConcurrent(t *testing.T, e Env) {
	table := e.Table("parallel")
	Exec(t, e,
		"CREATE TABLE "+table+" (id bigint, name text)",
		"INSERT INTO "+table+" SELECT g, 'n' || CAST(g AS text) FROM generate_series(1, 2000) AS s(g)")
	m := source.Model{SQL: "SELECT * FROM " + table, PrimaryKey: []string{"name"}}
	src := Open(t, e)
	want, _ := Hashes(t, src, m)
	const workers = 6
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			var n int
			var err error
			if w%2 == 0 {
				err = src.ScanHashes(context.Background(), m, func(key record.Key, _ []byte) error {
					if record.Compare(key, want[n]) != 0 {
						return fmt.Errorf("hash scan: key %d is %s, want %s", n, key, want[n])
					}
					n++
					return nil
				})
			} else {
				err = src.ScanRows(context.Background(), m, nil, func(key record.Key, _ map[string]any) error {
					if record.Compare(key, want[n]) != 0 {
						return fmt.Errorf("row scan: key %d is %s, want %s", n, key, want[n])
					}
					n++
					return nil
				})
			}
			if err == nil && n != len(want) {
				err = fmt.Errorf("worker %d read %d rows, want %d", w, n, len(want))
			}
			errs <- err
		}()
	}
	for range workers {
		require.NoError(t, <-errs)
	}
}
