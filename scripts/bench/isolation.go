package main

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/config"
)

// isolationSmall is the size of the sync measured beside the slow one.
const isolationSmall = 10_000

// benchIsolation measures how much a destination that accepts 2 requests a
// second, with a first sync of n rows queued behind it, slows a
// 10,000-row sync into another destination started after it: the second
// sync's time from trigger to commit, beside the slow one, over the same
// sync's time alone, measured first in the same run. Target: 1.5x.
func benchIsolation(ctx context.Context, n int64) ([]Row, []string, error) {
	ds, err := loadDataset(ctx, "isolation", max(n, isolationSmall))
	if err != nil {
		return nil, nil, err
	}
	defer ds.drop()
	slowSink, err := startSink(sinkOptions{})
	if err != nil {
		return nil, nil, err
	}
	defer slowSink.close()
	fastSink, err := startSink(sinkOptions{})
	if err != nil {
		return nil, nil, err
	}
	defer fastSink.close()

	env, err := startPipeline(ctx, pipelineServices)
	if err != nil {
		return nil, nil, err
	}
	defer env.stop()
	small := fmt.Sprintf("%s WHERE id <= %d", ds.modelSQL(), isolationSmall)
	sync := func(name, model, dest string) config.Sync {
		return config.Sync{Name: name, Source: "bench_pg", Destination: dest, Mode: config.ModeUpsert, Schedule: "manual",
			Model: config.Model{SQL: model, PrimaryKey: []string{"id"}}}
	}
	f := config.File{
		Sources: []config.Source{{Name: "bench_pg", Type: "postgres", Config: map[string]any{"dsn": postgresDSN()}}},
		Destinations: []config.Destination{
			{Name: "slow_hook", Type: "webhook", Config: map[string]any{"url": slowSink.url, "batch_size": e2eBatch, "requests_per_second": 2}},
			{Name: "fast_hook", Type: "webhook", Config: map[string]any{"url": fastSink.url, "batch_size": e2eBatch}},
		},
		Syncs: []config.Sync{
			sync("slow", ds.modelSQL(), "slow_hook"),
			sync("warmup", small, "fast_hook"),
			sync("alone", small, "fast_hook"),
			sync("beside", small, "fast_hook"),
		},
	}
	if err := env.apply(ctx, f); err != nil {
		return nil, nil, err
	}

	// The first run of a process pays for connections and caches: not
	// the alone figure's.
	if _, _, _, err := env.runSync(ctx, "warmup", 10*time.Minute); err != nil {
		return nil, nil, err
	}
	_, alone, _, err := env.runSync(ctx, "alone", 10*time.Minute)
	if err != nil {
		return nil, nil, err
	}
	slow, err := env.trigger(ctx, "slow")
	if err != nil {
		return nil, nil, err
	}
	filled, err := waitBufferFull(ctx, env.natsEnv, "slow", time.Minute)
	if err != nil {
		return nil, nil, err
	}
	_, beside, _, err := env.runSync(ctx, "beside", 10*time.Minute)
	if err != nil {
		return nil, nil, err
	}
	if _, err := env.plane.Runs.Cancel(ctx, slow.ID); err != nil {
		return nil, nil, err
	}

	row := Row{Scenario: "isolation", Measure: fmt.Sprintf("%d-row sync beside a 2 req/s destination with %s rows queued, vs alone", isolationSmall, thousands(float64(n))),
		Size: n, Ebb: Figure{beside.Seconds(), "s"}, Baseline: Figure{alone.Seconds(), "s"}, Target: "<= 1.5x alone"}
	row.Ratio = ratio(beside.Seconds(), alone.Seconds())
	row.check(row.Ratio <= 1.5, "%.2fx > 1.5x alone", row.Ratio)
	note := fmt.Sprintf("isolation: the slow sync's buffer was full after %s; it had delivered %d records when the other sync ended",
		filled.Round(time.Millisecond), slowSink.records.Load())
	return []Row{row}, []string{note}, nil
}

// waitBufferFull waits until the sync's buffer of record batches is full:
// its destination is the bottleneck and every buffer in front of it holds
// its batches.
func waitBufferFull(ctx context.Context, env *natsEnv, sync string, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	st, err := env.plane.JS.Stream(ctx, bus.StreamRecords)
	if err != nil {
		return 0, err
	}
	for time.Since(start) < timeout {
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(bus.Records(sync)))
		if err != nil {
			return 0, err
		}
		if info.State.Subjects[bus.Records(sync)] >= uint64(bus.DefaultLimits().SyncBuffer) {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return 0, fmt.Errorf("the buffer of sync %s did not fill within %s", sync, timeout)
}
