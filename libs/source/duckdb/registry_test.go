package duckdb

import (
	"context"
	"os"
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

// A model cannot read the host's files (it did: `SELECT * FROM
// read_text('/etc/passwd')` showed in `ebb sync plan`), nor switch that
// back on, unless the source allows it.
func TestModelsCannotReachTheHostsFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.txt")
	require.NoError(t, os.WriteFile(secret, []byte("s3cret"), 0o600))
	read := source.Model{SQL: "SELECT 1 AS id, content FROM read_text('" + secret + "')", PrimaryKey: []string{"id"}}

	src, err := Open(ctx, map[string]any{"path": filepath.Join(dir, "closed.duckdb")})
	require.NoError(t, err)
	defer src.Close()
	err = src.ScanRows(ctx, read, nil, func(record.Key, map[string]any) error { return nil })
	require.ErrorContains(t, err, "file system operations are disabled")
	_, err = src.db.ExecContext(ctx, "SET enable_external_access = true")
	require.Error(t, err)
	_, err = src.db.ExecContext(ctx, "ATTACH '"+filepath.Join(dir, "other.duckdb")+"' AS other")
	require.ErrorContains(t, err, "disabled")

	// Allowed by the source's config, the same model reads the file.
	open, err := Open(ctx, map[string]any{"path": filepath.Join(dir, "open.duckdb"), "allow_external_access": true})
	require.NoError(t, err)
	defer open.Close()
	var got []string
	err = open.ScanRows(ctx, read, nil, func(_ record.Key, row map[string]any) error {
		got = append(got, row["content"].(string))
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, []string{"s3cret"}, got)

	// One handle per file: two sources of one file must agree.
	_, err = Open(ctx, map[string]any{"path": filepath.Join(dir, "closed.duckdb"), "allow_external_access": true})
	require.ErrorContains(t, err, "already open in this process with allow_external_access false")
	_, err = Open(ctx, map[string]any{"path": filepath.Join(dir, "open.duckdb"), "allow_external_access": "yes"})
	require.ErrorContains(t, err, `"allow_external_access" must be a boolean`)
}
