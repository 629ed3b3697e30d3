package node_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/run"
	"github.com/ebb-etl/ebb/libs/transform"
)

// seatsJS drops free accounts, fans team accounts out into one record per
// seat and edits the others' nested fields. It runs after the mapping.
const seatsJS = `function transformEvent(record, metadata) {
  if (record.plan === "free") return null;
  if (record.plan === "team") {
    const out = [];
    for (let i = 0; i < record.seats; i++) out.push({user: {id: record.user.id}, seat: i});
    return out;
  }
  log("editing", metadata.key.id);
  record.user.name = record.user.name.toUpperCase();
  record.op = metadata.op;
  return record;
}`

func transformConfig(p *pg, url, code string) config.File {
	t := &config.Transformation{Code: code}
	t.Normalize()
	return config.File{
		Sources:      []config.Source{{Name: "wh", Type: "postgres", Config: map[string]any{"dsn": postgresDSN(), "snapshot_schema": p.schema}}},
		Destinations: []config.Destination{{Name: "hook", Type: "webhook", Config: map[string]any{"url": url, "batch_size": 100}}},
		Syncs: []config.Sync{{
			Name: "accounts", Source: "wh", Destination: "hook", Mode: config.ModeUpsert,
			Model: config.Model{SQL: "SELECT id, name, plan, seats FROM " + p.schema + ".accounts", PrimaryKey: []string{"id"}},
			Mapping: []config.Mapping{
				{From: "id", To: "user.id"}, {From: "name", To: "user.name"},
				{From: "plan", To: "plan"}, {From: "seats", To: "seats"},
			},
			Transformation: t,
		}},
	}
}

// seedAccounts: ids 1..1000; id%10 = 0 is free, id%10 = 1 a team of 3.
func seedAccounts(p *pg) {
	p.exec(`CREATE TABLE $S.accounts (id int PRIMARY KEY, name text, plan text, seats int)`)
	p.exec(`INSERT INTO $S.accounts SELECT i, 'name ' || i,
		CASE i % 10 WHEN 0 THEN 'free' WHEN 1 THEN 'team' ELSE 'pro' END, 3
		FROM generate_series(1, 1000) AS i`)
}

func TestTransformationDropsFansOutAndEdits(t *testing.T) {
	p := newPG(t)
	seedAccounts(p)
	hook, url := sink(t)
	e := startEnv(t)
	e.apply(transformConfig(p, url, seatsJS))

	r := e.runSync("accounts")
	require.Equal(t, run.Succeeded, r.State, r.Error)
	require.EqualValues(t, 1000, r.Planned.Adds)
	require.EqualValues(t, 100, r.Adds.Filtered, "free accounts were dropped")
	require.EqualValues(t, 800+3*100, r.Adds.Delivered, "team accounts became a record per seat")
	require.EqualValues(t, 200, r.Fanout)
	require.Zero(t, r.Adds.Failed)
	require.EqualValues(t, 1000, r.Final())
	require.Equal(t, transform.Version(seatsJS), r.Spec.Transformation.Version, "the run records the version it used")

	// Exactly the transformed records reached the webhook.
	seats := map[string][]any{}
	got := 0
	for _, rec := range hook.Records() {
		if rec.RunID != r.ID {
			continue
		}
		got++
		id := fmt.Sprint(rec.Key["id"])
		user := rec.Data["user"].(map[string]any)
		require.Equal(t, id, fmt.Sprint(user["id"]))
		n, err := strconv.Atoi(id)
		require.NoError(t, err)
		switch n % 10 {
		case 0:
			t.Fatalf("free account %s was sent", id)
		case 1:
			seats[id] = append(seats[id], rec.Data["seat"])
		default:
			require.Equal(t, fmt.Sprintf("NAME %d", n), user["name"])
			require.Equal(t, "upsert", rec.Data["op"])
			require.Equal(t, "pro", rec.Data["plan"])
		}
	}
	require.Equal(t, 1100, got)
	require.Len(t, seats, 100)
	for id, s := range seats {
		require.Equal(t, "[0 1 2]", fmt.Sprint(s), "the seats of %s, in order", id)
	}

	// Filtered rows were final successes: the snapshot took them, so an
	// unchanged model sends nothing more.
	r2 := e.runSync("accounts")
	require.Equal(t, run.Succeeded, r2.State, r2.Error)
	require.Zero(t, r2.Planned.Total())
}

