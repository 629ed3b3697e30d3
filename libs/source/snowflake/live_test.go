package snowflake_test

import (
	"context"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	sf "github.com/snowflakedb/gosnowflake"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/snowflake"
	"github.com/ebb-etl/ebb/libs/source/sourcetest"
	"github.com/ebb-etl/ebb/libs/warehouse/warehousetest"
)

// liveDSN names a real Snowflake account to test against, as a gosnowflake
// DSN: user:password@account/database/schema?warehouse=WH&role=ROLE (or
// privateKey=... for key-pair authentication). The role needs CREATE SCHEMA
// on the database: each test works in a schema of its own, dropped after.
const liveDSN = "EBB_TEST_SNOWFLAKE_DSN"

// liveEnv connects to the account named by EBB_TEST_SNOWFLAKE_DSN and
// creates a schema for the test, or skips the test saying why.
//
// The shared acceptance suite (sourcetest) runs against the local server
// only: its statements are written in the Postgres/DuckDB dialect with
// lower-case names, which Snowflake folds to upper case. These tests cover
// the same ground in Snowflake's own dialect.
func liveEnv(t *testing.T) (cfg map[string]any, db *sql.DB, schema string) {
	dsn := os.Getenv(liveDSN)
	if dsn == "" {
		t.Skip(liveDSN + " is not set: set it to a gosnowflake DSN " +
			"(user:password@account/database/schema?warehouse=WH&role=ROLE) to run these tests against real Snowflake")
	}
	c, err := sf.ParseDSN(dsn)
	require.NoError(t, err)
	schema = "EBB_TEST_" + strings.ToUpper(strconv.FormatInt(int64(os.Getpid()), 36)) + "_" + strings.ToUpper(t.Name())
	schema = strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, schema)
	cfg = map[string]any{
		"account": c.Account, "user": c.User, "role": c.Role, "warehouse": c.Warehouse,
		"database": c.Database, "schema": schema,
	}
	if c.Password != "" {
		cfg["password"] = c.Password
	}
	if c.PrivateKey != nil {
		der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
		require.NoError(t, err)
		cfg["private_key"] = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}
	db = sql.OpenDB(sf.NewConnector(sf.SnowflakeDriver{}, *c))
	t.Cleanup(func() { _ = db.Close() })
	exec(t, db, "CREATE OR REPLACE SCHEMA "+schema)
	t.Cleanup(func() { _, _ = db.Exec("DROP SCHEMA IF EXISTS " + schema) })
	return cfg, db, schema
}

func exec(t *testing.T, db *sql.DB, sqls ...string) {
	t.Helper()
	for _, q := range sqls {
		_, err := db.Exec(q)
		require.NoError(t, err, q)
	}
}

func TestLiveValuesKeysAndHashes(t *testing.T) {
	cfg, db, schema := liveEnv(t)
	table := schema + ".PEOPLE"
	exec(t, db,
		"CREATE TABLE "+table+` (ORG INTEGER, NAME TEXT, DEC NUMBER(20,6), TSTZ TIMESTAMP_TZ, TS TIMESTAMP_NTZ,
			D DATE, FLAG BOOLEAN, DOC VARIANT, BIN BINARY, F FLOAT, T TIME)`,
		"INSERT INTO "+table+` SELECT 1, 'zoë', 12345678901234.123456, '2024-03-01 12:34:56.789012 +02:00',
			'2024-03-01 12:34:56.5', '2024-02-29', TRUE, PARSE_JSON('{"a":[1,2.5,"x"],"b":null}'),
			TO_BINARY('0001FF41', 'HEX'), 1.5, '12:34:56.5'`,
		"INSERT INTO "+table+` SELECT 1, 'Zoe', 0, NULL, NULL, NULL, FALSE, PARSE_JSON('[]'), TO_BINARY('', 'HEX'), -0.25, NULL`,
		"INSERT INTO "+table+` SELECT -5, '日本', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL`)
	src := open(t, cfg)
	m := source.Model{SQL: "SELECT * FROM " + table, PrimaryKey: []string{"ORG", "NAME"}}

	keys, hashes := sourcetest.Hashes(t, src, m)
	want := []record.Key{
		record.AppendString(record.AppendInt(nil, -5), "日本"),
		record.AppendString(record.AppendInt(nil, 1), "Zoe"),
		record.AppendString(record.AppendInt(nil, 1), "zoë"),
	}
	require.Equal(t, want, keys)
	rowKeys, rows := sourcetest.Rows(t, src, m, nil)
	require.Equal(t, want, rowKeys)
	require.Equal(t, map[string]any{
		"ORG": int64(1), "NAME": "zoë", "DEC": json.Number("12345678901234.123456"),
		"TSTZ": "2024-03-01T10:34:56.789012Z", "TS": "2024-03-01T12:34:56.5", "D": "2024-02-29", "FLAG": true,
		"DOC": json.RawMessage(`{"a":[1,2.5,"x"],"b":null}`), "BIN": "AAH/QQ==", "F": 1.5, "T": "12:34:56.5",
	}, rows[2])
	require.Equal(t, json.Number("0.000000"), rows[1]["DEC"])

	rowKeys, _ = sourcetest.Rows(t, src, m, want[0])
	require.Equal(t, want[1:], rowKeys)

	exec(t, db, "UPDATE "+table+" SET TS = '2024-03-01 12:34:56.500001' WHERE NAME = 'zoë'")
	_, changed := sourcetest.Hashes(t, src, m)
	require.Equal(t, hashes[:2], changed[:2])
	require.NotEqual(t, hashes[2], changed[2], "a microsecond change must change the hash")
}

