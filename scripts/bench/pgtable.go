package main

import (
	"context"
	"fmt"
	"time"

	"github.com/ebb-etl/ebb/libs/config"
)

// benchPGTable is a first load of n rows from Postgres into a Postgres
// table (the postgres destination, with its default settings) against
// the floor a user can type in one line: COPY (model) TO STDOUT piped
// into COPY ... FROM STDIN.
func benchPGTable(ctx context.Context, n int64) ([]Row, []string, error) {
	ds, err := loadDataset(ctx, "pgtable", n)
	if err != nil {
		return nil, nil, err
	}
	defer ds.drop()
	recopy, err := copyPipe(ctx, ds)
	if err != nil {
		return nil, nil, err
	}
	target := ds.table("target")
	if err := ds.exec(ctx, `CREATE TABLE `+target+` (
		id bigint PRIMARY KEY, name text, email text, amount numeric(12,2), updated_at timestamptz)`); err != nil {
		return nil, nil, err
	}

	env, err := startPipeline(ctx, pipelineServices)
	if err != nil {
		return nil, nil, err
	}
	defer env.stop()
	f := pipelineConfig(ds.modelSQL(), "", config.ModeUpsert, nil)
	f.Destinations = []config.Destination{{Name: "bench_table", Type: "postgres",
		Config: map[string]any{"dsn": postgresDSN(), "table": target}}}
	f.Syncs[0].Destination = "bench_table"
	if err := env.apply(ctx, f); err != nil {
		return nil, nil, err
	}
	r, took, ph, err := env.runSync(ctx, "bench", 30*time.Minute)
	if err != nil {
		return nil, nil, err
	}
	var got int64
	if err := ds.pool.QueryRow(ctx, "SELECT count(*) FROM "+target).Scan(&got); err != nil {
		return nil, nil, err
	}
	if got != n || r.Adds.Delivered != n {
		return nil, nil, fmt.Errorf("run delivered %d records, the table has %d rows, want %d", r.Adds.Delivered, got, n)
	}
	row := Row{Scenario: "pgtable", Measure: "first load into a Postgres table vs COPY TO STDOUT | COPY FROM STDIN", Size: n,
		Ebb: Figure{took.Seconds(), "s"}, Baseline: Figure{recopy.Seconds(), "s"},
		Ratio: ratio(recopy.Seconds(), took.Seconds()), Target: ">= 0.35x the pipe's speed"}
	row.check(row.Ratio >= 0.35, "%.2fx", row.Ratio)
	notes := []string{fmt.Sprintf("pgtable: run took %s from trigger to committed (%s); the COPY pipe %s",
		took.Round(time.Millisecond), ph, recopy.Round(time.Millisecond))}
	return []Row{row}, notes, nil
}
