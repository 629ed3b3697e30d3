package redshift_test

import (
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/postgres"
	"github.com/ebb-etl/ebb/libs/source/redshift"
	"github.com/ebb-etl/ebb/libs/source/redshift/rstest"
	"github.com/ebb-etl/ebb/libs/source/sourcetest"
)

// TestAcceptance runs the source contract suite with Redshift's dialect
// against Postgres: every statement the dialect writes must run there too.
func TestAcceptance(t *testing.T) {
	sourcetest.Run(t, rstest.Harness)
}

var cols = []postgres.Column{
	{Name: "org", OID: pgtype.Int8OID},
	{Name: "email", OID: pgtype.VarcharOID},
	{Name: "active", OID: pgtype.BoolOID},
	{Name: "doc", OID: 4000}, // SUPER
	{Name: "raw", OID: 6551}, // VARBYTE
	{Name: "Score", OID: pgtype.NumericOID},
}

const model = "SELECT * FROM crm.people -- comment"

func TestHashSQL(t *testing.T) {
	sql, err := redshift.Dialect().HashSQL(model, cols, []string{"org", "email"})
	require.NoError(t, err)
	require.Equal(t, `SELECT m."org", CAST(m."email" AS VARCHAR(65535)), MD5(`+
		`COALESCE(MD5(CAST(m."org" AS VARCHAR(65535))), 'n') || '|' || `+
		`COALESCE(MD5(CAST(m."email" AS VARCHAR(65535))), 'n') || '|' || `+
		`COALESCE(MD5(CASE WHEN m."active" THEN 'true' WHEN NOT m."active" THEN 'false' END), 'n') || '|' || `+
		`COALESCE(MD5(JSON_SERIALIZE(m."doc")), 'n') || '|' || `+
		`COALESCE(MD5(FROM_VARBYTE(m."raw", 'hex')), 'n') || '|' || `+
		`COALESCE(MD5(CAST(m."Score" AS VARCHAR(65535))), 'n'))`+
		" FROM (\n"+model+"\n) AS m"+
		` ORDER BY m."org" NULLS FIRST, CAST(m."email" AS VARCHAR(65535)) NULLS FIRST`, sql)
	requireRedshiftSQL(t, sql)
}

func TestRowsSQL(t *testing.T) {
	after := record.AppendString(record.AppendInt(nil, 7), "a@b")
	sql, args, err := redshift.Dialect().RowsSQL(model, cols, []string{"org", "email"}, after)
	require.NoError(t, err)
	require.Equal(t, `SELECT m.*, m."org", CAST(m."email" AS VARCHAR(65535)) FROM (`+"\n"+model+"\n) AS m"+
		` WHERE (m."org" > CAST($2 AS BIGINT) OR (m."org" = CAST($2 AS BIGINT) AND `+
		`CAST(m."email" AS VARCHAR(65535)) > CAST($1 AS VARCHAR(65535))))`+
		` ORDER BY m."org" NULLS FIRST, CAST(m."email" AS VARCHAR(65535)) NULLS FIRST`, sql)
	require.Equal(t, []any{"a@b", int64(7)}, args)
	requireRedshiftSQL(t, sql)

	// A NULL key part resumes with IS NULL / IS NOT NULL.
	sql, args, err = redshift.Dialect().RowsSQL(model, cols, []string{"active"}, record.AppendNull(nil))
	require.NoError(t, err)
	require.Contains(t, sql, "WHERE CASE WHEN m.\"active\" THEN 'true' WHEN NOT m.\"active\" THEN 'false' END IS NOT NULL")
	require.Empty(t, args)
}

// functionsInBoth are the functions the dialect may call on any column:
// each is documented by both Postgres and Redshift (MD5 returns the same 32
// lower-case hex digits in both; COALESCE and CAST are standard SQL).
// JSON_SERIALIZE and FROM_VARBYTE are Redshift's and only apply to SUPER
// and VARBYTE columns, types Postgres does not have.
// VARCHAR(65535) is the one sized type: Redshift's largest VARCHAR, well
// within Postgres's limit.
var functionsInBoth = []string{"MD5", "COALESCE", "CAST", "VARCHAR"}
var redshiftTypeFunctions = []string{"JSON_SERIALIZE", "FROM_VARBYTE"}

var call = regexp.MustCompile(`\b([A-Za-z_]+)\(`)

// requireRedshiftSQL checks the generated SQL (the model aside) calls only
// those functions and uses none of Postgres's own syntax.
func requireRedshiftSQL(t *testing.T, sql string) {
	t.Helper()
	generated := strings.Replace(sql, model, "", 1)
	for _, m := range call.FindAllStringSubmatch(generated, -1) {
		fn := strings.ToUpper(m[1])
		require.True(t, slices.Contains(functionsInBoth, fn) || slices.Contains(redshiftTypeFunctions, fn),
			"function %s is not known to exist in both Postgres and Redshift", fn)
	}
	for _, pgOnly := range []string{"::", "COLLATE", "ROW(", "decode(", "COPY", "jsonb", ") > ("} {
		require.NotContains(t, generated, pgOnly)
	}
}

// TestTextValues reads types whose text form the binary path never sees,
// with a boolean key, through Redshift's dialect.
func TestTextValues(t *testing.T) {
	e := rstest.Env(t)
	table := e.Table("textvalues")
	sourcetest.Exec(t, e,
		"CREATE TABLE "+table+" (flag boolean, r real, f float8, n numeric(12,3), ts timestamp, tstz timestamptz, d date, j jsonb, b bytea, t time)",
		"INSERT INTO "+table+` VALUES (true, 0.1, 'NaN', -1.250, '2024-02-29 23:59:59.000001', '2024-06-01 08:00:00+05:30',
			'1999-01-01', '{"a": [1, "x"]}', '\x00ff'::bytea, '12:30:00'),
			(false, -2.5, 'Infinity', 0, 'infinity', '-infinity', 'infinity', 'null', '', NULL),
			(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`)
	m := source.Model{SQL: "SELECT * FROM " + table, PrimaryKey: []string{"flag"}}
	src := sourcetest.Open(t, e)
	keys, hashes := sourcetest.Hashes(t, src, m)
	require.Equal(t, []record.Key{record.AppendNull(nil), record.AppendString(nil, "false"), record.AppendString(nil, "true")}, keys)
	require.Len(t, hashes[0], 16)
	rowKeys, rows := sourcetest.Rows(t, src, m, nil)
	require.Equal(t, keys, rowKeys)
	require.Equal(t, map[string]any{
		"flag": false, "r": -2.5, "f": "Infinity", "n": json.Number("0.000"), "ts": "infinity", "tstz": "-infinity",
		"d": "infinity", "j": json.RawMessage("null"), "b": "", "t": nil,
	}, rows[1])
	require.Equal(t, map[string]any{
		"flag": true, "r": float64(float32(0.1)), "f": "NaN", "n": json.Number("-1.250"), "ts": "2024-02-29T23:59:59.000001",
		"tstz": "2024-06-01T02:30:00Z", "d": "1999-01-01", "j": json.RawMessage(`{"a": [1, "x"]}`), "b": "AP8=", "t": "12:30:00",
	}, rows[2])
	after, _ := sourcetest.Rows(t, src, m, keys[1])
	require.Equal(t, keys[2:], after)
}

func TestOpenErrorsNameRedshift(t *testing.T) {
	_, err := redshift.Open(context.Background(), map[string]any{})
	require.EqualError(t, err, `redshift source: config field "dsn" is required and must be a string`)
}
