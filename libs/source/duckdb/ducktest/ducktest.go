// Package ducktest gives tests a fresh DuckDB database file.
package ducktest

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/duckdb"
	"github.com/ebb-etl/ebb/libs/source/sourcetest"
)

// Env creates a database file in the test's temporary directory and returns
// an Env on it. Statements run through the process's shared handle, as the
// demo's seeder does.
func Env(t testing.TB) sourcetest.Env {
	t.Helper()
	path := filepath.Join(t.TempDir(), "warehouse.duckdb")
	db, release, err := duckdb.DB(path)
	require.NoError(t, err)
	t.Cleanup(release)
	cfg := map[string]any{"path": path}
	return sourcetest.Env{
		Type:   "duckdb",
		Config: cfg,
		Open: func(ctx context.Context) (source.Source, error) {
			return duckdb.Open(ctx, cfg)
		},
		Exec: func(ctx context.Context, sql string) error {
			_, err := db.ExecContext(ctx, sql)
			return err
		},
		Blob: func(b []byte) string {
			var s strings.Builder
			for _, c := range b {
				fmt.Fprintf(&s, `\x%02X`, c)
			}
			return "'" + s.String() + "'::BLOB"
		},
	}
}

// Harness runs the acceptance suite against DuckDB.
func Harness(t *testing.T) sourcetest.Env { return Env(t) }
