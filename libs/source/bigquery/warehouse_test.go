package bigquery_test

import (
	"context"
	"maps"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/bigquery"
	"github.com/ebb-etl/ebb/libs/source/bigquery/bqtest"
	"github.com/ebb-etl/ebb/libs/source/sourcetest"
)

// openWarehouse opens the source of e with another snapshot dataset.
func openWarehouse(t *testing.T, e sourcetest.Env, snapshot string) *bigquery.Source {
	cfg := maps.Clone(e.Config)
	cfg["snapshot_schema"] = snapshot
	src, err := bigquery.Open(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, src.Close()) })
	return src
}

// TestProbeSchema checks the probe creates a missing snapshot dataset
// (datasets.insert) and leaves no table, and that a refusal names the
// dataset and the permission.
func TestProbeSchema(t *testing.T) {
	ctx := context.Background()
	srv := bqtest.New(t, bqtest.Project, 100)
	e := bqtest.EnvOn(t, srv)

	src := openWarehouse(t, e, "snaps")
	require.NoError(t, src.ProbeSchema(ctx))
	require.NoError(t, src.ProbeSchema(ctx), "the dataset exists now")
	tables, err := srv.Tables(ctx, "snaps")
	require.NoError(t, err)
	require.Empty(t, tables, "the probe table is dropped")

	srv.DenyDatasetCreate(true)
	err = openWarehouse(t, e, "other").ProbeSchema(ctx)
	require.EqualError(t, err, `creating dataset "other" in location "US": bigquery source (project ebb-local) was denied access: `+
		"Access Denied: Project ebb-local: User does not have bigquery.datasets.create permission in project ebb-local. (accessDenied)")
	require.NoError(t, src.ProbeSchema(ctx), "an existing dataset needs no create permission")

	_, err = bigquery.Open(ctx, map[string]any{"project": "p", "snapshot_schema": ""})
	require.EqualError(t, err, `bigquery source: config field "snapshot_schema" must be a non-empty string`)
}

