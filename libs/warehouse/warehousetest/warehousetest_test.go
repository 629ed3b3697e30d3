package warehousetest_test

import (
	"context"
	"maps"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/bigquery"
	"github.com/ebb-etl/ebb/libs/source/bigquery/bqtest"
	"github.com/ebb-etl/ebb/libs/source/duckdb"
	"github.com/ebb-etl/ebb/libs/source/duckdb/ducktest"
	"github.com/ebb-etl/ebb/libs/source/redshift"
	"github.com/ebb-etl/ebb/libs/source/redshift/rstest"
	"github.com/ebb-etl/ebb/libs/source/snowflake"
	"github.com/ebb-etl/ebb/libs/source/snowflake/sftest"
	"github.com/ebb-etl/ebb/libs/source/sourcetest"
	"github.com/ebb-etl/ebb/libs/warehouse/warehousetest"
)

// Agree itself is checked on the local stand-ins of the warehouses whose
// real tests use it: Redshift's dialect on Postgres, and the local
// BigQuery and Snowflake servers, whose setup statements run in their
// DuckDB (so in its dialect, not the real warehouses').

// agree opens env's source with its schema as the snapshot schema, creates
// the model table and runs Agree.
func agree(t *testing.T, env sourcetest.Env, open func(ctx context.Context, cfg map[string]any) (source.Warehouse, error),
	m warehousetest.Model) {
	ctx := context.Background()
	cfg := maps.Clone(env.Config)
	if env.Prefix != "" {
		cfg["snapshot_schema"] = strings.TrimSuffix(env.Prefix, ".")
	}
	exec := func(sql string) {
		t.Helper()
		require.NoError(t, env.Exec(ctx, sql), sql)
	}
	m.Table = env.Table(m.Table)
	exec("CREATE TABLE " + m.Table + " (" + m.Org + " INTEGER, " + m.Name + " VARCHAR(100), " + m.Note + " VARCHAR(100), " +
		m.Amount + " DECIMAL(12,3))")
	w, err := open(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { w.Close() })
	m.Text = warehousetest.StandardText
	warehousetest.Agree(t, w, exec, m)
}

var lower = warehousetest.Model{Table: "items", Org: "org", Name: "name", Note: "note", Amount: "amount"}

func TestAgreeRedshiftDialect(t *testing.T) {
	agree(t, rstest.Env(t), func(ctx context.Context, cfg map[string]any) (source.Warehouse, error) {
		return redshift.Open(ctx, cfg)
	}, lower)
}

func TestAgreeDuckDB(t *testing.T) {
	agree(t, ducktest.Env(t), func(ctx context.Context, cfg map[string]any) (source.Warehouse, error) {
		return duckdb.Open(ctx, cfg)
	}, lower)
}

func TestAgreeLocalBigQuery(t *testing.T) {
	agree(t, bqtest.Env(t), func(ctx context.Context, cfg map[string]any) (source.Warehouse, error) {
		return bigquery.Open(ctx, cfg)
	}, lower)
}

// Upper-case names, as real Snowflake folds unquoted ones.
func TestAgreeLocalSnowflake(t *testing.T) {
	agree(t, sftest.Harness(t), func(ctx context.Context, cfg map[string]any) (source.Warehouse, error) {
		return snowflake.Open(ctx, cfg)
	}, warehousetest.Model{Table: "ITEMS", Org: "ORG", Name: "NAME", Note: "NOTE", Amount: "AMOUNT"})
}