// TestLiveLargeResult reads a result Snowflake sends in many chunks.
func TestLiveLargeResult(t *testing.T) {
	cfg, _, _ := liveEnv(t)
	src := open(t, cfg)
	const n = 200000
	m := source.Model{
		SQL:        "SELECT SEQ8() AS ID, RANDSTR(40, RANDOM()) AS PAD FROM TABLE(GENERATOR(ROWCOUNT => 200000))",
		PrimaryKey: []string{"ID"},
	}
	keys, _ := sourcetest.Hashes(t, src, m)
	require.Len(t, keys, n)
	require.True(t, slices.IsSortedFunc(keys, record.Compare))
	var rows int
	err := src.ScanRows(context.Background(), m, nil, func(record.Key, map[string]any) error { rows++; return nil })
	require.NoError(t, err)
	require.Equal(t, n, rows)
}

func TestLiveErrors(t *testing.T) {
	cfg, _, schema := liveEnv(t)
	src := open(t, cfg)
	_, err := src.Columns(context.Background(), "SELECT * FROM "+schema+".NO_SUCH_TABLE")
	var se *sf.SnowflakeError
	require.True(t, errors.As(err, &se), "%v", err)
	require.Equal(t, 2003, se.Number)
	require.ErrorContains(t, err, "NO_SUCH_TABLE")

	if _, ok := cfg["password"]; ok {
		cfg["password"] = "not-the-password"
		_, err = snowflake.Open(context.Background(), cfg)
		require.ErrorContains(t, err, "authentication failed")
	}
}

// TestLiveWarehouseEngine runs the warehouse diff engine on real Snowflake
// against the local engine (see warehousetest.Agree), with the engine's
// tables in the test's schema. The model's columns are created unquoted,
// so Snowflake names them in upper case, and the primary key names them
// so: the source matches primary-key names to column names exactly.
func TestLiveWarehouseEngine(t *testing.T) {
	cfg, db, schema := liveEnv(t)
	cfg["snapshot_schema"] = schema // dropped with the test's schema
	table := schema + ".ITEMS"
	exec(t, db, "CREATE TABLE "+table+" (ORG INTEGER, NAME VARCHAR, NOTE VARCHAR, AMOUNT NUMBER(12,3))")
	warehousetest.Agree(t, open(t, cfg), func(sql string) { t.Helper(); exec(t, db, sql) }, warehousetest.Model{
		Table: table, Org: "ORG", Name: "NAME", Note: "NOTE", Amount: "AMOUNT", Text: snowflakeText,
	})
}

// snowflakeText is a string literal: Snowflake reads backslash escapes in
// single-quoted strings, and a doubled quote as a quote.
func snowflakeText(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", "''").Replace(s) + "'"
}
