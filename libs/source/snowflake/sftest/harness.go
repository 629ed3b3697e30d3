package sftest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/snowflake"
	"github.com/ebb-etl/ebb/libs/source/sourcetest"
)

// Env starts a server and returns it with an Env whose sources reach it.
// Exec prepares data directly in the server's DuckDB database (the suite's
// statements are in the DuckDB/Postgres dialect); the source under test
// reads it through the driver and the wire protocol.
func Env(t testing.TB, opts ...Option) (*Server, sourcetest.Env) {
	t.Helper()
	s := New(t, opts...)
	cfg := s.Config()
	return s, sourcetest.Env{
		Type:   "snowflake",
		Config: cfg,
		Open: func(ctx context.Context) (source.Source, error) {
			return snowflake.Open(ctx, cfg)
		},
		Exec: func(ctx context.Context, sql string) error {
			_, err := s.DB.ExecContext(ctx, sql)
			return err
		},
		Blob: func(b []byte) string {
			var lit strings.Builder
			for _, c := range b {
				fmt.Fprintf(&lit, `\x%02X`, c)
			}
			return "'" + lit.String() + "'::BLOB"
		},
	}
}

// Harness runs the acceptance suite against a local server.
func Harness(t *testing.T) sourcetest.Env {
	_, e := Env(t)
	return e
}
