package node_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/capture"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/run"
	"github.com/ebb-etl/ebb/libs/source/duckdb"
	"github.com/ebb-etl/ebb/libs/warehouse"
)

// engineTables lists the warehouse engine's tables in the test's schema
// (its snapshot schema), the model's tables left out.
func engineTables(p *pg) []string {
	p.t.Helper()
	rows, err := p.pool.Query(context.Background(), "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY 1", p.schema)
	require.NoError(p.t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		require.NoError(p.t, rows.Scan(&name))
		if _, id := warehouse.RunOf(name); id != "" {
			out = append(out, name)
		}
	}
	require.NoError(p.t, rows.Err())
	return out
}

// onlyCommitted waits until the janitor (it runs after the commit) has left
// one engine table: the snapshot table of run r.
func onlyCommitted(t *testing.T, p *pg, r *run.Run) {
	t.Helper()
	require.Eventually(t, func() bool {
		tables := engineTables(p)
		if len(tables) != 1 || !strings.HasPrefix(tables[0], "snap_") {
			return false
		}
		_, id := warehouse.RunOf(tables[0])
		return id == r.ID
	}, 30*time.Second, 20*time.Millisecond, "tables left: %v", engineTables(p))
}

// The e2e scenario with the warehouse engine on Postgres, in every mode.
func TestPipelineWarehouseEngine(t *testing.T) {
	for mode, w := range everyMode() {
		t.Run(string(mode), func(t *testing.T) {
			p := newPG(t)
			f := pipelineConfig(p, mode, "")
			f.Syncs[0].Engine = config.EngineWarehouse
			runs := pipelineScenario(t, p, f, w)
			for _, r := range runs {
				require.Equal(t, "warehouse", r.Engine)
			}
			onlyCommitted(t, p, runs[2])
		})
	}
}

// The e2e scenario with the warehouse engine in Redshift's dialect (run
// against Postgres: every statement it writes is valid in both).
func TestPipelineWarehouseEngineRedshift(t *testing.T) {
	p := newPG(t)
	f := pipelineConfig(p, config.ModeMirror, "")
	f.Sources[0].Type = "redshift"
	f.Syncs[0].Engine = config.EngineWarehouse
	runs := pipelineScenario(t, p, f, everyMode()[config.ModeMirror])
	for _, r := range runs {
		require.Equal(t, "warehouse", r.Engine)
	}
	onlyCommitted(t, p, runs[2])
}

// engine auto picks the local engine on Postgres, and a switch of engine
// between runs carries the snapshot over: nothing is resent and no delete
// is lost.
func TestEngineSwitchCarriesTheSnapshot(t *testing.T) {
	p := newPG(t)
	seedCustomers(p, 1000)
	hook, url := sink(t)
	e := startEnv(t)
	f := pipelineConfig(p, config.ModeMirror, url)
	f.Syncs[0].Engine = config.EngineLocal
	e.apply(f)
	r1 := e.runSync("customers")
	require.Equal(t, run.Succeeded, r1.State, r1.Error)
	require.Equal(t, "local", r1.Engine)

	for i, engine := range []config.Engine{config.EngineWarehouse, config.EngineAuto, config.EngineLocal, config.EngineWarehouse} {
		p.exec(`UPDATE $S.customers SET note = 'switch ' || $1::int WHERE id % 100 = $1::int`, i+1)
		p.exec(`DELETE FROM $S.customers WHERE id = 500 + $1::int`, i)
		f.Syncs[0].Engine = engine
		e.apply(f)
		r := e.runSync("customers")
		require.Equal(t, run.Succeeded, r.State, r.Error)
		want := "warehouse"
		if engine != config.EngineWarehouse {
			want = "local"
		}
		require.Equal(t, want, r.Engine, "engine %s", engine)
		require.Equal(t, map[record.Op]int{record.OpUpsert: 10, record.OpDelete: 1}, opsOf(hook.Records(), r.ID), "engine %s", engine)
		require.Equal(t, modelRows(p), withoutTimestamps(hook.State()), "engine %s", engine)
		if want == "warehouse" {
			onlyCommitted(t, p, r)
		} else {
			require.Eventually(t, func() bool { return len(engineTables(p)) == 0 }, 30*time.Second, 20*time.Millisecond)
		}
	}
}

