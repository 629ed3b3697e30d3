package cli_test

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/run"
	"github.com/ebb-etl/ebb/libs/snapshot"
	"github.com/ebb-etl/ebb/services/admin/cli"
	"github.com/ebb-etl/ebb/services/admin/internal/admintest"
)

const ebbYAML = `sources:
  - name: warehouse
    type: postgres
    config: { dsn: "postgres://ebb:hunter2@db:5432/wh", password: "${PG_PASSWORD}" }
destinations:
  - name: crm_hook
    type: webhook
    config: { url: "http://127.0.0.1:9000/hook", batch_size: 100 }
syncs:
  - name: customers_to_crm
    source: warehouse
    destination: crm_hook
    model: { sql: "SELECT id, email FROM customers", primary_key: [id] }
    mode: mirror
    mapping: [ {from: email, to: traits.email}, {const: "warehouse", to: context.source} ]
    schedule: manual
`

// ebb runs the client commands in-process, as the ebb binary would.
func ebb(t *testing.T, env *admintest.Env, token string, args ...string) (string, error) {
	t.Helper()
	g := &cli.Globals{Server: env.Addr, Token: token}
	return execute(t, g, args...)
}

func execute(t *testing.T, g *cli.Globals, args ...string) (string, error) {
	t.Helper()
	root := &cobra.Command{Use: "ebb", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(cli.Commands(g)...)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(t.Context())
	return out.String(), err
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ebb.yaml")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

func TestApplyAndPlan(t *testing.T) {
	env := admintest.Start(t, "")
	ctx := t.Context()
	file := writeFile(t, ebbYAML)

	out, err := ebb(t, env, "", "plan", "-f", file)
	require.NoError(t, err)
	require.Contains(t, out, "+ create sync customers_to_crm")
	f, err := env.Configs.Load(ctx)
	require.NoError(t, err)
	require.Empty(t, f.Sources, "plan writes nothing")

	out, err = ebb(t, env, "", "apply", "-f", file)
	require.NoError(t, err)
	require.Equal(t, "+ create source warehouse\n+ create destination crm_hook\n+ create sync customers_to_crm\n"+
		"apply: 3 to create, 0 to update, 0 to delete\n", out)
	src, err := env.Configs.Source(ctx, "warehouse")
	require.NoError(t, err)
	require.Equal(t, "${PG_PASSWORD}", src.Config["password"], "stored unexpanded")

	out, err = ebb(t, env, "", "plan", "-f", file)
	require.NoError(t, err)
	require.Equal(t, "No changes.\n", out)

	changed := strings.Replace(ebbYAML, "batch_size: 100", "batch_size: 50", 1)
	changed = changed[:strings.Index(changed, "syncs:")]
	file2 := writeFile(t, changed)
	out, err = ebb(t, env, "", "plan", "-f", file2)
	require.NoError(t, err)
	require.Equal(t, "~ update destination crm_hook (config.batch_size)\n- delete sync customers_to_crm\n"+
		"plan: 0 to create, 1 to update, 1 to delete\n", out)
	out, err = ebb(t, env, "", "apply", "-f", file2)
	require.NoError(t, err)
	require.Contains(t, out, "apply: 0 to create, 1 to update, 1 to delete")
	f, err = env.Configs.Load(ctx)
	require.NoError(t, err)
	require.Empty(t, f.Syncs)
	require.EqualValues(t, 50, f.Destinations[0].Config["batch_size"])
}

func TestApplyNamesFileLine(t *testing.T) {
	env := admintest.Start(t, "")
	file := writeFile(t, strings.Replace(ebbYAML, "mode: mirror", "mode: sideways", 1))
	_, err := ebb(t, env, "", "apply", "-f", file)
	require.ErrorContains(t, err, file+":14:")
	require.ErrorContains(t, err, "mode")
	require.Equal(t, 1, cli.ExitCode(err))

	f, err := env.Configs.Load(t.Context())
	require.NoError(t, err)
	require.Empty(t, f.Sources)
}

// Issue 13, item 9 (its static part): plan and apply refuse a
// destination URL that is not an absolute http(s) URL, naming the file,
// line, destination and field; a ${VAR} reference is left to the process
// that connects.
func TestPlanRefusesADestinationURL(t *testing.T) {
	env := admintest.Start(t, "")
	for _, cmd := range []string{"plan", "apply"} {
		file := writeFile(t, strings.Replace(ebbYAML, `"http://127.0.0.1:9000/hook"`, `"not a url"`, 1))
		_, err := ebb(t, env, "", cmd, "-f", file)
		require.EqualError(t, err, file+`:8:20: destinations[0].config.url: destination "crm_hook": `+
			`want an absolute http:// or https:// URL, such as https://example.com/hook`, cmd)
	}
	file := writeFile(t, strings.Replace(ebbYAML, `"http://127.0.0.1:9000/hook"`, `"${CRM_HOOK_URL}"`, 1))
	_, err := ebb(t, env, "", "plan", "-f", file)
	require.NoError(t, err)
}

func TestInspect(t *testing.T) {
	env := admintest.Start(t, "")
	_, err := ebb(t, env, "", "apply", "-f", writeFile(t, ebbYAML))
	require.NoError(t, err)

	out, err := ebb(t, env, "", "sources", "get", "warehouse")
	require.NoError(t, err)
	require.Contains(t, out, "postgres://ebb:****@db:5432/wh")
	require.Contains(t, out, "${PG_PASSWORD}")
	require.NotContains(t, out, "hunter2")

	out, err = ebb(t, env, "", "sources", "get", "warehouse", "--output", "json")
	require.NoError(t, err)
	var src struct {
		Name   string            `json:"name"`
		Config map[string]string `json:"config"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &src))
	require.Equal(t, "postgres://ebb:****@db:5432/wh", src.Config["dsn"])
	require.Equal(t, "${PG_PASSWORD}", src.Config["password"])

	out, err = ebb(t, env, "", "sources", "list")
	require.NoError(t, err)
	require.Regexp(t, `NAME\s+TYPE\nwarehouse\s+postgres\n`, out)
	out, err = ebb(t, env, "", "destinations", "list", "-o", "json")
	require.NoError(t, err)
	require.Contains(t, out, `"crm_hook"`)
	out, err = ebb(t, env, "", "destinations", "get", "crm_hook")
	require.NoError(t, err)
	require.Regexp(t, `batch_size:\s+100`, out)

	out, err = ebb(t, env, "", "syncs", "list")
	require.NoError(t, err)
	require.Regexp(t, `customers_to_crm\s+warehouse\s+crm_hook\s+mirror\s+manual\s+-`, out)
	out, err = ebb(t, env, "", "sync", "get", "customers_to_crm")
	require.NoError(t, err)
	require.Contains(t, out, "const \"warehouse\" -> context.source")
	out, err = ebb(t, env, "", "sync", "get", "customers_to_crm", "-o", "json")
	require.NoError(t, err)
	require.Contains(t, out, `"primary_key"`)
	_, err = ebb(t, env, "", "sync", "get", "nope")
	require.ErrorContains(t, err, `sync "nope": not found`)
	require.Equal(t, codes.NotFound, status.Code(err))
	_, err = ebb(t, env, "", "sources", "list", "-o", "yaml")
	require.ErrorContains(t, err, "want text or json")

	_, err = ebb(t, env, "", "sync", "delete", "customers_to_crm")
	require.NoError(t, err)
	out, err = ebb(t, env, "", "syncs", "list")
	require.NoError(t, err)
	require.NotContains(t, out, "customers_to_crm")
}

func TestSyncRun(t *testing.T) {
	env := admintest.Start(t, "")
	ctx := t.Context()
	_, err := ebb(t, env, "", "apply", "-f", writeFile(t, ebbYAML))
	require.NoError(t, err)

	out, err := ebb(t, env, "", "sync", "run", "customers_to_crm")
	require.NoError(t, err)
	id := strings.TrimSpace(out)
	r, err := env.Runs.Find(ctx, id)
	require.NoError(t, err)
	require.Equal(t, run.Pending, r.State)

	_, err = ebb(t, env, "", "sync", "run", "customers_to_crm")
	require.ErrorContains(t, err, "already has an active run: "+id)
	require.Equal(t, 1, cli.ExitCode(err))

	out, err = ebb(t, env, "", "syncs", "list")
	require.NoError(t, err)
	require.Contains(t, out, "pending ")

	publishFailure(t, env, id)
	finish(t, env, id, run.Failed, "1 record failed")

	out, err = ebb(t, env, "", "runs", "list", "--sync", "customers_to_crm")
	require.NoError(t, err)
	require.Regexp(t, id+`\s+customers_to_crm\s+failed\s+manual\s+.+\s+2/3\s+1\n`, out)
	out, err = ebb(t, env, "", "runs", "get", id)
	require.NoError(t, err)
	require.Regexp(t, `adds:\s+2/3 delivered, 1 failed, 0 vanished`, out)
	require.Regexp(t, `error:\s+1 record failed`, out)
	out, err = ebb(t, env, "", "runs", "get", id, "-o", "json")
	require.NoError(t, err)
	require.Contains(t, out, `"state": "failed"`)
	out, err = ebb(t, env, "", "runs", "failures", id)
	require.NoError(t, err)
	require.Regexp(t, `KEY\s+OP\s+ERROR\s+STATUS\n42\s+upsert\s+422: email is invalid\s*\n`, out)
	_, err = ebb(t, env, "", "runs", "get", run.NewID())
	require.ErrorContains(t, err, "not found")
}

func TestSyncRunWait(t *testing.T) {
	env := admintest.Start(t, "")
	_, err := ebb(t, env, "", "apply", "-f", writeFile(t, ebbYAML))
	require.NoError(t, err)

	for _, tc := range []struct {
		state run.State
		code  int
		want  string
	}{
		{run.Succeeded, 0, "succeeded · adds 2/3 · changes 0/0 · deletes 0/0 · failed 1"},
		{run.Failed, cli.ExitRunFailed, "failed · adds 2/3 · changes 0/0 · deletes 0/0 · failed 1 · boom"},
	} {
		t.Run(string(tc.state), func(t *testing.T) {
			type result struct {
				out string
				err error
			}
			done := make(chan result, 1)
			go func() {
				out, err := ebb(t, env, "", "sync", "run", "customers_to_crm", "--wait", "--timeout", "1m")
				done <- result{out, err}
			}()
			id := startedRun(t, env)
			errMsg := ""
			if tc.state == run.Failed {
				errMsg = "boom"
			}
			finish(t, env, id, tc.state, errMsg)
			res := <-done
			require.Equal(t, tc.code, cli.ExitCode(res.err), "error: %v", res.err)
			require.True(t, strings.HasPrefix(res.out, id+"\n"), res.out)
			require.Contains(t, res.out, "run "+id+" "+tc.want+"\n")
		})
	}
}

func TestSyncRunWaitTimeout(t *testing.T) {
	env := admintest.Start(t, "")
	_, err := ebb(t, env, "", "apply", "-f", writeFile(t, ebbYAML))
	require.NoError(t, err)
	out, err := ebb(t, env, "", "sync", "run", "customers_to_crm", "--wait", "--timeout", "100ms")
	require.ErrorContains(t, err, "after 100ms")
	require.Equal(t, 1, cli.ExitCode(err))
	require.Contains(t, out, "pending · adds 0/0")
}

// startedRun waits for the run `sync run` starts and returns its id. The
// sync's active slot names the run a moment before the run is written.
func startedRun(t *testing.T, env *admintest.Env) string {
	t.Helper()
	var id string
	require.Eventually(t, func() bool {
		id, _ = env.Runs.ActiveID(t.Context(), "customers_to_crm")
		if id == "" {
			return false
		}
		_, err := env.Runs.Get(t.Context(), "customers_to_crm", id)
		return err == nil
	}, 10*time.Second, 10*time.Millisecond)
	return id
}

// finish moves a run through delivering to its final state, with 2 of 3
// adds delivered and 1 failed.
func finish(t *testing.T, env *admintest.Env, id string, state run.State, errMsg string) {
	t.Helper()
	_, err := env.Runs.Update(t.Context(), "customers_to_crm", id, func(r *run.Run) error {
		r.State, r.Planned.Adds, r.Adds.Delivered, r.Adds.Failed, r.Error = state, 3, 2, 1, errMsg
		return nil
	})
	require.NoError(t, err)
}

func publishFailure(t *testing.T, env *admintest.Env, id string) {
	t.Helper()
	rb := record.ResultBatch{Sync: "customers_to_crm", RunID: id, Results: []record.Result{
		{KeyEnc: record.AppendInt(nil, 42), Op: record.OpUpsert, Status: record.Failed, Error: "422: email is invalid"},
	}}
	require.NoError(t, run.RecordFailures(t.Context(), env.NATS.Bus, rb))
}

func TestAuthAndConnectErrors(t *testing.T) {
	env := admintest.Start(t, "s3cret")
	_, err := ebb(t, env, "", "syncs", "list")
	require.ErrorContains(t, err, "pass --token")
	require.Equal(t, codes.Unauthenticated, status.Code(err))
	_, err = ebb(t, env, "wrong", "syncs", "list")
	require.ErrorContains(t, err, "pass --token")
	_, err = ebb(t, env, "s3cret", "syncs", "list")
	require.NoError(t, err)

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := lis.Addr().String()
	require.NoError(t, lis.Close())
	_, err = execute(t, &cli.Globals{Server: closed}, "syncs", "list")
	require.ErrorContains(t, err, "cannot reach the Ebb admin API at "+closed)
	require.ErrorContains(t, err, "ebb dev")
	require.ErrorContains(t, err, "--server")
}

func TestExitCode(t *testing.T) {
	require.Equal(t, 0, cli.ExitCode(nil))
	require.Equal(t, 1, cli.ExitCode(os.ErrNotExist))
}

// Issue 13, item 11: --wait on a run that stops at a safety check prints
// why and the approve command, and exits with its own code at once
// instead of waiting out its timeout.
func TestSyncRunWaitAwaitingApproval(t *testing.T) {
	env := admintest.Start(t, "")
	_, err := ebb(t, env, "", "apply", "-f", writeFile(t, ebbYAML))
	require.NoError(t, err)
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := ebb(t, env, "", "sync", "run", "customers_to_crm", "--wait", "--timeout", "1m")
		done <- result{out, err}
	}()
	id := startedRun(t, env)
	reason := "planned deletes are 600 of 1000 rows (60.0%), above safety.max_delete_share 50.0%"
	_, err = env.Runs.Update(t.Context(), "customers_to_crm", id, func(r *run.Run) error {
		r.State, r.SafetyStop, r.Planned.Deletes = run.AwaitingApproval, reason, 600
		return nil
	})
	require.NoError(t, err)

	var res result
	select {
	case res = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("--wait still waits on a run awaiting approval")
	}
	require.Equal(t, cli.ExitAwaitingApproval, cli.ExitCode(res.err), "error: %v", res.err)
	require.ErrorContains(t, res.err, "run "+id+" is awaiting approval")
	require.Contains(t, res.out, "run "+id+" stopped before sending anything: "+reason+"\n")
	require.Contains(t, res.out, "ebb runs approve "+id+"\n")
	require.Contains(t, res.out, "ebb runs cancel "+id+"\n")
}

// executeWithInput runs the client commands with stdin.
func executeWithInput(t *testing.T, env *admintest.Env, stdin string, args ...string) (string, error) {
	t.Helper()
	root := &cobra.Command{Use: "ebb", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(cli.Commands(&cli.Globals{Server: env.Addr})...)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	err := root.ExecuteContext(t.Context())
	return out.String(), err
}

// `ebb sync reset` asks on a terminal, refuses without one unless --yes,
// and prints what it dropped, as text or JSON.
func TestSyncReset(t *testing.T) {
	env := admintest.Start(t, "")
	ctx := t.Context()
	_, err := ebb(t, env, "", "apply", "-f", writeFile(t, ebbYAML))
	require.NoError(t, err)
	state, err := env.NATS.JS.KeyValue(ctx, bus.BucketState)
	require.NoError(t, err)
	committed := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	require.NoError(t, snapshot.StorePointer(ctx, state, "customers_to_crm",
		snapshot.Pointer{RunID: "01KAXRUN", Engine: "local", Rows: 1000, CommittedAt: committed}, 0))
	pointer := func() uint64 {
		_, rev, err := snapshot.LoadPointer(ctx, state, "customers_to_crm")
		require.NoError(t, err)
		return rev
	}

	_, err = executeWithInput(t, env, "y\n", "sync", "reset", "customers_to_crm")
	require.ErrorContains(t, err, "sync customers_to_crm not reset: standard input is not a terminal")
	require.ErrorContains(t, err, "pass --yes")
	require.NotZero(t, pointer(), "refused without a terminal")

	restore := cli.SetTerminal(true)
	defer restore()
	out, err := executeWithInput(t, env, "n\n", "sync", "reset", "customers_to_crm")
	require.ErrorContains(t, err, "sync customers_to_crm not reset: not confirmed")
	require.Contains(t, out, "Reset sync customers_to_crm? Its next run sends every row of the model as an add. [y/N] ")
	require.NotZero(t, pointer(), "kept when not confirmed")

	out, err = executeWithInput(t, env, "yes\n", "sync", "reset", "customers_to_crm")
	require.NoError(t, err)
	require.Contains(t, out, "reset sync customers_to_crm: dropped the snapshot of run 01KAXRUN (local engine, 1000 rows, committed ")
	require.Contains(t, out, "its next run sends every row as an add\n")
	require.Zero(t, pointer())
	restore()

	out, err = ebb(t, env, "", "sync", "reset", "customers_to_crm", "--yes", "-o", "json")
	require.NoError(t, err)
	var resp map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &resp), out)
	require.Equal(t, false, resp["dropped"])
	out, err = ebb(t, env, "", "sync", "reset", "customers_to_crm", "-y")
	require.NoError(t, err)
	require.Equal(t, "sync customers_to_crm has no committed snapshot: its next run sends every row as an add\n", out)

	id, err := env.Runs.Create(ctx, "customers_to_crm", "manual")
	require.NoError(t, err)
	_, err = ebb(t, env, "", "sync", "reset", "customers_to_crm", "--yes")
	require.ErrorContains(t, err, "has an active run "+id.ID)
	require.Equal(t, 1, cli.ExitCode(err))
}
