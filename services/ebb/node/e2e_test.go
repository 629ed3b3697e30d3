package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/capture"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/run"
)

const e2eRows = 10_000

// seedCustomers creates $S.customers: a composite key, unicode, NULLs,
// exact decimals and JSON.
func seedCustomers(p *pg, rows int) {
	p.exec(`CREATE TABLE $S.customers (
		region text NOT NULL, id int NOT NULL, name text, score numeric(12,4), note text, attrs jsonb,
		updated_at timestamptz NOT NULL DEFAULT '2026-01-01T00:00:00Z', PRIMARY KEY (region, id))`)
	p.exec(`INSERT INTO $S.customers (region, id, name, score, note, attrs)
		SELECT (ARRAY['eu','us','apac','ünïcødé'])[1 + i % 4], i,
		       'Ñame ' || i || ' 🚀 "quoted"', (i * 1.2345)::numeric(12,4),
		       CASE WHEN i % 3 = 0 THEN NULL ELSE 'note ' || i END,
		       jsonb_build_object('tier', i % 5, 'tags', jsonb_build_array('a', i))
		FROM generate_series(1, $1::int) AS i`, rows)
}

// editCustomers changes 100 rows, adds 50 and deletes 30.
func editCustomers(p *pg, rows int) {
	p.exec(`UPDATE $S.customers SET score = score + 1, note = 'changed' WHERE id % 100 = 7`)
	p.exec(`INSERT INTO $S.customers (region, id, name, score) SELECT 'eu', i, 'new ' || i, 0 FROM generate_series($1::int, $2::int) AS i`, rows+1, rows+50)
	p.exec(`DELETE FROM $S.customers WHERE id % 100 = 50 AND id <= 3000`)
}

// modelRows is the model as the destination should hold it, keyed like
// the capture's state.
func modelRows(p *pg) map[string]map[string]any {
	return p.rows(`SELECT json_build_object('region', region, 'id', id)::text,
		json_build_object('region', region, 'id', id, 'name', name, 'score', score, 'note', note, 'attrs', attrs)::text
		FROM $S.customers`)
}

// withoutTimestamps drops updated_at, compared separately.
func withoutTimestamps(state map[string]map[string]any) map[string]map[string]any {
	out := make(map[string]map[string]any, len(state))
	for k, v := range state {
		c := make(map[string]any, len(v))
		for f, x := range v {
			if f != "updated_at" {
				c[f] = x
			}
		}
		out[k] = c
	}
	return out
}

func pipelineConfig(p *pg, mode config.Mode, hookURL string) config.File {
	return config.File{
		// The warehouse engine's tables go to the test's schema, dropped with it.
		Sources: []config.Source{{Name: "wh", Type: "postgres", Config: map[string]any{"dsn": postgresDSN(), "snapshot_schema": p.schema}}},
		Destinations: []config.Destination{
			{Name: "hook", Type: "webhook", Config: map[string]any{"url": hookURL, "batch_size": 200}},
		},
		Syncs: []config.Sync{{
			Name: "customers", Source: "wh", Destination: "hook", Mode: mode,
			Model: config.Model{
				SQL:        "SELECT region, id, name, score, note, attrs, updated_at FROM " + p.schema + ".customers",
				PrimaryKey: []string{"region", "id"},
			},
		}},
	}
}

// opsOf counts a run's records at the capture by op.
func opsOf(recs []capture.Record, runID string) map[record.Op]int {
	out := map[record.Op]int{}
	for _, r := range recs {
		if r.RunID == runID {
			out[r.Op]++
		}
	}
	return out
}

// modeWant is what each run of the e2e scenario sends in a mode.
type modeWant struct {
	run1, run2 map[record.Op]int
}

// everyMode is what the e2e scenario sends per mode.
func everyMode() map[config.Mode]modeWant {
	return map[config.Mode]modeWant{
		config.ModeMirror: {
			run1: map[record.Op]int{record.OpUpsert: e2eRows},
			run2: map[record.Op]int{record.OpUpsert: 150, record.OpDelete: 30},
		},
		config.ModeUpsert: {
			run1: map[record.Op]int{record.OpUpsert: e2eRows},
			run2: map[record.Op]int{record.OpUpsert: 150},
		},
		config.ModeUpdate: {
			run1: map[record.Op]int{},
			run2: map[record.Op]int{record.OpUpdate: 100},
		},
		config.ModeInsert: {
			run1: map[record.Op]int{record.OpInsert: e2eRows},
			run2: map[record.Op]int{record.OpInsert: 50},
		},
		config.ModeAll: {
			run1: map[record.Op]int{record.OpUpsert: e2eRows},
			run2: map[record.Op]int{record.OpUpsert: e2eRows + 50 - 30},
		},
	}
}

