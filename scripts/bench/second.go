package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ebb-etl/ebb/libs/config"
)

// benchSecond times a whole second run (trigger to committed) after 1%
// of n rows changed, 0.5% were added and 0.5% deleted, with each diff
// engine, against the key+hash read floor (target: <= 1.3x) and a full
// re-copy of the model with COPY TO STDOUT piped into COPY FROM STDIN
// (target: <= 0.5x).
func benchSecond(ctx context.Context, n int64) ([]Row, []string, error) {
	ds, err := loadDataset(ctx, "second", n)
	if err != nil {
		return nil, nil, err
	}
	defer ds.drop()
	hook, err := startSink(sinkOptions{})
	if err != nil {
		return nil, nil, err
	}
	defer hook.close()
	env, err := startPipeline(ctx, pipelineServices)
	if err != nil {
		return nil, nil, err
	}
	defer env.stop()

	engines := []config.Engine{config.EngineLocal, config.EngineWarehouse}
	syncOf := func(e config.Engine) string { return "bench_" + string(e) }
	for _, e := range engines {
		f := pipelineConfig(ds.modelSQL(), hook.url, config.ModeMirror, nil)
		f.Syncs[0].Name, f.Syncs[0].Engine = syncOf(e), e
		if err := env.apply(ctx, f); err != nil {
			return nil, nil, err
		}
		if _, _, _, err := env.runSync(ctx, syncOf(e), 30*time.Minute); err != nil {
			return nil, nil, fmt.Errorf("first run, engine %s: %w", e, err)
		}
	}
	if err := ds.edit(ctx); err != nil {
		return nil, nil, err
	}
	model := n + addedRows(n) - deletedRows(n)
	conn, err := pgx.Connect(ctx, postgresDSN())
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close(ctx)
	floor, err := floorScan(ctx, conn, ds.modelSQL(), floorOrder, model)
	if err != nil {
		return nil, nil, err
	}
	recopy, err := copyPipe(ctx, ds)
	if err != nil {
		return nil, nil, err
	}
	var rows []Row
	var notes []string
	for _, e := range engines {
		r, took, ph, err := env.runSync(ctx, syncOf(e), 30*time.Minute)
		if err != nil {
			return rows, notes, fmt.Errorf("second run, engine %s: %w", e, err)
		}
		notes = append(notes, fmt.Sprintf("second: engine %s: %d adds, %d changes, %d deletes in %s (%s)",
			e, r.Planned.Adds, r.Planned.Changes, r.Planned.Deletes, took.Round(time.Millisecond), ph))
		vsFloor := Row{Scenario: "second", Measure: fmt.Sprintf("second run, engine %s, vs key+hash read floor", e), Size: n,
			Ebb: Figure{took.Seconds(), "s"}, Baseline: Figure{floor.Seconds(), "s"}, Ratio: ratio(took.Seconds(), floor.Seconds()), Target: "<= 1.3x"}
		vsFloor.check(vsFloor.Ratio <= 1.3, "%.2fx", vsFloor.Ratio)
		vsCopy := Row{Scenario: "second", Measure: fmt.Sprintf("second run, engine %s, vs a full re-copy with COPY", e), Size: n,
			Ebb: Figure{took.Seconds(), "s"}, Baseline: Figure{recopy.Seconds(), "s"}, Ratio: ratio(took.Seconds(), recopy.Seconds()), Target: "<= 0.5x"}
		vsCopy.check(vsCopy.Ratio <= 0.5, "%.2fx", vsCopy.Ratio)
		rows = append(rows, vsFloor, vsCopy)
	}
	return rows, notes, nil
}

// copyPipe copies the model into a fresh table with COPY (model) TO STDOUT
// piped into COPY ... FROM STDIN, as `psql -c '\copy ...' | psql -c
// '\copy ...'` does, and returns how long it took.
func copyPipe(ctx context.Context, ds *dataset) (time.Duration, error) {
	target := ds.table("recopy")
	if err := ds.exec(ctx, "DROP TABLE IF EXISTS "+target); err != nil {
		return 0, err
	}
	if err := ds.exec(ctx, "CREATE TABLE "+target+" AS "+ds.modelSQL()+" WITH NO DATA"); err != nil {
		return 0, err
	}
	from, err := pgx.Connect(ctx, postgresDSN())
	if err != nil {
		return 0, err
	}
	defer from.Close(ctx)
	to, err := pgx.Connect(ctx, postgresDSN())
	if err != nil {
		return 0, err
	}
	defer to.Close(ctx)
	start := time.Now()
	pr, pw := io.Pipe()
	copied := make(chan error, 1)
	go func() {
		// Written through a buffer, as psql does: a pipe write per row
		// would make one COPY message per row on the other side.
		buf := bufio.NewWriterSize(pw, 1<<16)
		_, err := from.PgConn().CopyTo(ctx, buf, "COPY ("+ds.modelSQL()+") TO STDOUT")
		if err == nil {
			err = buf.Flush()
		}
		pw.CloseWithError(err)
		copied <- err
	}()
	if _, err := to.PgConn().CopyFrom(ctx, pr, "COPY "+target+" FROM STDIN"); err != nil {
		pr.CloseWithError(err)
		<-copied
		return 0, err
	}
	if err := <-copied; err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
