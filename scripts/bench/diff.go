package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/diff"
	"github.com/ebb-etl/ebb/libs/snapshot"
	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/postgres"
)

// diffReps is how many times each diff measure runs; the best time counts,
// which is the steadiest figure on a shared machine. Above largeDiff rows
// one run each keeps the 10M-row scenario within minutes.
func diffReps(n int64) int {
	if n > largeDiff {
		return 1
	}
	return 3
}

const largeDiff = 2_000_000

// benchDiff times Ebb's local diff engine against the floor (reading keys
// and row hashes once with bare pgx) and against the in-warehouse
// alternatives (two EXCEPT queries; one FULL OUTER JOIN), on a table of n
// rows with 1% changed, 0.5% added and 0.5% deleted since the committed
// snapshot.
func benchDiff(ctx context.Context, n int64) ([]Row, []string, error) {
	ds, err := newDataset(ctx, "diff")
	if err != nil {
		return nil, nil, err
	}
	defer ds.drop()
	if err := ds.load(ctx, n); err != nil {
		return nil, nil, err
	}
	env, err := startNATS(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer env.stop()
	src, err := postgres.Open(ctx, map[string]any{"dsn": postgresDSN()})
	if err != nil {
		return nil, nil, err
	}
	defer src.Close()
	model := source.Model{SQL: ds.modelSQL(), PrimaryKey: []string{"id"}}

	// The committed snapshot: Ebb's object, and the warehouse's table.
	first, _, err := localDiff(ctx, env, src, model, "", "first")
	if err != nil {
		return nil, nil, err
	}
	whSrc, err := postgres.Open(ctx, map[string]any{"dsn": postgresDSN(), "snapshot_schema": ds.schema})
	if err != nil {
		return nil, nil, err
	}
	defer whSrc.Close()
	wh := &whBench{env: env, w: whSrc, m: model}
	if err := wh.first(ctx); err != nil {
		return nil, nil, err
	}
	hashExpr := "md5(ROW(m.*)::text)"
	if err := ds.exec(ctx, "CREATE TABLE "+ds.table("snap_prev")+" AS SELECT m.id, "+hashExpr+" AS h FROM ("+model.SQL+") m"); err != nil {
		return nil, nil, err
	}
	if err := ds.edit(ctx); err != nil {
		return nil, nil, err
	}

	conn, err := pgx.Connect(ctx, postgresDSN())
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close(ctx)

	best := map[string]time.Duration{}
	keep := func(name string, d time.Duration) {
		if b, ok := best[name]; !ok || d < b {
			best[name] = d
		}
	}
	for rep := range diffReps(n) {
		d, err := floorScan(ctx, conn, model.SQL, floorOrder, modelRows(n))
		if err != nil {
			return nil, nil, err
		}
		keep("floor", d)
		d, err = floorScan(ctx, conn, model.SQL, "m.id", modelRows(n))
		if err != nil {
			return nil, nil, err
		}
		keep("floor_index", d)

		obj, st, err := localDiff(ctx, env, src, model, first, fmt.Sprintf("rep%d", rep))
		if err != nil {
			return nil, nil, err
		}
		_ = env.plane.Snapshots.Delete(ctx, obj)
		if st.Changes != changedRows(n) || st.Adds != addedRows(n) || st.Deletes != deletedRows(n) {
			return nil, nil, fmt.Errorf("diff found %d changed, %d added, %d deleted; the edit made %d, %d, %d",
				st.Changes, st.Adds, st.Deletes, changedRows(n), addedRows(n), deletedRows(n))
		}
		keep("local", st.elapsed)

		if err := wh.rep(ctx, n, keep); err != nil {
			return nil, nil, err
		}

		d, err = exceptDiff(ctx, ds, model.SQL, hashExpr, n)
		if err != nil {
			return nil, nil, err
		}
		keep("except", d)

		d, err = joinDiff(ctx, ds, model.SQL, hashExpr, n)
		if err != nil {
			return nil, nil, err
		}
		keep("join", d)
	}

	rows := modelRows(n)
	local := best["local"].Seconds()
	floor := Row{Scenario: "diff", Measure: "local engine vs floor (pgx key+md5 read)", Size: n,
		Ebb: Figure{local, "s"}, Baseline: Figure{best["floor"].Seconds(), "s"}, Target: "<= 1.3x floor time"}
	floor.Ratio = ratio(local, floor.Baseline.Value)
	floor.check(floor.Ratio <= 1.3, "%.2fx the floor", floor.Ratio)

	except := Row{Scenario: "diff", Measure: "local engine vs 2x EXCEPT in Postgres", Size: n,
		Ebb: Figure{local, "s"}, Baseline: Figure{best["except"].Seconds(), "s"}, Target: "< 1x (faster)"}
	except.Ratio = ratio(local, except.Baseline.Value)
	except.check(except.Ratio < 1, "slower than EXCEPT")

	join := Row{Scenario: "diff", Measure: "local engine vs FULL OUTER JOIN in Postgres", Size: n,
		Ebb: Figure{local, "s"}, Baseline: Figure{best["join"].Seconds(), "s"}, Target: "< 1x (faster)"}
	join.Ratio = ratio(local, join.Baseline.Value)
	join.check(join.Ratio < 1, "slower than the join")

	whPG := whRows("Postgres", n, best)
	whDuck, err := benchDuckDBDiff(ctx, env, n)
	if err != nil {
		return nil, nil, fmt.Errorf("diff on DuckDB: %w", err)
	}

	notes := []string{fmt.Sprintf("diff: %d model rows after the edit (%d changed, %d added, %d deleted); best of %d; local = %s rows/s, floor = %s rows/s; the floor with a plain ORDER BY id (serial index scan) took %s",
		rows, changedRows(n), addedRows(n), deletedRows(n), diffReps(n),
		thousands(float64(rows)/local), thousands(float64(rows)/best["floor"].Seconds()), best["floor_index"].Round(time.Millisecond))}
	out := append([]Row{floor, except, join}, whPG...)
	return append(out, whDuck...), notes, nil
}

// modelRows is the model's size after the edit.
func modelRows(n int64) int64 { return n + addedRows(n) - deletedRows(n) }

type diffStats struct {
	diff.Stats
	elapsed time.Duration
}

// localDiff runs the local engine as the differ service does: the model's
// keys and hashes merged against the snapshot object prev, writing the
// candidate snapshot and the change set to the object store. It returns
// the candidate's name.
func localDiff(ctx context.Context, env *natsEnv, src source.Source, m source.Model, prev, tag string) (string, diffStats, error) {
	obs := env.plane.Snapshots
	start := time.Now()
	pr, err := snapshot.Open(ctx, obs, prev, snapshot.SnapshotPayload)
	if err != nil {
		return "", diffStats{}, err
	}
	defer pr.Close()
	candidate := snapshot.ObjectName("bench", tag, "snapshot")
	changes := snapshot.ObjectName("bench", tag, "changes")
	next := snapshot.Create(ctx, obs, candidate, snapshot.SnapshotPayload)
	cw := snapshot.Create(ctx, obs, changes, snapshot.ChangesPayload)
	st, err := diff.Compute(ctx, src, m, config.ModeMirror, pr, next, cw)
	if err != nil {
		next.Abort(err)
		cw.Abort(err)
		return "", diffStats{}, err
	}
	if err := next.Close(); err != nil {
		cw.Abort(err)
		return "", diffStats{}, err
	}
	if err := cw.Close(); err != nil {
		return "", diffStats{}, err
	}
	elapsed := time.Since(start)
	_ = obs.Delete(ctx, changes)
	return candidate, diffStats{Stats: st, elapsed: elapsed}, nil
}

// floorOrder is the ORDER BY of the query the postgres source pushes down
// (NULLs first, as keys sort). It matters to the plan: with a plain
// "ORDER BY id" Postgres walks the primary key index serially; NULLS FIRST
// cannot use that index and gets a parallel seq scan and sort, faster on
// 2 cores. The floor uses the same query as Ebb, so the ratio is what Ebb
// adds on the client side.
const floorOrder = "m.id NULLS FIRST"

// floorScan reads every key and row hash once, in key order, with bare pgx:
// no diff can take less. want is the model's row count.
func floorScan(ctx context.Context, conn *pgx.Conn, modelSQL, order string, want int64) (time.Duration, error) {
	start := time.Now()
	rows, err := conn.Query(ctx, "SELECT m.id, decode(md5(ROW(m.*)::text), 'hex') FROM ("+modelSQL+") m ORDER BY "+order)
	if err != nil {
		return 0, err
	}
	var count int64
	for rows.Next() {
		_ = rows.RawValues()
		count++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if count != want {
		return 0, fmt.Errorf("floor read %d rows, want %d", count, want)
	}
	return time.Since(start), nil
}

// exceptDiff is the usual in-warehouse diff: materialise the new snapshot
// table, then one EXCEPT each way for what to upsert and what to delete.
func exceptDiff(ctx context.Context, ds *dataset, modelSQL, hashExpr string, n int64) (time.Duration, error) {
	next, up, del := ds.table("snap_next"), ds.table("diff_upsert"), ds.table("diff_delete")
	if err := ds.exec(ctx, "DROP TABLE IF EXISTS "+next+", "+up+", "+del); err != nil {
		return 0, err
	}
	start := time.Now()
	for _, sql := range []string{
		"CREATE TABLE " + next + " AS SELECT m.id, " + hashExpr + " AS h FROM (" + modelSQL + ") m",
		"CREATE TABLE " + up + " AS SELECT id, h FROM " + next + " EXCEPT SELECT id, h FROM " + ds.table("snap_prev"),
		"CREATE TABLE " + del + " AS SELECT id, h FROM " + ds.table("snap_prev") + " EXCEPT SELECT id, h FROM " + next,
	} {
		if err := ds.exec(ctx, sql); err != nil {
			return 0, err
		}
	}
	elapsed := time.Since(start)
	var ups, dels int64
	if err := ds.pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM "+up+"), (SELECT count(*) FROM "+del+")").Scan(&ups, &dels); err != nil {
		return 0, err
	}
	if ups != changedRows(n)+addedRows(n) || dels != changedRows(n)+deletedRows(n) {
		return 0, fmt.Errorf("EXCEPT diff found %d to upsert and %d to delete", ups, dels)
	}
	return elapsed, nil
}