// TestWarehouseStatements runs the kinds of statements the engine writes:
// DDL, INSERT with INT64, STRING and BYTES parameters, DELETE with an alias
// and EXISTS, and reads keys with their payloads and counts back.
func TestWarehouseStatements(t *testing.T) {
	ctx := context.Background()
	srv := bqtest.New(t, bqtest.Project, 2)
	e := bqtest.EnvOn(t, srv)
	w := openWarehouse(t, e, "snaps")
	require.NoError(t, w.ProbeSchema(ctx))
	require.Equal(t, "`ebb-local.snaps.t1`", w.Table("t1"))
	require.Equal(t, "@p3", w.Param(3))
	require.False(t, w.Dialect().DeleteUsing)
	require.Equal(t, "`a\\`b`", w.Dialect().Quote("a`b"))

	t1, keys := w.Table("t1"), w.Table("keys")
	counts, err := w.Exec(ctx,
		source.Stmt{SQL: "CREATE TABLE " + t1 + " (k1 INT64, k2 STRING, h BYTES)"},
		source.Stmt{SQL: "INSERT INTO " + t1 + " VALUES (@p1, @p2, @p3), (@p4, @p5, @p6), (@p7, @p8, @p9)",
			Args: []any{int64(2), "é", []byte{0, 1, 255}, int64(1), "b", []byte("h1"), int64(1), "a", []byte("a")}},
		source.Stmt{SQL: "CREATE TABLE " + keys + " AS SELECT k1, k2 FROM " + t1 + " WHERE k2 = 'é'"})
	require.NoError(t, err)
	require.Equal(t, []int64{0, 3, 0}, counts)

	var got []string
	err = w.ScanKeys(ctx, "SELECT k1, k2, h FROM "+t1+" ORDER BY k1, k2", 2, func(k record.Key, h []byte) error {
		got = append(got, k.String()+"="+string(h))
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, []string{"1,a=a", "1,b=h1", "2,é=\x00\x01\xff"}, got, "read in pages of 2")

	got = nil
	err = w.ScanKeys(ctx, "SELECT k2, 'c' AS c FROM "+t1+" WHERE k1 = 1 ORDER BY k2", 1, func(k record.Key, c []byte) error {
		got = append(got, k.String()+"="+string(c))
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, []string{"a=c", "b=c"}, got)

	counts, err = w.Exec(ctx, source.Stmt{SQL: "DELETE FROM " + t1 + " t WHERE EXISTS (SELECT 1 FROM " + keys +
		" q WHERE q.k1 = t.k1 AND q.k2 = t.k2)"}, source.Stmt{SQL: "DROP TABLE " + keys})
	require.NoError(t, err)
	require.Equal(t, []int64{1, 0}, counts)
	n, err := w.QueryInt(ctx, "SELECT count(*) FROM "+t1)
	require.NoError(t, err)
	require.EqualValues(t, 2, n)

	for _, name := range []string{"t2", "t3", "t4", "t5"} {
		_, err := w.Exec(ctx, source.Stmt{SQL: "CREATE TABLE " + w.Table(name) + " (i INT64)"})
		require.NoError(t, err)
	}
	tables, err := w.Tables(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"t1", "t2", "t3", "t4", "t5"}, tables, "listed in pages of 2")
}

// TestWarehouseErrors checks errors name the statement or the dataset.
func TestWarehouseErrors(t *testing.T) {
	ctx := context.Background()
	e := bqtest.Env(t)
	w := openWarehouse(t, e, "snaps")

	_, err := w.Tables(ctx)
	require.EqualError(t, err, `listing tables of dataset "snaps": Not found: Dataset ebb-local:snaps was not found in location US (bigquery notFound, HTTP 404)`)

	require.NoError(t, w.ProbeSchema(ctx))
	counts, err := w.Exec(ctx, source.Stmt{SQL: "CREATE TABLE " + w.Table("a") + " (i INT64)"},
		source.Stmt{SQL: "INSERT INTO " + w.Table("nope") + " VALUES (1)"})
	require.EqualError(t, err, "running \"INSERT INTO `ebb-local.snaps.nope` VALUES (1)\": "+
		"Not found: Table ebb-local:snaps.nope was not found in location US (bigquery notFound, HTTP 404)")
	require.Equal(t, []int64{0}, counts, "the statements before the failure ran")

	_, err = w.Exec(ctx, source.Stmt{SQL: "INSERT INTO " + w.Table("a") + " VALUES (@p1)", Args: []any{1.5}})
	require.EqualError(t, err, "running \"INSERT INTO `ebb-local.snaps.a` VALUES (@p1)\": parameter @p1 is a float64, not an int64, string or []byte")

	_, err = w.QueryInt(ctx, "SELECT i FROM "+w.Table("a"))
	require.EqualError(t, err, "running \"SELECT i FROM `ebb-local.snaps.a`\": it returned 0 rows where one was expected")
}

// TestChangedModel checks the model is read only at the change table's
// keys, text keys compared as STRING, and resumes after a key.
func TestChangedModel(t *testing.T) {
	ctx := context.Background()
	e := bqtest.Env(t)
	sourcetest.Exec(t, e,
		"CREATE TABLE ebb_test.people (id INTEGER, region VARCHAR, m VARCHAR)",
		"INSERT INTO ebb_test.people VALUES (1, 'eu', 'x'), (2, 'eu', 'y'), (3, 'us', 'z'), (4, 'us', 'w')")
	w := openWarehouse(t, e, bqtest.Dataset)
	chg := w.Table("chg")
	_, err := w.Exec(ctx, source.Stmt{SQL: "CREATE TABLE " + chg + " (k1 INT64, k2 STRING, c STRING)"},
		source.Stmt{SQL: "INSERT INTO " + chg + " VALUES (@p1, @p2, 'c'), (@p3, @p4, 'a'), (@p5, @p6, 'd')",
			Args: []any{int64(3), "us", int64(1), "eu", int64(9), "eu"}})
	require.NoError(t, err)
	m, err := w.ChangedModel(ctx, source.Model{SQL: "SELECT * FROM people", PrimaryKey: []string{"id", "region"}}, "chg")
	require.NoError(t, err)
	var got []map[string]any
	err = w.ScanRows(ctx, m, nil, func(_ record.Key, row map[string]any) error {
		got = append(got, row)
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, []map[string]any{
		{"id": int64(1), "region": "eu", "m": "x"},
		{"id": int64(3), "region": "us", "m": "z"},
	}, got)

	got = nil
	after := record.AppendString(record.AppendInt(nil, 1), "eu")
	err = w.ScanRows(ctx, m, after, func(_ record.Key, row map[string]any) error {
		got = append(got, row)
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, []map[string]any{{"id": int64(3), "region": "us", "m": "z"}}, got)
}
