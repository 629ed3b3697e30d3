package duckdb

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/source"
)

func TestOpenSharesOneHandlePerFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "shared.duckdb")
	db, release, err := DB(path)
	require.NoError(t, err)
	_, err = db.Exec("CREATE TABLE t AS SELECT 1 AS id")
	require.NoError(t, err)

	// A relative spelling of the same path shares the handle too.
	rel, err := filepath.Rel(must(filepath.Abs(".")), path)
	require.NoError(t, err)
	a, err := Open(ctx, map[string]any{"path": path})
	require.NoError(t, err)
	b, err := Open(ctx, map[string]any{"path": rel, "read_only": true})
	require.NoError(t, err)
	require.Same(t, db, a.db)
	require.Same(t, db, b.db)

	// Rows written through the shared handle are visible to the sources.
	_, err = db.Exec("INSERT INTO t VALUES (2)")
	require.NoError(t, err)
	n := 0
	err = b.ScanHashes(ctx, source.Model{SQL: "SELECT * FROM t", PrimaryKey: []string{"id"}},
		func(record.Key, []byte) error { n++; return nil })
	require.NoError(t, err)
	require.Equal(t, 2, n)

	release()
	release() // releasing twice is harmless
	require.NoError(t, a.Close())
	require.NoError(t, a.Close())
	require.Len(t, registry.files, 1)
	require.NoError(t, b.Close())
	require.Empty(t, registry.files)
	require.Error(t, db.Ping(), "the last release closes the database")
}

func TestReadOnly(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ro.duckdb")
	db, release, err := DB(path)
	require.NoError(t, err)
	_, err = db.Exec("CREATE TABLE t AS SELECT 1 AS id")
	require.NoError(t, err)
	release()

	src, err := Open(ctx, map[string]any{"path": path, "read_only": true})
	require.NoError(t, err)
	defer src.Close()
	_, err = src.db.Exec("INSERT INTO t VALUES (2)")
	require.ErrorContains(t, err, "read-only")
	_, _, err = DB(path)
	require.ErrorContains(t, err, "already open read-only")
}

func TestOpenConfigErrors(t *testing.T) {
	ctx := context.Background()
	_, err := Open(ctx, map[string]any{})
	require.ErrorContains(t, err, `"path"`)
	_, err = Open(ctx, map[string]any{"path": filepath.Join(t.TempDir(), "x.duckdb"), "read_only": "yes"})
	require.ErrorContains(t, err, `"read_only"`)
	_, err = Open(ctx, map[string]any{"path": filepath.Join(t.TempDir(), "missing.duckdb"), "read_only": true})
	require.ErrorContains(t, err, "missing.duckdb")
	require.Empty(t, registry.files)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
