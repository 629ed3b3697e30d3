package main

import (
	"context"
	"fmt"
	"time"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/config"
)

// Scale-out settings: a sink that takes 50 ms a request, and a per-copy
// bound of one request in flight, so each delivery copy is the bottleneck
// and adding copies should add throughput. The ack window (4 partitions x
// 16) leaves room for 64 requests in flight in all.
const (
	scaleLatency   = 50 * time.Millisecond
	scaleLimitRPS  = 30 // the sink's rate limit in the last phases
	scalePartition = 4
)

// benchScaleout runs the other services once, in the benchmark's process,
// and 1, 2 and 4 copies of the delivery service as separate `ebb serve
// delivery` processes, each syncing n rows (mode all) to a sink that takes
// 50 ms a request. Then, with 4 copies, the sink enforces a rate limit
// (429 with Retry-After) that Ebb must respect.
func benchScaleout(ctx context.Context, o options, n int64) ([]Row, []string, error) {
	ds, err := loadDataset(ctx, "scale", n)
	if err != nil {
		return nil, nil, err
	}
	defer ds.drop()
	hook, err := startSink(sinkOptions{latency: scaleLatency})
	if err != nil {
		return nil, nil, err
	}
	defer hook.close()
	env, err := startPipeline(ctx, []string{"scheduler", "differ", "extractor", "transformer", "reporting"})
	if err != nil {
		return nil, nil, err
	}
	defer env.stop()

	bounded := map[string]any{"partitions": scalePartition, "ack_window": 16, "concurrency": 1}
	type step struct {
		copies int
		dest   map[string]any
	}
	measure := func(s step) (stepResult, error) {
		if err := env.apply(ctx, pipelineConfig(ds.modelSQL(), hook.url, config.ModeAll, s.dest)); err != nil {
			return stepResult{}, err
		}
		return deliverWithCopies(ctx, o.ebbBin, env.natsEnv, hook, s.copies, n)
	}
	var notes []string
	var rows []Row
	results := map[int]stepResult{}
	for _, copies := range []int{1, 2, 4} {
		r, err := measure(step{copies, bounded})
		if err != nil {
			return rows, notes, fmt.Errorf("%d delivery copies: %w", copies, err)
		}
		results[copies] = r
		notes = append(notes, fmt.Sprintf("scaleout: %d copies: %s", copies, r))
	}
	one := results[1].rowsPerSec
	rows = append(rows, Row{Scenario: "scaleout", Measure: "1 delivery copy, 50 ms sink, concurrency 1/copy", Size: n,
		Ebb: Figure{one, "rows/s"}, Baseline: Figure{20 * e2eBatch, "rows/s"}, Ratio: ratio(one, 20*e2eBatch),
		Target: "n/a (reference)", Status: "n/a", Reason: "baseline: 1 request / 50 ms"})
	for _, c := range []int{2, 4} {
		got := results[c].rowsPerSec
		r := Row{Scenario: "scaleout", Measure: fmt.Sprintf("%d delivery copies vs 1", c), Size: n,
			Ebb: Figure{got, "rows/s"}, Baseline: Figure{one, "rows/s"}, Ratio: ratio(got, one),
			Target: fmt.Sprintf(">= %.1fx (near-linear)", 0.85*float64(c))}
		r.check(r.Ratio >= 0.85*float64(c), "%.2fx", r.Ratio)
		rows = append(rows, r)
	}

	// The same 1 vs 4 copies with default delivery settings: the shared
	// consumers' ack window, not the copies, bounds requests in flight.
	defaults := map[string]any{"partitions": scalePartition}
	d1, err := measure(step{1, defaults})
	if err != nil {
		return rows, notes, err
	}
	d4, err := measure(step{4, defaults})
	if err != nil {
		return rows, notes, err
	}
	notes = append(notes, fmt.Sprintf("scaleout: default settings, 1 copy: %s; 4 copies: %s", d1, d4))
	r := Row{Scenario: "scaleout", Measure: "4 copies vs 1, default settings (ack_window 4)", Size: n,
		Ebb: Figure{d4.rowsPerSec, "rows/s"}, Baseline: Figure{d1.rowsPerSec, "rows/s"}, Ratio: ratio(d4.rowsPerSec, d1.rowsPerSec),
		Target: "n/a (shows the ack window bound)", Status: "n/a"}
	rows = append(rows, r)

	// Rate limit: the sink accepts scaleLimitRPS requests a second and
	// answers 429 with Retry-After: 1 beyond that; 4 copies could send
	// more. First with no configured rate (Ebb adapts on 429), then with
	// requests_per_second set to the sink's limit.
	hook.close()
	limited, err := startSink(sinkOptions{latency: scaleLatency, rps: scaleLimitRPS})
	if err != nil {
		return rows, notes, err
	}
	defer limited.close()
	hook = limited
	for _, phase := range []struct {
		name string
		dest map[string]any
	}{
		{"adaptive (429s only)", bounded},
		{"requests_per_second = limit", merge(bounded, map[string]any{"requests_per_second": scaleLimitRPS})},
	} {
		res, err := measure(step{4, phase.dest})
		if err != nil {
			return rows, notes, fmt.Errorf("rate limit, %s: %w", phase.name, err)
		}
		notes = append(notes, fmt.Sprintf("scaleout: sink limit %d req/s, 4 copies, %s: %s", scaleLimitRPS, phase.name, res))
		r := Row{Scenario: "scaleout", Measure: fmt.Sprintf("4 copies, sink limit %d req/s, %s", scaleLimitRPS, phase.name), Size: n,
			Ebb: Figure{res.acceptedRPS, "req/s"}, Baseline: Figure{scaleLimitRPS, "req/s"}, Ratio: res.acceptedRPS / scaleLimitRPS,
			Target: ">= 0.8x limit, < 10% 429s"}
		share := res.throttledShare()
		switch {
		case r.Ratio < 0.8:
			r.check(false, "%.2fx the limit, %.0f%% 429s", r.Ratio, 100*share)
		default:
			r.check(share < 0.10, "%.0f%% of requests got 429", 100*share)
		}
		rows = append(rows, r)
	}
	return rows, notes, nil
}

