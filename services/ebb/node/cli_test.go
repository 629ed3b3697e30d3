package node_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/capture"
	"github.com/ebb-etl/ebb/services/admin/cli"
)

// ebbCLI runs the ebb client commands in-process against the node's admin API.
func ebbCLI(t *testing.T, e *env, args ...string) (string, int) {
	t.Helper()
	root := &cobra.Command{Use: "ebb", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(cli.Commands(&cli.Globals{Server: e.admin})...)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(t.Context())
	if err != nil {
		out.WriteString(err.Error())
	}
	return out.String(), cli.ExitCode(err)
}

const cliYAML = `
sources:
  - name: warehouse
    type: postgres
    config: { dsn: "${EBB_E2E_DSN}", snapshot_schema: SCHEMA }
destinations:
  - name: crm_hook
    type: webhook
    config: { url: "${EBB_E2E_HOOK}", batch_size: 100, headers: {X-Team: growth} }
syncs:
  - name: customers_to_crm
    source: warehouse
    destination: crm_hook
    model: { sql: "SELECT region, id, name FROM SCHEMA.customers", primary_key: [region, id] }
    mode: mirror
    mapping: [ {from: name, to: traits.name}, {const: "warehouse", to: context.source} ]
    schedule: manual
`

// TestCLIDrivesTheWholePipeline applies a YAML file and runs a sync through
// the CLI, as a user would, with secrets coming from the environment.
func TestCLIDrivesTheWholePipeline(t *testing.T) {
	p := newPG(t)
	seedCustomers(p, 2000)
	hook, url := sink(t)
	t.Setenv("EBB_E2E_DSN", postgresDSN())
	t.Setenv("EBB_E2E_HOOK", url)
	e := startEnvWith(t, t.TempDir(), "127.0.0.1:0")
	file := filepath.Join(t.TempDir(), "ebb.yaml")
	require.NoError(t, os.WriteFile(file, []byte(strings.ReplaceAll(cliYAML, "SCHEMA", p.schema)), 0o600))

	// A mapping naming a column the model does not return is refused,
	// checked against the model with a zero-row query.
	typo := filepath.Join(t.TempDir(), "typo.yaml")
	bad := strings.ReplaceAll(strings.ReplaceAll(cliYAML, "SCHEMA", p.schema), "{from: name,", "{from: nmae,")
	require.NoError(t, os.WriteFile(typo, []byte(bad), 0o600))
	out, code := ebbCLI(t, e, "plan", "-f", typo)
	require.NotZero(t, code, out)
	require.Contains(t, out, `sync "customers_to_crm": mapping[0].from: unknown column "nmae": the model returns region, id, name`)

	out, code = ebbCLI(t, e, "plan", "-f", file)
	require.Zero(t, code, out)
	require.Contains(t, out, "+ create sync customers_to_crm")
	out, code = ebbCLI(t, e, "apply", "-f", file)
	require.Zero(t, code, out)
	out, code = ebbCLI(t, e, "plan", "-f", file)
	require.Zero(t, code, out)
	require.Contains(t, out, "No changes.")
	out, code = ebbCLI(t, e, "syncs", "list")
	require.Zero(t, code, out)
	require.Contains(t, out, "customers_to_crm")

	out, code = ebbCLI(t, e, "sync", "run", "customers_to_crm", "--wait")
	require.Zero(t, code, out)
	require.Contains(t, out, "succeeded")
	require.Len(t, hook.State(), 2000)

	// A rejected record: the run fails (exit 2) and `runs failures` names it.
	hook.Reject(func(rec capture.Record) (int, string) {
		if capture.KeyString(rec.Key) == `{"id":2001,"region":"eu"}` {
			return 400, "plan is required"
		}
		return 0, ""
	})
	p.exec(`INSERT INTO $S.customers (region, id, name) VALUES ('eu', 2001, 'x'), ('eu', 2002, 'y')`)
	out, code = ebbCLI(t, e, "sync", "run", "customers_to_crm", "--wait")
	require.Equal(t, 2, code, out)
	runID := regexp.MustCompile(`[0-9A-HJKMNP-TV-Z]{26}`).FindString(out)
	require.NotEmpty(t, runID, out)
	out, code = ebbCLI(t, e, "runs", "failures", runID)
	require.Zero(t, code, out)
	require.Contains(t, out, "eu,2001")
	require.Contains(t, out, "plan is required")
	out, code = ebbCLI(t, e, "runs", "list", "--sync", "customers_to_crm")
	require.Zero(t, code, out)
	require.Contains(t, out, runID)
	out, code = ebbCLI(t, e, "runs", "get", runID)
	require.Zero(t, code, out)
	require.Contains(t, out, "failed")

	// The secret never shows: the source comes back with its reference.
	out, code = ebbCLI(t, e, "sources", "get", "warehouse")
	require.Zero(t, code, out)
	require.Contains(t, out, "${EBB_E2E_DSN}")
}