// joinDiff materialises the new snapshot table, then one FULL OUTER JOIN on
// key and hash: rows without a match on either side are the change set.
func joinDiff(ctx context.Context, ds *dataset, modelSQL, hashExpr string, n int64) (time.Duration, error) {
	next, changes := ds.table("snap_next"), ds.table("diff_join")
	if err := ds.exec(ctx, "DROP TABLE IF EXISTS "+next+", "+changes); err != nil {
		return 0, err
	}
	start := time.Now()
	for _, sql := range []string{
		"CREATE TABLE " + next + " AS SELECT m.id, " + hashExpr + " AS h FROM (" + modelSQL + ") m",
		"CREATE TABLE " + changes + " AS SELECT n.id AS new_id, p.id AS old_id FROM " + next + " n FULL OUTER JOIN " +
			ds.table("snap_prev") + " p ON n.id = p.id AND n.h = p.h WHERE n.id IS NULL OR p.id IS NULL",
	} {
		if err := ds.exec(ctx, sql); err != nil {
			return 0, err
		}
	}
	elapsed := time.Since(start)
	var count int64
	if err := ds.pool.QueryRow(ctx, "SELECT count(*) FROM "+changes).Scan(&count); err != nil {
		return 0, err
	}
	if want := 2*changedRows(n) + addedRows(n) + deletedRows(n); count != want {
		return 0, fmt.Errorf("FULL OUTER JOIN diff found %d unmatched rows, want %d", count, want)
	}
	return elapsed, nil
}