func TestPipelineEveryMode(t *testing.T) {
	for mode, w := range everyMode() {
		t.Run(string(mode), func(t *testing.T) {
			p := newPG(t)
			f := pipelineConfig(p, mode, "")
			f.Syncs[0].Engine = config.EngineLocal
			runs := pipelineScenario(t, p, f, w)
			require.Equal(t, "local", runs[1].Engine)
		})
	}
}

// pipelineScenario runs the e2e scenario with config f (its webhook URL is
// filled in): run 1 sends the seeded table, run 2 exactly the edits, run 3
// nothing. It returns the runs.
func pipelineScenario(t *testing.T, p *pg, f config.File, w modeWant) []*run.Run {
	mode := f.Syncs[0].Mode
	seedCustomers(p, e2eRows)
	hook, url := sink(t)
	f.Destinations[0].Config["url"] = url
	e := startEnv(t)
	e.apply(f)

	r1 := e.runSync("customers")
	require.Equal(t, run.Succeeded, r1.State, r1.Error)
	require.Equal(t, w.run1, opsOf(hook.Records(), r1.ID))
	before := modelRows(p)

	editCustomers(p, e2eRows)
	r2 := e.runSync("customers")
	require.Equal(t, run.Succeeded, r2.State, r2.Error)
	require.Equal(t, w.run2, opsOf(hook.Records(), r2.ID))
	require.EqualValues(t, sum(w.run2), r2.Adds.Delivered+r2.Changes.Delivered+r2.Deletes.Delivered)

	// Row by row: what run 2 sent is exactly the difference.
	after := modelRows(p)
	for _, rec := range hook.Records() {
		if rec.RunID != r2.ID {
			continue
		}
		k := capture.KeyString(rec.Key)
		switch rec.Op {
		case record.OpDelete:
			require.Contains(t, before, k)
			require.NotContains(t, after, k)
			require.Nil(t, rec.Data)
		default:
			require.Equal(t, after[k], withoutTimestamps(map[string]map[string]any{k: rec.Data})[k], "record %s", k)
			if mode != config.ModeAll {
				require.NotEqual(t, before[k], after[k], "unchanged row %s was sent", k)
			}
		}
	}
	if mode == config.ModeMirror || mode == config.ModeAll {
		state := withoutTimestamps(hook.State())
		if mode == config.ModeMirror {
			require.Equal(t, after, state, "the destination equals the model")
		}
	}
	// Nothing changed: the next run sends nothing (except mode all).
	r3 := e.runSync("customers")
	require.Equal(t, run.Succeeded, r3.State, r3.Error)
	if mode != config.ModeAll {
		require.Zero(t, r3.Planned.Total())
	}
	return []*run.Run{r1, r2, r3}
}

