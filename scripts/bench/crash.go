package main

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/ebb-etl/ebb/libs/config"
)

// Crash settings: a sink slow enough that delivery is the bottleneck, so
// the killed copy holds every batch its lanes' ack windows allow and
// nothing moves until they are redelivered; and the time the run must
// move again within.
const (
	crashLatency = 200 * time.Millisecond
	crashTarget  = 15 * time.Second
)

// benchCrash measures what losing the delivery process costs: during a
// run, its one `ebb serve delivery` process is killed with SIGKILL and
// started again, and the time from the restart to the next batch the sink
// accepts is measured (target: within 15 s). The baseline is the same
// with a graceful stop (SIGTERM): the restart's own cost, which a kill
// adds the wait for its unacknowledged batches to.
func benchCrash(ctx context.Context, o options, n int64) ([]Row, []string, error) {
	ds, err := loadDataset(ctx, "crash", n)
	if err != nil {
		return nil, nil, err
	}
	defer ds.drop()
	hook, err := startSink(sinkOptions{latency: crashLatency})
	if err != nil {
		return nil, nil, err
	}
	defer hook.close()
	env, err := startPipeline(ctx, []string{"scheduler", "differ", "extractor", "transformer", "reporting"})
	if err != nil {
		return nil, nil, err
	}
	defer env.stop()

	var notes []string
	moved := map[syscall.Signal]time.Duration{}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		// mode all: every run sends every row, so each signal gets a whole run.
		if err := env.apply(ctx, pipelineConfig(ds.modelSQL(), hook.url, config.ModeAll,
			map[string]any{"partitions": scalePartition})); err != nil {
			return nil, notes, err
		}
		d, note, err := restartMidRun(ctx, o.ebbBin, env.natsEnv, hook, sig, n)
		if err != nil {
			return nil, notes, fmt.Errorf("%s: %w", sig, err)
		}
		moved[sig], notes = d, append(notes, note)
	}
	kill, term := moved[syscall.SIGKILL], moved[syscall.SIGTERM]
	r := Row{Scenario: "crash", Measure: "kill -9 of delivery mid-run: restart to next delivery", Size: n,
		Ebb: Figure{kill.Seconds(), "s"}, Baseline: Figure{term.Seconds(), "s (SIGTERM)"}, Ratio: ratio(kill.Seconds(), term.Seconds()),
		Target: fmt.Sprintf("<= %s after the restart", crashTarget)}
	r.check(kill <= crashTarget, "%.1f s", kill.Seconds())
	return []Row{r}, notes, nil
}

// restartMidRun runs the sync with one delivery process, stops it with sig
// once a tenth of the rows arrived, starts it again, and returns how long
// after the restart the sink accepted a batch again. The run must then
// deliver every row.
func restartMidRun(ctx context.Context, bin string, env *natsEnv, hook *sink, sig syscall.Signal, n int64) (time.Duration, string, error) {
	start := func() (*proc, error) {
		p, err := startEbb(bin, "delivery", "serve", "delivery", "--nats", env.url(), "--log-level", "error")
		if err != nil {
			return nil, err
		}
		return p, waitPulling(ctx, env, 1)
	}
	p, err := start()
	if err != nil {
		return 0, "", err
	}
	hook.reset()
	r, err := env.trigger(ctx, "bench")
	if err != nil {
		p.stop()
		return 0, "", err
	}
	if err := waitFor(ctx, time.Minute, func() bool { return hook.records.Load() >= n/10 }); err != nil {
		p.stop()
		return 0, "", fmt.Errorf("waiting for a tenth of the rows: %w", err)
	}
	_ = p.cmd.Process.Signal(sig)
	<-p.done
	// A request the sink was answering when the process died still
	// counts when its answer is written: let those finish first.
	time.Sleep(3 * crashLatency)
	stopped := hook.requests.Load()
	restarted := time.Now()
	if p, err = start(); err != nil {
		return 0, "", err
	}
	defer p.stop()
	if err := waitFor(ctx, 2*time.Minute, func() bool { return hook.requests.Load() > stopped }); err != nil {
		return 0, "", fmt.Errorf("waiting for a batch after the restart: %w", err)
	}
	moved := time.Since(restarted)
	if _, err := env.wait(ctx, r, 10*time.Minute, nil); err != nil {
		return 0, "", err
	}
	if got := hook.records.Load(); got < n {
		return 0, "", fmt.Errorf("the sink got %d records of %d", got, n)
	}
	return moved, fmt.Sprintf("crash: %s of delivery after %d requests: the sink took a batch again %s after the restart; %d records in all (%d again)",
		sig, stopped, moved.Round(10*time.Millisecond), hook.records.Load(), hook.records.Load()-n), nil
}

// waitFor polls cond every 10 ms until it holds or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}
