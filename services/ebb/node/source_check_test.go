package node_test

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const checkYAML = `
sources:
  - name: warehouse
    type: postgres
    config: { dsn: "${EBB_E2E_DSN}", snapshot_schema: SCHEMA }
destinations:
  - name: hook
    type: webhook
    config: { url: "http://127.0.0.1:1/hook" }
syncs:
  - name: people
    source: warehouse
    destination: hook
    model: { sql: "SELECT id, name FROM SCHEMA.people", primary_key: [id] }
    mode: upsert
    mapping: [ {from: name, to: name} ]
    schedule: manual
`

// TestSourceCheckNamesMissingGrants applies a source whose role cannot read
// the model's table: apply succeeds with a warning naming the grant and its
// fix, `sources check` exits non-zero until an administrator runs the fix,
// and a source that cannot connect fails the apply, named.
func TestSourceCheckNamesMissingGrants(t *testing.T) {
	p := newPG(t)
	role := p.schema + "_role"
	p.exec("CREATE TABLE $S.people (id int, name text)")
	p.exec("CREATE ROLE " + role + " LOGIN")
	t.Cleanup(func() {
		_, _ = p.pool.Exec(context.Background(), "DROP OWNED BY "+role)
		_, _ = p.pool.Exec(context.Background(), "DROP ROLE "+role)
	})
	p.exec("GRANT USAGE, CREATE ON SCHEMA $S TO " + role)
	u, err := url.Parse(postgresDSN())
	require.NoError(t, err)
	u.User = url.User(role)
	t.Setenv("EBB_E2E_DSN", u.String())
	e := startEnvWith(t, t.TempDir(), "127.0.0.1:0")
	file := filepath.Join(t.TempDir(), "ebb.yaml")
	require.NoError(t, os.WriteFile(file, []byte(strings.ReplaceAll(checkYAML, "SCHEMA", p.schema)), 0o600))

	fix := `GRANT SELECT ON TABLE "` + p.schema + `"."people" TO "` + role + `";`
	out, code := ebbCLI(t, e, "apply", "-f", file)
	require.Zero(t, code, out)
	require.Contains(t, out, `warning: source "warehouse" is missing 1 grant(s)`)
	require.Contains(t, out, "MISSING  SELECT on table "+p.schema+".people")
	require.Contains(t, out, `read by the model of sync "people"`)
	require.Contains(t, out, "fix: "+fix)

	out, code = ebbCLI(t, e, "sources", "check", "warehouse")
	require.NotZero(t, code, out)
	require.Contains(t, out, "fix: "+fix)
	require.Contains(t, out, "OK       USAGE and CREATE on snapshot schema "+p.schema)

	p.exec(fix)
	out, code = ebbCLI(t, e, "sources", "check", "warehouse")
	require.Zero(t, code, out)
	require.NotContains(t, out, "MISSING")

	out, code = ebbCLI(t, e, "sources", "setup-sql", "postgres")
	require.Zero(t, code, out)
	require.Contains(t, out, `CREATE ROLE "ebb" LOGIN PASSWORD`)
	out, code = ebbCLI(t, e, "sources", "setup-sql", "oracle")
	require.NotZero(t, code, out)
	require.Contains(t, out, `no setup for source type "oracle"`)

	// A source that cannot connect at all fails the apply, named.
	broken := filepath.Join(t.TempDir(), "broken.yaml")
	yaml := strings.ReplaceAll(strings.ReplaceAll(checkYAML, "SCHEMA", p.schema), "${EBB_E2E_DSN}", "postgres://nobody@127.0.0.1:1/x?connect_timeout=2")
	require.NoError(t, os.WriteFile(broken, []byte(yaml), 0o600))
	out, code = ebbCLI(t, e, "apply", "-f", broken)
	require.NotZero(t, code, out)
	require.Contains(t, out, `source "warehouse"`)
	require.Contains(t, out, "connect")
}
