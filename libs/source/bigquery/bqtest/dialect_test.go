package bqtest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTranslate(t *testing.T) {
	st, err := translate("SELECT `a\\`b`.x, \"it's\", 'a\\'b', MD5(TO_JSON_STRING(r)) -- MD5 'x'\n" +
		"FROM `proj.ds.t` AS r WHERE CAST(x AS INT64) > @p1 OR y = @p2 /* @p3 */")
	require.NoError(t, err)
	require.Equal(t, `SELECT "a`+"`"+`b".x, 'it''s', 'a''b', bq_md5(TO_JSON_STRING(r)) -- MD5 'x'`+"\n"+
		`FROM "ds"."t" AS r WHERE CAST(x AS BIGINT) > $1 OR y = $2 /* @p3 */`, st.sql)
	require.Equal(t, []string{"p1", "p2"}, st.params)

	_, err = translate("SELECT 'open")
	require.Error(t, err)
}

func TestIdentifiers(t *testing.T) {
	require.Equal(t, []string{"select", "a", "from", "ds.t", "join", "u", "on", "x"},
		identifiers(`SELECT a FROM "DS"."t" JOIN u ON x = 'ds.secret'`))
}

func TestEncodings(t *testing.T) {
	ts := time.Date(2024, 3, 1, 10, 34, 56, 789012000, time.UTC)
	require.Equal(t, "1.709289296789012E9", floatSeconds(ts))
	f, err := fieldOf("s", `STRUCT("my field" INTEGER[], b DECIMAL(38,20))[]`)
	require.NoError(t, err)
	require.Equal(t, &field{Name: "s", Type: "RECORD", Mode: "REPEATED", Fields: []*field{
		{Name: "my field", Type: "INTEGER", Mode: "REPEATED"},
		{Name: "b", Type: "BIGNUMERIC", Mode: "NULLABLE"},
	}}, f)
	_, err = fieldOf("g", "INTEGER[][]")
	require.ErrorContains(t, err, "nested arrays are not supported")
}

func TestStatementType(t *testing.T) {
	for sql, want := range map[string]string{
		"SELECT 1":                                         "SELECT",
		"(SELECT 1) UNION ALL (SELECT 2)":                  "SELECT",
		"WITH a AS (SELECT 1) SELECT * FROM a":             "SELECT",
		"INSERT INTO t VALUES (1)":                         "INSERT",
		"delete from t x where exists (select 1)":          "DELETE",
		"CREATE TABLE t (i BIGINT)":                        "CREATE_TABLE",
		"CREATE TABLE t AS SELECT 1 AS i":                  "CREATE_TABLE_AS_SELECT",
		"CREATE TABLE t\nAS WITH j AS (SELECT 1) SELECT 2": "CREATE_TABLE_AS_SELECT",
		"CREATE OR REPLACE TABLE t AS (SELECT 1)":          "CREATE_TABLE_AS_SELECT",
		"DROP TABLE IF EXISTS t":                           "DROP_TABLE",
		"CREATE SCHEMA s":                                  "CREATE_SCHEMA",
		"PRAGMA version":                                   "",
	} {
		require.Equal(t, want, statementType(sql), sql)
	}
}

func TestUnquoteBackticks(t *testing.T) {
	require.Equal(t, `CREATE TABLE "ds"."t" ("`+"`"+`x" INTEGER); SELECT '`+"`p.ds.t`"+`' -- `+"`a`\n"+`FROM "ds"."u"`,
		unquoteBackticks("CREATE TABLE `p.ds.t` (\"`x\" INTEGER); SELECT '`p.ds.t`' -- `a`\nFROM `ds.u`"))
}
