package main

import (
	"context"
	"fmt"
	"time"

	"github.com/ebb-etl/ebb/libs/config"
)

// Rate-limit settings: how long the rate may take to settle, and how long
// it is measured after.
const (
	rateSettle  = 30 * time.Second
	rateMeasure = 20 * time.Second
	rateBatch   = 10 // records per request: many requests for few rows
)

// benchRateLimit syncs into a sink that accepts L requests a second (a
// token bucket holding a second's worth; 429 with Retry-After: 1 above
// it), for L = 5 and 50, with no rate configured: Ebb must find the limit
// itself. After 30 s it measures, for 20 s, the requests accepted per
// second (target: >= 0.9 L) and the share answered 429 (target: < 5%).
func benchRateLimit(ctx context.Context, _ int64) ([]Row, []string, error) {
	var rows []Row
	var notes []string
	for _, c := range []struct {
		limit      float64
		configured bool
	}{{5, false}, {50, false}, {5, true}} {
		row, note, err := rateLimitOnce(ctx, c.limit, c.configured)
		if err != nil {
			return rows, notes, err
		}
		rows = append(rows, row...)
		notes = append(notes, note)
	}
	return rows, notes, nil
}

// rateLimitOnce measures one sink limit; configured sets the destination's
// requests_per_second to it (the issue saw that do worse than none).
func rateLimitOnce(ctx context.Context, limit float64, configured bool) ([]Row, string, error) {
	// Enough rows that the run outlasts the measurement.
	n := int64(limit * rateBatch * (rateSettle + rateMeasure + 15*time.Second).Seconds())
	ds, err := loadDataset(ctx, "ratelimit", n)
	if err != nil {
		return nil, "", err
	}
	defer ds.drop()
	hook, err := startSink(sinkOptions{rps: limit})
	if err != nil {
		return nil, "", err
	}
	defer hook.close()
	env, err := startPipeline(ctx, pipelineServices)
	if err != nil {
		return nil, "", err
	}
	defer env.stop()
	dest := map[string]any{"batch_size": rateBatch}
	setting := "none configured"
	if configured {
		dest["requests_per_second"] = limit
		setting = fmt.Sprintf("requests_per_second: %.0f", limit)
	}
	if err := env.apply(ctx, pipelineConfig(ds.modelSQL(), hook.url, config.ModeUpsert, dest)); err != nil {
		return nil, "", err
	}
	hook.reset()
	r, err := env.trigger(ctx, "bench")
	if err != nil {
		return nil, "", err
	}
	if err := sleepCtx(ctx, rateSettle); err != nil {
		return nil, "", err
	}
	acc0, thr0 := hook.requests.Load(), hook.throttled.Load()
	if err := sleepCtx(ctx, rateMeasure); err != nil {
		return nil, "", err
	}
	accepted, throttled := hook.requests.Load()-acc0, hook.throttled.Load()-thr0
	if _, err := env.plane.Runs.Cancel(ctx, r.ID); err != nil {
		return nil, "", err
	}
	rate := float64(accepted) / rateMeasure.Seconds()
	share := 0.0
	if accepted+throttled > 0 {
		share = float64(throttled) / float64(accepted+throttled)
	}
	size := int64(limit)
	accRow := Row{Scenario: "ratelimit", Measure: fmt.Sprintf("accepted requests/s, sink limit %.0f/s, %s (after %s)", limit, setting, rateSettle),
		Size: size, Ebb: Figure{rate, "req/s"}, Baseline: Figure{limit, "req/s"}, Target: ">= 0.9x the limit"}
	accRow.Ratio = ratio(rate, limit)
	accRow.check(accRow.Ratio >= 0.9, "%.2fx < 0.9x the limit", accRow.Ratio)
	shareRow := Row{Scenario: "ratelimit", Measure: fmt.Sprintf("share of requests answered 429, sink limit %.0f/s, %s", limit, setting),
		Size: size, Ebb: Figure{share * 100, "%"}, Baseline: Figure{5, "%"}, Target: "< 5% answered 429"}
	shareRow.Ratio = ratio(share*100, 5)
	shareRow.check(share < 0.05, "%.1f%% >= 5%% of requests answered 429", share*100)
	note := fmt.Sprintf("ratelimit %.0f/s, %s: %d accepted and %d answered 429 in the %s measured", limit, setting, accepted, throttled, rateMeasure)
	return []Row{accRow, shareRow}, note, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