func TestTransformationFailingEveryRecordStopsTheRun(t *testing.T) {
	p := newPG(t)
	seedAccounts(p)
	hook, url := sink(t)
	e := startEnv(t)
	e.apply(transformConfig(p, url, `function transformEvent(r) {
  throw new Error("no plan for " + r.user.id);
}`))
	r := e.runSync("accounts")
	require.Equal(t, run.Failed, r.State)
	require.Contains(t, r.Error, "the transformation failed all")
	require.Contains(t, r.Error, "Error: no plan for")
	require.Contains(t, r.Error, "at line 2")
	require.Empty(t, hook.Records())
}

const transformYAML = `
sources:
  - {name: wh, type: postgres, config: {dsn: "${EBB_E2E_DSN}", snapshot_schema: SCHEMA}}
destinations:
  - {name: hook, type: webhook, config: {url: "${EBB_E2E_HOOK}"}}
syncs:
  - name: accounts
    source: wh
    destination: hook
    model: {sql: "SELECT id, name, plan, seats FROM SCHEMA.accounts", primary_key: [id]}
    mode: upsert
    mapping:
      - {from: id, to: user.id}
      - {template: "{{ name }} ({{ plan }})", to: user.name}
      - {from: plan, to: plan, required: true}
      - {from: seats, to: seats, cast: number}
    transformation: {file: js/seats.js, timeout_ms: 2000}
`

// TestTransformationThroughTheCLI applies a config whose transformation is
// a file beside it, tests the code on sample rows, and sees plan notice a
// change of the code.
func TestTransformationThroughTheCLI(t *testing.T) {
	p := newPG(t)
	seedAccounts(p)
	hook, url := sink(t)
	t.Setenv("EBB_E2E_DSN", postgresDSN())
	t.Setenv("EBB_E2E_HOOK", url)
	e := startEnvWith(t, t.TempDir(), "127.0.0.1:0")
	dir := t.TempDir()
	file := filepath.Join(dir, "ebb.yaml")
	require.NoError(t, os.WriteFile(file, []byte(strings.ReplaceAll(transformYAML, "SCHEMA", p.schema)), 0o600))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "js"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "js", "seats.js"), []byte(seatsJS), 0o600))

	out, code := ebbCLI(t, e, "apply", "-f", file)
	require.Zero(t, code, out)
	stored, err := e.plane.Configs.Sync(t.Context(), "accounts")
	require.NoError(t, err)
	require.Equal(t, seatsJS, stored.Transformation.Code, "the code is stored, not the path")
	require.Equal(t, transform.Version(seatsJS), stored.Transformation.Version)

	// ids 1, 2, ... 10 in key order: 1 is a team (fan-out), 10 is free.
	out, code = ebbCLI(t, e, "transform", "test", "--sync", "accounts", "--limit", "10")
	require.Zero(t, code, out)
	require.Contains(t, out, "transformation "+transform.Version(seatsJS)+", 10 rows")
	require.Contains(t, out, "output 3 of 3:")
	require.Contains(t, out, `"name": "NAME 2 (PRO)"`)
	require.Contains(t, out, "output: dropped (filtered)")
	require.Contains(t, out, "log: editing 2")
	require.Empty(t, hook.Records(), "testing sends nothing")

	other := filepath.Join(dir, "other.js")
	require.NoError(t, os.WriteFile(other, []byte("function transformEvent(r) {\n  return r.nope.x;\n}"), 0o600))
	out, code = ebbCLI(t, e, "transform", "test", "--sync", "accounts", "--file", other, "--limit", "1")
	require.Zero(t, code, out)
	require.Contains(t, out, "error: transformation: TypeError: Cannot read property 'x' of undefined at line 2")

	// A syntax error is refused by apply (locally, naming the files).
	require.NoError(t, os.WriteFile(filepath.Join(dir, "js", "seats.js"), []byte("function transformEvent(r) {\n  return r +;\n}"), 0o600))
	out, code = ebbCLI(t, e, "plan", "-f", file)
	require.NotZero(t, code)
	require.Contains(t, out, "ebb.yaml:17:")
	require.Contains(t, out, "syncs[0].transformation.file: js/seats.js:2:13: SyntaxError")

	// A new version of the code is a change plan shows.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "js", "seats.js"), []byte(seatsJS+"\n// v2\n"), 0o600))
	out, code = ebbCLI(t, e, "plan", "-f", file)
	require.Zero(t, code, out)
	require.Contains(t, out, "transformation")
}
