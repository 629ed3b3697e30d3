// Package rstest runs Redshift's dialect against the test Postgres server:
// an isolated schema per test, as package pgtest gives, with the source
// opened as type redshift.
package rstest

import (
	"context"
	"testing"

	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/postgres/pgtest"
	"github.com/ebb-etl/ebb/libs/source/redshift"
	"github.com/ebb-etl/ebb/libs/source/sourcetest"
)

// Env is pgtest.Env with the source opened in Redshift's dialect.
func Env(t testing.TB) sourcetest.Env {
	e := pgtest.Env(t)
	e.Type = "redshift"
	cfg := e.Config
	e.Open = func(ctx context.Context) (source.Source, error) { return redshift.Open(ctx, cfg) }
	return e
}

// Harness runs the acceptance suite.
func Harness(t *testing.T) sourcetest.Env { return Env(t) }
