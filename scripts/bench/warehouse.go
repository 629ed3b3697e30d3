package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/diff"
	"github.com/ebb-etl/ebb/libs/run"
	"github.com/ebb-etl/ebb/libs/snapshot"
	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/duckdb"
	"github.com/ebb-etl/ebb/libs/warehouse"
)

// whBench times the warehouse engine on one warehouse: its whole diff (the
// snapshot table, the key checks, the three change statements and reading
// the change set's keys out), and, for the choice between them, the change
// step as the engine writes it (three statements over the materialised
// snapshot table) against one statement with a CTE over a FULL OUTER JOIN.
type whBench struct {
	env  *natsEnv
	w    source.Warehouse
	m    source.Model
	prev warehouse.Tables
}

// first writes the committed snapshot table, before the edit.
func (b *whBench) first(ctx context.Context) error {
	if err := b.w.ProbeSchema(ctx); err != nil { // creates the schema, as the differ does
		return err
	}
	b.prev = warehouse.RunTables("bench0", "bench", run.NewID())
	_, _, err := b.diff(ctx, warehouse.Previous{}, b.prev)
	return err
}

// diff runs the engine once against prev into tables t.
func (b *whBench) diff(ctx context.Context, prev warehouse.Previous, t warehouse.Tables) (diff.Stats, time.Duration, error) {
	name := snapshot.ObjectName("bench", t.Snapshot, "changes")
	changes := snapshot.Create(ctx, b.env.plane.Snapshots, name, snapshot.ChangesPayload)
	start := time.Now()
	st, err := warehouse.Diff(ctx, b.w, b.m, config.ModeMirror, diff.Options{}, prev, t, changes)
	if err != nil {
		changes.Abort(err)
		return st, 0, err
	}
	if err := changes.Close(); err != nil {
		return st, 0, err
	}
	elapsed := time.Since(start)
	_ = b.env.plane.Snapshots.Delete(ctx, name)
	return st, elapsed, nil
}

// rep runs the engine's diff after the edit, checks it, and times the two
// ways of writing the change table. It drops its tables.
func (b *whBench) rep(ctx context.Context, n int64, keep func(string, time.Duration)) error {
	t := warehouse.RunTables("bench0", "bench", run.NewID())
	defer b.dropTables(ctx, t)
	st, d, err := b.diff(ctx, warehouse.Previous{Table: b.prev.Snapshot}, t)
	if err != nil {
		return err
	}
	if st.Changes != changedRows(n) || st.Adds != addedRows(n) || st.Deletes != deletedRows(n) {
		return fmt.Errorf("warehouse diff found %d changed, %d added, %d deleted; the edit made %d, %d, %d",
			st.Changes, st.Adds, st.Deletes, changedRows(n), addedRows(n), deletedRows(n))
	}
	keep("warehouse", d)

	snap, prev, chg := b.w.Table(t.Snapshot), b.w.Table(b.prev.Snapshot), b.w.Table(t.Changes)
	tables := []source.Stmt{
		{SQL: "DROP TABLE IF EXISTS " + chg},
		{SQL: "CREATE TABLE " + chg + " AS SELECT k1, 'a' AS c FROM " + snap + " WHERE 1 = 0"},
		{SQL: "INSERT INTO " + chg + " SELECT n.k1, 'a' FROM " + snap + " n WHERE NOT EXISTS (SELECT 1 FROM " + prev + " p WHERE p.k1 = n.k1)"},
		{SQL: "INSERT INTO " + chg + " SELECT n.k1, 'c' FROM " + snap + " n JOIN " + prev + " p ON n.k1 = p.k1 WHERE n.h <> p.h"},
		{SQL: "INSERT INTO " + chg + " SELECT p.k1, 'd' FROM " + prev + " p WHERE NOT EXISTS (SELECT 1 FROM " + snap + " n WHERE n.k1 = p.k1)"},
	}
	cte := []source.Stmt{
		{SQL: "DROP TABLE IF EXISTS " + chg},
		{SQL: "CREATE TABLE " + chg + " AS WITH j AS (SELECT n.k1 AS nk, p.k1 AS pk, n.h AS nh, p.h AS ph FROM " + snap +
			" n FULL OUTER JOIN " + prev + " p ON n.k1 = p.k1) SELECT COALESCE(nk, pk) AS k1, CASE WHEN pk IS NULL THEN 'a' " +
			"WHEN nk IS NULL THEN 'd' ELSE 'c' END AS c FROM j WHERE pk IS NULL OR nk IS NULL OR nh <> ph"},
	}
	want := changedRows(n) + addedRows(n) + deletedRows(n)
	for name, stmts := range map[string][]source.Stmt{"change_tables": tables, "change_cte": cte} {
		start := time.Now()
		if _, err := b.w.Exec(ctx, stmts...); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		keep(name, time.Since(start))
		got, err := b.w.QueryInt(ctx, "SELECT count(*) FROM "+chg)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%s found %d changes, want %d", name, got, want)
		}
	}
	return nil
}

func (b *whBench) dropTables(ctx context.Context, t warehouse.Tables) {
	for _, name := range []string{t.Snapshot, t.Changes, t.Previous, t.Keys} {
		_, _ = b.w.Exec(ctx, source.Stmt{SQL: "DROP TABLE IF EXISTS " + b.w.Table(name)})
	}
}

