package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ebb-etl/ebb/libs/config"
)

const latencyReps = 3

// benchLatency syncs an n-row model once (mode update, so the first run
// commits its snapshot without sending anything), leaves Ebb idle, then
// changes one row and times a manual trigger until the record arrives at
// the sink. The baseline is the floor of the local engine: reading the
// model's keys and hashes once.
func benchLatency(ctx context.Context, n int64) ([]Row, []string, error) {
	ds, err := loadDataset(ctx, "latency", n)
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
	if err := env.apply(ctx, pipelineConfig(ds.modelSQL(), hook.url, config.ModeUpdate, nil)); err != nil {
		return nil, nil, err
	}
	if _, _, _, err := env.runSync(ctx, "bench", 10*time.Minute); err != nil {
		return nil, nil, err
	}
	conn, err := pgx.Connect(ctx, postgresDSN())
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close(ctx)

	var arrivals, commits, floors []time.Duration
	var last phases
	for i := range latencyReps {
		time.Sleep(time.Second) // idle: nothing in flight
		if err := ds.exec(ctx, "UPDATE "+ds.table("customers")+" SET amount = amount + 1 WHERE id = $1", n/2+int64(i)); err != nil {
			return nil, nil, err
		}
		ph := phases{start: time.Now()}
		r, err := env.trigger(ctx, "bench")
		if err != nil {
			return nil, nil, err
		}
		// The run's states are polled meanwhile, to say where the time goes.
		ended := make(chan error, 1)
		go func() {
			_, err := env.wait(ctx, r, 10*time.Minute, &ph)
			ended <- err
		}()
		wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		err = hook.waitRun(wctx, r.ID, 1)
		cancel()
		if err != nil {
			return nil, nil, err
		}
		arrivals = append(arrivals, time.Since(ph.start))
		if err := <-ended; err != nil {
			return nil, nil, err
		}
		commits = append(commits, time.Since(ph.start))
		last = ph
		d, err := floorScan(ctx, conn, ds.modelSQL(), floorOrder, n)
		if err != nil {
			return nil, nil, err
		}
		floors = append(floors, d)
	}
	arrival, commit, floor := median(arrivals), median(commits), median(floors)
	row := Row{Scenario: "latency", Measure: "1 changed row, trigger -> at sink vs one key+hash read", Size: n,
		Ebb: Figure{arrival.Seconds(), "s"}, Baseline: Figure{floor.Seconds(), "s"}, Ratio: ratio(arrival.Seconds(), floor.Seconds()),
		Target: "<= 1.5x"}
	row.check(row.Ratio <= 1.5, "%.2fx", row.Ratio)
	notes := []string{fmt.Sprintf("latency: median of %d; trigger -> committed %s; the baseline floor read took %s; the last run: %s",
		latencyReps, commit.Round(time.Millisecond), floor.Round(time.Millisecond), last)}
	return []Row{row}, notes, nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