// A warehouse-engine run whose node stops after the diff finishes after a
// restart, and the janitor leaves no orphan tables: not the previous
// snapshot, not the run's change table, not the tables of a run that no
// longer exists.
func TestWarehouseRunSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	p := newPG(t)
	seedCustomers(p, 2000)
	hook, url := sink(t)
	dir := t.TempDir()
	e := startEnvIn(t, dir)
	f := pipelineConfig(p, config.ModeMirror, url)
	f.Syncs[0].Engine = config.EngineWarehouse
	// Batches in flight when the node stops come back after the ack wait
	// (the timeout + 30s): keep it short.
	f.Destinations[0].Config["timeout"] = "1s"
	e.apply(f)
	r1 := e.runSync("customers")
	require.Equal(t, run.Succeeded, r1.State, r1.Error)

	editCustomers(p, 2000)
	hook.SetDown(true)
	started, err := run.Start(ctx, e.plane.Bus, e.plane.Runs, "customers", "manual")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		// Past its diff: a mirror run extracts its deletes first and its
		// other records once those are delivered (the hook is down).
		r, err := e.plane.Runs.Get(ctx, "customers", started.ID)
		require.NoError(t, err)
		return r.State == run.Extracting || r.State == run.Delivering
	}, time.Minute, 20*time.Millisecond)
	tag, err := warehouse.Tag(ctx, e.plane.State)
	require.NoError(t, err)
	e.stop()
	require.Len(t, engineTables(p), 3, "the committed snapshot, and the run's snapshot and change tables")

	// Tables of a run that crashed and no longer exists.
	orphan := warehouse.RunTables(tag, "customers", run.NewID())
	p.exec(`CREATE TABLE $S.` + orphan.Snapshot + ` (k1 text)`)
	p.exec(`CREATE TABLE $S.` + orphan.Keys + ` (k1 text)`)

	hook.SetDown(false)
	e = startEnvIn(t, dir)
	r2 := e.waitRun(started, 2*time.Minute)
	require.Equal(t, run.Succeeded, r2.State, r2.Error)
	// 2,000 rows: 20 changed, 50 added of which one (id 2050) deleted, 20 deleted.
	require.Equal(t, run.Planned{Adds: 49, Changes: 20, Deletes: 20}, r2.Planned)
	require.EqualValues(t, 89, r2.Adds.Delivered+r2.Changes.Delivered+r2.Deletes.Delivered)
	require.Equal(t, modelRows(p), withoutTimestamps(hook.State()), "the destination equals the model")
	onlyCommitted(t, p, r2)

	r3 := e.runSync("customers")
	require.Equal(t, run.Succeeded, r3.State, r3.Error)
	require.Zero(t, r3.Planned.Total(), "the snapshot survived the restart")
}

// The e2e scenario with the warehouse engine on DuckDB: composite key,
// unicode, NULLs, decimals, timestamps, JSON; run 2 sends exactly the edits.
func TestPipelineWarehouseEngineDuckDB(t *testing.T) {
	for _, mode := range []config.Mode{config.ModeMirror, config.ModeUpsert, config.ModeAll} {
		t.Run(string(mode), func(t *testing.T) { testDuckDBWarehouse(t, mode) })
	}
}

