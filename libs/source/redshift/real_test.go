package redshift_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/redshift"
	"github.com/ebb-etl/ebb/libs/source/sourcetest"
	"github.com/ebb-etl/ebb/libs/warehouse/warehousetest"
)

// realSchema connects to the cluster named by EBB_TEST_REDSHIFT_DSN and
// creates a schema for the test, dropped after, or skips the test saying
// why. exec runs a statement there, failing the test on error.
func realSchema(t *testing.T) (dsn, schema string, exec func(sql string)) {
	t.Helper()
	dsn = os.Getenv("EBB_TEST_REDSHIFT_DSN")
	if dsn == "" {
		t.Skip("EBB_TEST_REDSHIFT_DSN is not set: Redshift's dialect is tested against Postgres only")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	schema = fmt.Sprintf("ebb_test_%016x", rand.Uint64())
	exec = func(sql string) {
		t.Helper()
		_, err := conn.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol)
		require.NoError(t, err, sql)
	}
	exec("CREATE SCHEMA " + schema)
	t.Cleanup(func() {
		_, _ = conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE", pgx.QueryExecModeSimpleProtocol)
		_ = conn.Close(context.Background())
	})
	return dsn, schema, exec
}

// TestRealRedshift reads Redshift's own types from a real cluster, named by
// EBB_TEST_REDSHIFT_DSN (a user able to create a schema). The contract
// suite's setup SQL is Postgres's (bytea, json, generate_series into a
// table), which Redshift refuses, so this test writes its data in Redshift's
// SQL and checks the same properties: key order, hashes, resume, values and
// the credential check.
func TestRealRedshift(t *testing.T) {
	dsn, schema, exec := realSchema(t)
	ctx := context.Background()
	table := schema + ".people"
	exec("CREATE TABLE " + table + ` (org BIGINT, name VARCHAR(100), flag BOOLEAN, score DECIMAL(12,3),
		seen TIMESTAMPTZ, born DATE, doc SUPER, raw VARBYTE(16), f DOUBLE PRECISION)`)
	exec("INSERT INTO " + table + ` VALUES
		(1, 'zoë', true, 1.500, '2024-03-01 12:00:00+02', '2000-02-29', JSON_PARSE('{"a":[1,"x"]}'), 'ab'::varbyte, 0.1),
		(1, 'Zoe', false, -2, NULL, NULL, NULL, NULL, NULL),
		(2, '', NULL, 0, '1999-12-31 23:59:59+00', '0001-01-01', JSON_PARSE('[]'), ''::varbyte, -1.5)`)

	src, err := redshift.Open(ctx, map[string]any{"dsn": dsn})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, src.Close()) })
	m := source.Model{SQL: "SELECT * FROM " + table, PrimaryKey: []string{"org", "name"}}
	keys, hashes := sourcetest.Hashes(t, src, m)
	require.Equal(t, []record.Key{
		record.AppendString(record.AppendInt(nil, 1), "Zoe"),
		record.AppendString(record.AppendInt(nil, 1), "zoë"),
		record.AppendString(record.AppendInt(nil, 2), ""),
	}, keys)
	require.Len(t, hashes[0], 16)
	rowKeys, rows := sourcetest.Rows(t, src, m, nil)
	require.Equal(t, keys, rowKeys)
	require.Equal(t, map[string]any{
		"org": int64(1), "name": "zoë", "flag": true, "score": json.Number("1.500"),
		"seen": "2024-03-01T10:00:00Z", "born": "2000-02-29", "doc": json.RawMessage(`{"a":[1,"x"]}`),
		"raw": "YWI=", "f": 0.1,
	}, rows[1])
	after, _ := sourcetest.Rows(t, src, m, keys[0])
	require.Equal(t, keys[1:], after)

	exec("UPDATE " + table + " SET flag = NULL WHERE name = 'Zoe'")
	_, changed := sourcetest.Hashes(t, src, m)
	require.NotEqual(t, hashes[0], changed[0])
	require.Equal(t, hashes[1:], changed[1:])

	findings, err := src.Check(ctx, source.CheckRequest{
		Models: []source.CheckModel{{Sync: "people", SQL: m.SQL}}, SnapshotSchema: schema,
	})
	require.NoError(t, err)
	for _, f := range findings {
		t.Logf("%v %s: %s %s", f.OK, f.Check, f.Detail, f.Fix)
	}
	require.Zero(t, source.Missing(findings))
}

// TestRealRedshiftWarehouseEngine runs the warehouse diff engine on a real
// cluster against the local engine (see warehousetest.Agree), with the
// engine's tables in the test's schema. Texts are VARCHAR(100): Redshift
// sizes VARCHARs in bytes, and the keys' emoji take four. Keys never end
// in a space: Redshift's comparisons ignore trailing blanks.
func TestRealRedshiftWarehouseEngine(t *testing.T) {
	dsn, schema, exec := realSchema(t)
	table := schema + ".items"
	exec("CREATE TABLE " + table + " (org INTEGER, name VARCHAR(100), note VARCHAR(100), amount DECIMAL(12,3))")
	src, err := redshift.Open(context.Background(), map[string]any{"dsn": dsn, "snapshot_schema": schema})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, src.Close()) })
	warehousetest.Agree(t, src, exec, warehousetest.Model{
		Table: table, Org: "org", Name: "name", Note: "note", Amount: "amount",
		// Redshift reads a backslash in a literal as an escape; the
		// generated texts have none.
		Text: warehousetest.StandardText,
	})
}