func merge(a, b map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// stepResult is what the sink saw during one run.
type stepResult struct {
	rowsPerSec  float64
	acceptedRPS float64
	accepted    int64
	throttled   int64
	maxInFlight int64
	span        time.Duration
}

func (s stepResult) throttledShare() float64 {
	return ratio(float64(s.throttled), float64(s.accepted+s.throttled))
}

func (s stepResult) String() string {
	return fmt.Sprintf("%s rows/s, %.1f req/s accepted, %d throttled, at most %d in flight, %s at the sink",
		thousands(s.rowsPerSec), s.acceptedRPS, s.throttled, s.maxInFlight, s.span.Round(time.Millisecond))
}

// deliverWithCopies starts copies delivery processes, waits until each has
// subscribed, runs the sync and measures the sink from its first to its
// last batch; then it stops the copies.
func deliverWithCopies(ctx context.Context, bin string, env *natsEnv, hook *sink, copies int, n int64) (stepResult, error) {
	var procs []*proc
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	for i := range copies {
		p, err := startEbb(bin, fmt.Sprintf("delivery copy %d", i), "serve", "delivery", "--nats", env.url(), "--log-level", "error")
		if err != nil {
			return stepResult{}, err
		}
		procs = append(procs, p)
	}
	if err := waitPulling(ctx, env, copies); err != nil {
		return stepResult{}, err
	}
	hook.reset()
	if _, _, _, err := env.runSync(ctx, "bench", 20*time.Minute); err != nil {
		return stepResult{}, err
	}
	if got := hook.records.Load(); got != n {
		return stepResult{}, fmt.Errorf("the sink got %d records, want %d", got, n)
	}
	span := hook.span()
	// The span runs from the first batch's arrival to the last's: count
	// one request less, and add one request time so one batch is not 0 s.
	span += scaleLatency
	return stepResult{
		rowsPerSec:  float64(n) / span.Seconds(),
		acceptedRPS: float64(hook.requests.Load()) / span.Seconds(),
		accepted:    hook.requests.Load(),
		throttled:   hook.throttled.Load(),
		maxInFlight: hook.maxFlight.Load(),
		span:        span,
	}, nil
}

// waitPulling waits until every partition's consumer has a pull request
// waiting from each delivery copy.
func waitPulling(ctx context.Context, env *natsEnv, copies int) error {
	deadline := time.Now().Add(time.Minute)
	for {
		ready := true
		for p := range scalePartition {
			cons, err := env.plane.JS.Consumer(ctx, bus.StreamDeliver, fmt.Sprintf("deliver_bench_hook_%d", p))
			if err != nil {
				ready = false
				break
			}
			info, err := cons.Info(ctx)
			if err != nil || info.NumWaiting < copies {
				ready = false
				break
			}
		}
		if ready {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d delivery copies did not all subscribe within a minute", copies)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