func sum(m map[record.Op]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func TestPipelineIntoPostgresTable(t *testing.T) {
	p := newPG(t)
	seedCustomers(p, e2eRows)
	p.exec(`CREATE TABLE $S.customers_copy (region text, id int, name text, score numeric(12,4), note text, attrs jsonb,
		updated_at timestamptz, PRIMARY KEY (region, id))`)
	e := startEnv(t)
	f := pipelineConfig(p, config.ModeMirror, "http://127.0.0.1:1/unused")
	f.Destinations = append(f.Destinations, config.Destination{Name: "copy", Type: "postgres",
		Config: map[string]any{"dsn": postgresDSN(), "table": p.schema + ".customers_copy", "batch_size": 500}})
	f.Syncs[0].Destination = "copy"
	e.apply(f)

	same := `SELECT count(*) FROM (
		(SELECT * FROM $S.customers EXCEPT SELECT * FROM $S.customers_copy)
		UNION ALL (SELECT * FROM $S.customers_copy EXCEPT SELECT * FROM $S.customers)) d`
	r1 := e.runSync("customers")
	require.Equal(t, run.Succeeded, r1.State, r1.Error)
	require.Equal(t, 0, p.count(same))

	editCustomers(p, e2eRows)
	r2 := e.runSync("customers")
	require.Equal(t, run.Succeeded, r2.State, r2.Error)
	require.EqualValues(t, 50, r2.Adds.Delivered)
	require.EqualValues(t, 100, r2.Changes.Delivered)
	require.EqualValues(t, 30, r2.Deletes.Delivered)
	require.Equal(t, 0, p.count(same), "the destination table equals the model")
}

func TestRestartKeepsConfigAndSnapshots(t *testing.T) {
	p := newPG(t)
	seedCustomers(p, 500)
	hook, url := sink(t)
	dir := t.TempDir()
	e := startEnvIn(t, dir)
	e.apply(pipelineConfig(p, config.ModeMirror, url))
	r1 := e.runSync("customers")
	require.Equal(t, run.Succeeded, r1.State, r1.Error)
	e.stop()

	e = startEnvIn(t, dir)
	sync, err := e.plane.Configs.Sync(context.Background(), "customers")
	require.NoError(t, err)
	require.Equal(t, "wh", sync.Source)
	r2 := e.runSync("customers")
	require.Equal(t, run.Succeeded, r2.State, r2.Error)
	require.Zero(t, r2.Planned.Total(), "the snapshot survived the restart")
	require.Len(t, hook.Records(), 500)
}

func TestModelErrorFailsRun(t *testing.T) {
	p := newPG(t)
	_, url := sink(t)
	e := startEnv(t)
	f := pipelineConfig(p, config.ModeMirror, url) // the table does not exist
	e.apply(f)
	r := e.runSync("customers")
	require.Equal(t, run.Failed, r.State)
	require.Contains(t, r.Error, "does not exist")
}

func TestDuplicateAndNullKeysFailBeforeSending(t *testing.T) {
	p := newPG(t)
	p.exec(`CREATE TABLE $S.customers (region text, id int, name text, score numeric, note text, attrs jsonb, updated_at timestamptz)`)
	p.exec(`INSERT INTO $S.customers (region, id) VALUES ('eu', 1), ('eu', 2), ('eu', 2), ('eu', 2), (NULL, 3), ('us', 4)`)
	hook, url := sink(t)
	e := startEnv(t)
	e.apply(pipelineConfig(p, config.ModeMirror, url))
	r := e.runSync("customers")
	require.Equal(t, run.Failed, r.State)
	require.Contains(t, r.Error, "2 duplicate primary keys (first: eu,2)")
	require.Contains(t, r.Error, "1 rows with a NULL in the primary key")
	require.Empty(t, hook.Records(), "nothing is sent")
}

// Invariant 1 under both engines: a failed record keeps its old hash in
// the committed snapshot, so the next run sends it again.
func TestRejectedRecordFailsAloneAndIsResent(t *testing.T) {
	for _, engine := range []config.Engine{config.EngineLocal, config.EngineWarehouse} {
		t.Run(string(engine), func(t *testing.T) { testRejectedRecord(t, engine) })
	}
}

func testRejectedRecord(t *testing.T, engine config.Engine) {
	p := newPG(t)
	seedCustomers(p, 1000)
	hook, url := sink(t)
	bad := `{"id":77,"region":"us"}`
	hook.Reject(func(rec capture.Record) (int, string) {
		if capture.KeyString(rec.Key) == bad {
			return 422, "email is invalid"
		}
		return 0, ""
	})
	e := startEnv(t)
	f := pipelineConfig(p, config.ModeMirror, url)
	f.Syncs[0].Engine = engine
	e.apply(f)

	r1 := e.runSync("customers")
	require.Equal(t, run.Failed, r1.State)
	require.Equal(t, string(engine), r1.Engine)
	require.EqualValues(t, 1, r1.FailedRecords())
	require.EqualValues(t, 999, r1.Adds.Delivered)
	require.Contains(t, r1.Error, "1 of 1000 records failed")
	require.Len(t, hook.State(), 999)
	failures, err := run.Failures(context.Background(), e.plane.JS, r1.Sync, r1.ID, 0)
	require.NoError(t, err)
	require.Len(t, failures, 1)
	require.Equal(t, "us,77", failures[0].KeyEnc.String())
	require.Contains(t, failures[0].Error, "HTTP 422")
	require.Contains(t, failures[0].Error, "email is invalid")

	// Invariant 1: the next run sends the failed record again, only it.
	hook.Reject(nil)
	r2 := e.runSync("customers")
	require.Equal(t, run.Succeeded, r2.State, r2.Error)
	require.EqualValues(t, 1, r2.Planned.Total())
	require.Contains(t, hook.State(), bad)
}

func TestUnreachableDestinationKeepsRecordsPending(t *testing.T) {
	p := newPG(t)
	seedCustomers(p, 300)
	hook, url := sink(t)
	hook.SetDown(true)
	e := startEnv(t)
	e.apply(pipelineConfig(p, config.ModeMirror, url))
	started, err := run.Start(context.Background(), e.plane.Bus, e.plane.Runs, "customers", "manual")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		r, err := e.plane.Runs.Get(context.Background(), "customers", started.ID)
		require.NoError(t, err)
		return r.State == run.Delivering
	}, time.Minute, 20*time.Millisecond)
	require.Empty(t, hook.State())

	hook.SetDown(false)
	r := e.waitRun(started, time.Minute)
	require.Equal(t, run.Succeeded, r.State, r.Error)
	require.Len(t, hook.State(), 300, "every record arrived once the destination came back")
}
