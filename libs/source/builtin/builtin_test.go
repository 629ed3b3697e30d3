package builtin

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/duckdb/ducktest"
	"github.com/ebb-etl/ebb/libs/source/postgres/pgtest"
	"github.com/ebb-etl/ebb/libs/source/snowflake/sftest"
	"github.com/ebb-etl/ebb/libs/source/sourcetest"
)

func TestOpensEverySourceType(t *testing.T) {
	types := slices.Sorted(maps.Keys(openers))
	require.Equal(t, slices.Sorted(slices.Values(config.SourceTypes)), types)
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	_, err := Open(ctx, config.Source{Name: "wh", Type: "oracle"})
	require.EqualError(t, err, `source "wh": unknown type "oracle" (known: `+strings.Join(config.SourceTypes, ", ")+`)`)

	_, err = Open(ctx, config.Source{Name: "wh", Type: "postgres", Config: map[string]any{"dsn": "${EBB_TEST_UNSET_VARIABLE}"}})
	require.ErrorContains(t, err, `source "wh": config.dsn: environment variable EBB_TEST_UNSET_VARIABLE is not set`)

	_, err = Open(ctx, config.Source{Name: "wh", Type: "postgres"})
	require.ErrorContains(t, err, `source "wh": postgres source: config field "dsn" is required`)

	_, err = Open(ctx, config.Source{Name: "wh", Type: "duckdb", Config: map[string]any{}})
	require.ErrorContains(t, err, `source "wh": duckdb source: config field "path" is required`)
}

// TestOpenNamesSourceOnBadCredentials checks a wrong password is an
// authentication error that names the source.
func TestOpenNamesSourceOnBadCredentials(t *testing.T) {
	s := sftest.New(t)
	cfg := s.Config()
	cfg["password"] = "wrong-password"
	_, err := Open(context.Background(), config.Source{Name: "warehouse", Type: "snowflake", Config: cfg})
	require.ErrorContains(t, err, `source "warehouse": snowflake source: authentication failed for user "EBB"`)
	require.NotContains(t, err.Error(), "wrong-password")
}

func TestOpenExpandsEnvironment(t *testing.T) {
	e := pgtest.Env(t)
	t.Setenv("EBB_TEST_SOURCE_DSN", e.Config["dsn"].(string))
	src, err := Open(context.Background(), config.Source{Name: "wh", Type: "postgres", Config: map[string]any{"dsn": "${EBB_TEST_SOURCE_DSN}"}})
	require.NoError(t, err)
	defer src.Close()
	cols, err := src.Columns(context.Background(), "SELECT 1 AS one")
	require.NoError(t, err)
	require.Equal(t, "one", cols[0].Name)
}

// TestSameDataSameRows checks the same logical data reads the same, keys
// and canonical values, from every warehouse.
func TestSameDataSameRows(t *testing.T) {
	type result struct {
		hashKeys, rowKeys []record.Key
		rows, canonical   []map[string]any
	}
	var results []result
	envs := []sourcetest.Env{pgtest.Env(t), ducktest.Env(t), sftest.Harness(t)}
	for _, e := range envs {
		m, want := sourcetest.CanonicalTable(t, e)
		table := e.Table("people")
		sourcetest.Exec(t, e,
			"CREATE TABLE "+table+" (org integer, name text, note text, score numeric(10,2), seen timestamptz)",
			"INSERT INTO "+table+` VALUES (1, 'Zoë', NULL, 1.5, '2024-01-01 00:00:00+01'), (1, 'zoe', '', -2, NULL),
				(1, 'Zoe', 'it''s', NULL, '2024-07-01 12:00:00.25+00'), (-3, '日本', '😀', 0, NULL),
				(2, 'a b', 'x', 100, NULL), (2, 'a', NULL, NULL, NULL), (2, 'A', NULL, NULL, NULL)`)
		people := source.Model{SQL: "SELECT * FROM " + table, PrimaryKey: []string{"org", "name"}}

		src, err := Open(context.Background(), config.Source{Name: "wh", Type: e.Type, Config: e.Config})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, src.Close()) })
		var r result
		_, r.canonical = sourcetest.Rows(t, src, m, nil)
		require.Equal(t, want, r.canonical, e.Type)
		r.hashKeys, _ = sourcetest.Hashes(t, src, people)
		r.rowKeys, r.rows = sourcetest.Rows(t, src, people, nil)
		require.Equal(t, r.hashKeys, r.rowKeys, e.Type)
		results = append(results, r)
	}
	for i := 1; i < len(results); i++ {
		require.Equal(t, results[0], results[i], "%s reads differ from %s reads", envs[i].Type, envs[0].Type)
	}
	require.Len(t, results[0].rows, 7)
}