// whRows are the warehouse engine's rows of the diff scenario: the engine
// against the local engine and the raw EXCEPT on the same data, and the
// CTE against the statements the engine runs.
func whRows(where string, n int64, best map[string]time.Duration) []Row {
	wh := best["warehouse"].Seconds()
	local := Row{Scenario: "diff", Measure: "warehouse engine vs local engine, " + where, Size: n,
		Ebb: Figure{wh, "s"}, Baseline: Figure{best["local"].Seconds(), "s"}, Target: "n/a", Status: "n/a"}
	local.Ratio = ratio(wh, local.Baseline.Value)
	except := Row{Scenario: "diff", Measure: "warehouse engine vs 2x EXCEPT, " + where, Size: n,
		Ebb: Figure{wh, "s"}, Baseline: Figure{best["except"].Seconds(), "s"}, Target: "< 1x (faster)"}
	except.Ratio = ratio(wh, except.Baseline.Value)
	except.check(except.Ratio < 1, "slower than EXCEPT")
	cte := Row{Scenario: "diff", Measure: "change step: 3 statements vs 1 CTE FULL JOIN, " + where, Size: n,
		Ebb: Figure{best["change_tables"].Seconds(), "s"}, Baseline: Figure{best["change_cte"].Seconds(), "s"}, Target: "n/a", Status: "n/a"}
	cte.Ratio = ratio(cte.Ebb.Value, cte.Baseline.Value)
	return []Row{local, except, cte}
}

// benchDuckDBDiff is the diff scenario on DuckDB: the same edit on a table
// generated in DuckDB, diffed by both engines and by EXCEPT.
func benchDuckDBDiff(ctx context.Context, env *natsEnv, n int64) ([]Row, error) {
	dir, err := os.MkdirTemp("", "ebb-bench-duckdb-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "warehouse.duckdb")
	db, release, err := duckdb.DB(path)
	if err != nil {
		return nil, err
	}
	defer release()
	exec := func(sql string, args ...any) error {
		if _, err := db.ExecContext(ctx, sql, args...); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
		return nil
	}
	row := func(from string) string {
		return "SELECT i AS id, 'name ' || i AS name, 'user' || i || '@example.com' AS email, CAST(i * 1.5 AS DECIMAL(12,2)) AS amount, " +
			"TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_seconds(i) AS updated_at FROM " + from
	}
	if err := exec("CREATE TABLE customers AS " + row(fmt.Sprintf("range(1, %d) t(i)", n+1))); err != nil {
		return nil, err
	}
	src, err := duckdb.Open(ctx, map[string]any{"path": path})
	if err != nil {
		return nil, err
	}
	defer src.Close()
	model := source.Model{SQL: "SELECT id, name, email, amount, updated_at FROM customers", PrimaryKey: []string{"id"}}
	first, _, err := localDiff(ctx, env, src, model, "", "duck-first")
	if err != nil {
		return nil, err
	}
	b := &whBench{env: env, w: src, m: model}
	if err := b.first(ctx); err != nil {
		return nil, err
	}
	if err := exec("CREATE TABLE snap_prev AS SELECT id, md5(CAST(to_json([CAST(id AS VARCHAR), name, email, CAST(amount AS VARCHAR), CAST(updated_at AS VARCHAR)]) AS VARCHAR)) AS h FROM customers"); err != nil {
		return nil, err
	}
	for _, sql := range []string{
		fmt.Sprintf("UPDATE customers SET amount = amount + 1 WHERE id %% 100 = 17 AND id <= %d", n/100*100),
		fmt.Sprintf("DELETE FROM customers WHERE id %% 200 = 3 AND id <= %d", n/200*200),
		"INSERT INTO customers " + row(fmt.Sprintf("range(%d, %d) t(i)", n+1, n+addedRows(n)+1)),
	} {
		if err := exec(sql); err != nil {
			return nil, err
		}
	}
	best := map[string]time.Duration{}
	keep := func(name string, d time.Duration) {
		if b, ok := best[name]; !ok || d < b {
			best[name] = d
		}
	}
	for rep := range diffReps(n) {
		obj, st, err := localDiff(ctx, env, src, model, first, fmt.Sprintf("duck-rep%d", rep))
		if err != nil {
			return nil, err
		}
		_ = env.plane.Snapshots.Delete(ctx, obj)
		if st.Changes != changedRows(n) || st.Adds != addedRows(n) || st.Deletes != deletedRows(n) {
			return nil, fmt.Errorf("duckdb local diff found %d changed, %d added, %d deleted", st.Changes, st.Adds, st.Deletes)
		}
		keep("local", st.elapsed)
		if err := b.rep(ctx, n, keep); err != nil {
			return nil, err
		}
		start := time.Now()
		for _, sql := range []string{
			"CREATE OR REPLACE TABLE snap_next AS SELECT id, md5(CAST(to_json([CAST(id AS VARCHAR), name, email, CAST(amount AS VARCHAR), CAST(updated_at AS VARCHAR)]) AS VARCHAR)) AS h FROM customers",
			"CREATE OR REPLACE TABLE diff_upsert AS SELECT id, h FROM snap_next EXCEPT SELECT id, h FROM snap_prev",
			"CREATE OR REPLACE TABLE diff_delete AS SELECT id, h FROM snap_prev EXCEPT SELECT id, h FROM snap_next",
		} {
			if err := exec(sql); err != nil {
				return nil, err
			}
		}
		keep("except", time.Since(start))
	}
	return whRows("DuckDB", n, best), nil
}