func testDuckDBWarehouse(t *testing.T, mode config.Mode) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "warehouse.duckdb")
	db, release, err := duckdb.DB(path)
	require.NoError(t, err)
	defer release()
	exec := func(sql string) {
		t.Helper()
		_, err := db.ExecContext(ctx, sql)
		require.NoError(t, err, sql)
	}
	count := func(sql string) int {
		t.Helper()
		var n int
		require.NoError(t, db.QueryRowContext(ctx, sql).Scan(&n))
		return n
	}
	exec(`CREATE TABLE customers (region VARCHAR, id INTEGER, name VARCHAR, score DECIMAL(12,4), note VARCHAR, attrs JSON,
		updated_at TIMESTAMPTZ DEFAULT '2026-01-01T00:00:00Z', PRIMARY KEY (region, id))`)
	exec(`INSERT INTO customers (region, id, name, score, note, attrs)
		SELECT ['eu','us','apac','ünïcødé'][1 + i % 4], i, 'Ñame ' || i || ' 🚀 "quoted"', CAST(i * 1.2345 AS DECIMAL(12,4)),
		       CASE WHEN i % 3 = 0 THEN NULL ELSE 'note ' || i END, json_object('tier', i % 5, 'tags', json_array('a', i))
		FROM range(1, 10001) t(i)`)

	hook, url := sink(t)
	e := startEnv(t)
	e.apply(config.File{
		Sources:      []config.Source{{Name: "duck", Type: "duckdb", Config: map[string]any{"path": path}}},
		Destinations: []config.Destination{{Name: "hook", Type: "webhook", Config: map[string]any{"url": url, "batch_size": 250}}},
		Syncs: []config.Sync{{
			Name: "customers", Source: "duck", Destination: "hook", Mode: mode, Engine: config.EngineWarehouse,
			Model: config.Model{SQL: "SELECT * FROM customers", PrimaryKey: []string{"region", "id"}},
		}},
	})
	w := everyMode()[mode]
	r1 := e.runSync("customers")
	require.Equal(t, run.Succeeded, r1.State, r1.Error)
	require.Equal(t, "warehouse", r1.Engine)
	require.Equal(t, w.run1, opsOf(hook.Records(), r1.ID))
	got := hook.State()[`{"id":4,"region":"eu"}`]
	require.Equal(t, "Ñame 4 🚀 \"quoted\"", got["name"])
	require.Equal(t, "4.9380", stringify(got)["score"])
	require.Equal(t, "2026-01-01T00:00:00Z", got["updated_at"])
	require.Equal(t, map[string]any{"tier": "4", "tags": []any{"a", "4"}}, normalise(got["attrs"]))
	require.Nil(t, hook.State()[`{"id":3,"region":"us"}`]["note"], "NULL stays NULL")

	exec(`UPDATE customers SET score = score + 1, note = 'changed' WHERE id % 100 = 7`)
	exec(`INSERT INTO customers (region, id, name, score) SELECT 'eu', i, 'new ' || i, 0 FROM range(10001, 10051) t(i)`)
	exec(`DELETE FROM customers WHERE id % 100 = 50 AND id <= 3000`)
	r2 := e.runSync("customers")
	require.Equal(t, run.Succeeded, r2.State, r2.Error)
	require.Equal(t, w.run2, opsOf(hook.Records(), r2.ID))
	for _, rec := range hook.Records() {
		if rec.RunID != r2.ID || rec.Op == record.OpDelete || mode == config.ModeAll {
			continue
		}
		name, _ := rec.Data["name"].(string)
		require.True(t, rec.Data["note"] == "changed" || strings.HasPrefix(name, "new "), "unchanged row %v was sent", rec.Key)
	}
	if mode == config.ModeMirror {
		require.Len(t, hook.State(), count(`SELECT count(*) FROM customers`))
		require.NotContains(t, hook.State(), capture.KeyString(map[string]any{"region": "apac", "id": 50}))
	}
	require.Eventually(t, func() bool {
		return count(`SELECT count(*) FROM information_schema.tables WHERE table_schema = 'ebb'`) == 1
	}, 30*time.Second, 20*time.Millisecond, "only the committed snapshot is left")
}

// normalise renders numbers in nested JSON as strings, for comparisons.
func normalise(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = normalise(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalise(e)
		}
		return out
	case interface{ String() string }:
		return x.String()
	}
	return v
}
