// Package pgtest gives tests an isolated schema in the test Postgres server
// (EBB_TEST_POSTGRES_DSN, by default postgres@127.0.0.1:5432/test).
package pgtest

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/postgres"
	"github.com/ebb-etl/ebb/libs/source/sourcetest"
)

// DSN is the test server's connection string.
func DSN() string {
	if dsn := os.Getenv("EBB_TEST_POSTGRES_DSN"); dsn != "" {
		return dsn
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// Env creates a schema with a random name, dropped when the test ends, and
// returns an Env in it.
func Env(t testing.TB) sourcetest.Env {
	t.Helper()
	ctx := context.Background()
	dsn := DSN()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err, "connecting to the test Postgres server (set EBB_TEST_POSTGRES_DSN to change it)")
	schema := fmt.Sprintf("ebb_test_%016x", rand.Uint64())
	_, err = conn.Exec(ctx, "CREATE SCHEMA "+schema)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		require.NoError(t, err)
		require.NoError(t, conn.Close(context.Background()))
	})
	cfg := map[string]any{"dsn": dsn}
	return sourcetest.Env{
		Type:   "postgres",
		Config: cfg,
		Open: func(ctx context.Context) (source.Source, error) {
			return postgres.Open(ctx, cfg)
		},
		Exec: func(ctx context.Context, sql string) error {
			_, err := conn.Exec(ctx, sql)
			return err
		},
		Prefix: schema + ".",
		Blob:   func(b []byte) string { return `'\x` + hex.EncodeToString(b) + `'::bytea` },
	}
}

// Harness runs the acceptance suite against Postgres.
func Harness(t *testing.T) sourcetest.Env { return Env(t) }
