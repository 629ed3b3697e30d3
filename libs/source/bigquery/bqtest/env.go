package bqtest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/bigquery"
	"github.com/ebb-etl/ebb/libs/source/sourcetest"
)

// Project and Dataset are the names Env uses.
const (
	Project = "ebb-local"
	Dataset = "ebb_test"
)

// Config is the source config that reaches the server's dataset.
func (s *Server) Config(dataset string) map[string]any {
	return map[string]any{"project": s.Project, "dataset": dataset, "endpoint": s.Endpoint()}
}

// StorageConfig is Config with the Storage Read API on, at the server's
// gRPC endpoint (call ServeStorage first: without it storage_endpoint is
// empty and Open refuses the config).
func (s *Server) StorageConfig(dataset string) map[string]any {
	cfg := s.Config(dataset)
	cfg["storage_read"] = true
	cfg["storage_endpoint"] = s.StorageEndpoint()
	return cfg
}

// EnvOn returns an Env on dataset Dataset of a server, creating it. Setup
// statements run in DuckDB directly, the warehouse behind the server.
func EnvOn(t testing.TB, s *Server) sourcetest.Env {
	t.Helper()
	return envOn(t, s, s.Config(Dataset))
}

// StorageEnvOn is EnvOn with the Storage Read API served and on.
func StorageEnvOn(t testing.TB, s *Server) sourcetest.Env {
	t.Helper()
	if err := s.ServeStorage(); err != nil {
		t.Fatal(err)
	}
	return envOn(t, s, s.StorageConfig(Dataset))
}

func envOn(t testing.TB, s *Server, cfg map[string]any) sourcetest.Env {
	t.Helper()
	if err := s.Exec(context.Background(), "CREATE SCHEMA "+Dataset); err != nil {
		t.Fatalf("creating dataset: %v", err)
	}
	return sourcetest.Env{
		Type:   "bigquery",
		Config: cfg,
		Open: func(ctx context.Context) (source.Source, error) {
			return bigquery.Open(ctx, cfg)
		},
		Exec:              s.Exec,
		Prefix:            Dataset + ".",
		Blob:              duckBlob,
		ScalelessDecimals: true,
	}
}

// Env starts a server paging at 1,000 rows and returns an Env on it.
func Env(t testing.TB) sourcetest.Env { return EnvOn(t, New(t, Project, 1000)) }

// Harness runs the acceptance suite against the local server.
func Harness(t *testing.T) sourcetest.Env { return Env(t) }

// StorageEnv starts a server with the Storage Read API and returns an Env
// reading through it: results page at two rows, so any bigger result is
// read as Arrow record batches, of 100 rows.
func StorageEnv(t testing.TB) sourcetest.Env {
	s := New(t, Project, 2)
	s.BatchRows = 100
	return StorageEnvOn(t, s)
}

// StorageHarness runs the acceptance suite through the Storage Read API.
func StorageHarness(t *testing.T) sourcetest.Env { return StorageEnv(t) }

func duckBlob(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		fmt.Fprintf(&s, `\x%02X`, c)
	}
	return "'" + s.String() + "'::BLOB"
}
