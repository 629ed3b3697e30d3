package sftest

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTranslate(t *testing.T) {
	for in, want := range map[string]string{
		`SELECT a FROM t WHERE a > :1 AND b = :12`:           `SELECT a FROM t WHERE a > $1 AND b = $12`,
		`SELECT CAST(a AS VARCHAR) COLLATE 'utf8' FROM t`:    `SELECT CAST(a AS VARCHAR) COLLATE c FROM t`,
		`SELECT '12:30:00', ':1', "x:1", a::int FROM t`:      `SELECT '12:30:00', ':1', "x:1", a::int FROM t`,
		"SELECT 'utf8', 'it''s :1' -- :2 'utf8'\n, :3":       "SELECT 'utf8', 'it''s :1' -- :2 'utf8'\n, $3",
		`SELECT /* COLLATE 'utf8' :1 */ a collate  'UTF8'`:   `SELECT /* COLLATE 'utf8' :1 */ a collate  c`,
		`SELECT a COLLATE 'de' FROM t WHERE a = 'COLLATE'`:   `SELECT a COLLATE 'de' FROM t WHERE a = 'COLLATE'`,
		`SELECT 'unterminated :1`:                            `SELECT 'unterminated :1`,
		`SELECT x FROM t /* unterminated comment :1 'utf8' `: `SELECT x FROM t /* unterminated comment :1 'utf8' `,
	} {
		require.Equal(t, want, translate(in), in)
	}
}

func TestStatementKind(t *testing.T) {
	for in, want := range map[string]string{
		"SELECT 1":                           "query",
		"  (\nwith a AS (SELECT 1) SELECT *": "query",
		"-- note\n/* x */ SELECT 1":          "query",
		"insert into t values (1)":           "INSERT",
		"ALTER SESSION SET TIMEZONE = 'UTC'": "session",
		"ALTER TABLE t ADD COLUMN b int":     "other",
		"CREATE TABLE t (a int)":             "other",
		"":                                   "other",
	} {
		require.Equal(t, want, statementKind(in), in)
	}
}

func TestSQLError(t *testing.T) {
	require.Equal(t, sfError{"002003", "42S02", "SQL compilation error:\nObject 'x' does not exist or not authorized."},
		sqlError(errors.New("Catalog Error: Table with name x does not exist!\nDid you mean \"y\"?")))
	require.Equal(t, sfError{"001003", "42000", "SQL compilation error:\nsyntax error at or near \"FORM\""},
		sqlError(errors.New(`Parser Error: syntax error at or near "FORM"`)))
	require.Equal(t, "100000", sqlError(errors.New("something else")).code)
}

func TestTranslateTransient(t *testing.T) {
	for in, want := range map[string]string{
		`CREATE TRANSIENT TABLE s."t" AS SELECT 1`:            `CREATE  TABLE s."t" AS SELECT 1`,
		`create or replace transient table t (i int)`:         `create or replace  table t (i int)`,
		`SELECT transient, 'CREATE TRANSIENT' FROM transient`: `SELECT transient, 'CREATE TRANSIENT' FROM transient`,
		`CREATE TABLE "TRANSIENT" (transient_1 int)`:          `CREATE TABLE "TRANSIENT" (transient_1 int)`,
	} {
		require.Equal(t, want, translate(in), in)
	}
}
