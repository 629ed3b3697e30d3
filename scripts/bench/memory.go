package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/ebb-etl/ebb/libs/config"
)

// memoryLimitMB is the first memory issue's ceiling for the single-process
// mode; throughputLimitMB is the throughput issue's, at both sizes.
const (
	memoryLimitMB     = 300
	throughputLimitMB = 200
)

// memRunTimeout bounds one sync of the memory scenario, so a run that
// stalls still leaves its peak RSS in the table, marked as unfinished.
const memRunTimeout = 8 * time.Minute

// unfinished is a sync that did not end within memRunTimeout.
type unfinished struct{ got, want int64 }

func (u *unfinished) Error() string {
	return fmt.Sprintf("run did not finish within %s (%d of %d records at the sink)", memRunTimeout, u.got, u.want)
}

// benchMemory measures the peak RSS of `ebb dev` (every service and an
// embedded NATS in one process) while it syncs n changed rows, and again
// with o.memFactor times n, configured and triggered through the CLI as a
// user would. Then, at n, the peak RSS of each service run alone as its own
// `ebb serve` process against the benchmark's NATS.
func benchMemory(ctx context.Context, o options, n int64) ([]Row, []string, error) {
	smallMem, smallTook, err := devPeakRSS(ctx, o.ebbBin, n)
	small := smallMem.peak
	var smallStall *unfinished
	if errors.As(err, &smallStall) {
		err = nil
	}
	if err != nil {
		return nil, nil, err
	}
	large := n * o.memFactor
	bigMem, bigTook, err := devPeakRSS(ctx, o.ebbBin, large)
	big := bigMem.peak
	var bigStall *unfinished
	if errors.As(err, &bigStall) {
		err = nil
	}
	if err != nil {
		return nil, nil, err
	}
	rowSmall := Row{Scenario: "memory", Measure: "peak RSS, ebb dev (single process)", Size: n,
		Ebb: Figure{small, "MB"}, Baseline: Figure{memoryLimitMB, "MB"}, Ratio: ratio(small, memoryLimitMB), Target: "< 300 MB"}
	rowSmall.check(small < memoryLimitMB && smallStall == nil, "%.0f MB", small)
	if smallStall != nil {
		rowSmall.Reason = smallStall.Error()
	}
	rowLarge := Row{Scenario: "memory", Measure: fmt.Sprintf("peak RSS at %dx rows vs at 1x", o.memFactor), Size: large,
		Ebb: Figure{big, "MB"}, Baseline: Figure{small, "MB"}, Ratio: ratio(big, small), Target: "< 300 MB, <= 1.2x"}
	switch {
	case bigStall != nil:
		rowLarge.check(false, "%s", bigStall.Error())
	case big >= memoryLimitMB:
		rowLarge.check(false, "%.0f MB", big)
	default:
		rowLarge.check(rowLarge.Ratio <= 1.2, "grows %.2fx with the table", rowLarge.Ratio)
	}
	peak := max(small, big)
	rowBoth := Row{Scenario: "memory", Measure: fmt.Sprintf("peak RSS of ebb dev, the larger of %s and %s rows", thousands(float64(n)), thousands(float64(large))),
		Size: large, Ebb: Figure{peak, "MB"}, Baseline: Figure{throughputLimitMB, "MB"}, Ratio: ratio(peak, throughputLimitMB),
		Target: "<= 200 MB at both"}
	rowBoth.check(peak <= throughputLimitMB, "%.0f MB", peak)
	rows := []Row{rowSmall, rowLarge, rowBoth}
	notes := []string{fmt.Sprintf("memory: ebb dev synced %d rows in %s and %d rows in %s (run through the CLI, as a process)",
		n, smallTook.Round(time.Millisecond), large, bigTook.Round(time.Millisecond)),
		fmt.Sprintf("memory: of the peak RSS, the process's own (anonymous) memory peaked at %.0f MB at %d rows and %.0f MB at %d; "+
			"idle after start, ebb dev holds %.0f MB, %.0f MB of it its binary's pages (file-backed, shared with the page cache)",
			smallMem.anon, n, bigMem.anon, large, smallMem.idle, smallMem.idle-smallMem.idleAnon)}

	per, err := servicePeakRSS(ctx, o.ebbBin, n)
	if err != nil {
		rows = append(rows, notMeasured("memory", "peak RSS, each service alone", n, "< 300 MB", err.Error()))
		return rows, notes, nil
	}
	for _, svc := range pipelineServices {
		r := Row{Scenario: "memory", Measure: "peak RSS, ebb serve " + svc + " alone", Size: n,
			Ebb: Figure{per[svc], "MB"}, Baseline: Figure{memoryLimitMB, "MB"}, Ratio: ratio(per[svc], memoryLimitMB), Target: "< 300 MB"}
		r.check(per[svc] < memoryLimitMB, "%.0f MB", per[svc])
		rows = append(rows, r)
	}
	return rows, notes, nil
}

// devMemory is what devPeakRSS measures of `ebb dev`, in MB.
type devMemory struct {
	peak           float64 // VmHWM: the peak resident set, binary pages included
	anon           float64 // the peak of RssAnon sampled
	idle, idleAnon float64 // VmRSS and RssAnon once it listens, before any sync
}

// devPeakRSS loads n rows, starts `ebb dev`, applies a config with
// `ebb apply`, runs the sync with `ebb sync run --wait` and returns the
// process's memory.
func devPeakRSS(ctx context.Context, bin string, n int64) (devMemory, time.Duration, error) {
	var mem devMemory
	ds, err := newDataset(ctx, "memory")
	if err != nil {
		return mem, 0, err
	}
	defer ds.drop()
	if err := ds.load(ctx, n); err != nil {
		return mem, 0, err
	}
	hook, err := startSink(sinkOptions{})
	if err != nil {
		return mem, 0, err
	}
	defer hook.close()
	dir, err := os.MkdirTemp("", "ebb-bench-dev-")
	if err != nil {
		return mem, 0, err
	}
	defer os.RemoveAll(dir)
	natsPort, err := freePort()
	if err != nil {
		return mem, 0, err
	}
	adminPort, err := freePort()
	if err != nil {
		return mem, 0, err
	}
	admin := "127.0.0.1:" + strconv.Itoa(adminPort)
	p, err := startEbb(bin, "ebb dev", "dev", "--data", filepath.Join(dir, "data"), "--nats-port", strconv.Itoa(natsPort),
		"--listen", admin, "--log-level", "warn")
	if err != nil {
		return mem, 0, err
	}
	defer p.stop()
	if err := waitDial(ctx, p, admin, time.Minute); err != nil {
		return mem, 0, err
	}
	if kb, err := p.statusKB("VmRSS:"); err == nil {
		mem.idle = float64(kb) / 1024
	}
	if kb, err := p.statusKB("RssAnon:"); err == nil {
		mem.idleAnon = float64(kb) / 1024
	}
	file := filepath.Join(dir, "ebb.yaml")
	if err := os.WriteFile(file, []byte(benchYAML(ds.modelSQL(), hook.url)), 0o600); err != nil {
		return mem, 0, err
	}
	if _, err := ebbCLI(ctx, bin, admin, "apply", "-f", file); err != nil {
		return mem, 0, err
	}
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, memRunTimeout)
	_, runErr := ebbCLI(rctx, bin, admin, "sync", "run", "bench", "--wait")
	stalled := rctx.Err() != nil && ctx.Err() == nil
	cancel()
	took := time.Since(start)
	rss, err := p.peakRSS()
	if err != nil {
		return mem, 0, err
	}
	mem.peak, mem.anon = rss, p.peakAnon()
	got := hook.records.Load()
	switch {
	case stalled:
		return mem, took, &unfinished{got: got, want: n}
	case runErr != nil:
		return mem, 0, runErr
	case got != n:
		return mem, 0, fmt.Errorf("the sink got %d records, want %d", got, n)
	}
	return mem, took, nil
}

// benchYAML is pipelineConfig as a user would write it.
func benchYAML(modelSQL, hookURL string) string {
	return fmt.Sprintf(`sources:
  - name: bench_pg
    type: postgres
    config: {dsn: %q}
destinations:
  - name: bench_hook
    type: webhook
    config: {url: %q, batch_size: 500}
syncs:
  - name: bench
    source: bench_pg
    destination: bench_hook
    model: {sql: %q, primary_key: [id]}
    mode: upsert
    schedule: manual
`, postgresDSN(), hookURL, modelSQL)
}

// servicePeakRSS runs each pipeline service as its own `ebb serve`
// process against an embedded NATS in the benchmark, syncs n rows, and
// returns each process's peak RSS in MB.
func servicePeakRSS(ctx context.Context, bin string, n int64) (map[string]float64, error) {
	ds, err := newDataset(ctx, "memsvc")
	if err != nil {
		return nil, err
	}
	defer ds.drop()
	if err := ds.load(ctx, n); err != nil {
		return nil, err
	}
	hook, err := startSink(sinkOptions{})
	if err != nil {
		return nil, err
	}
	defer hook.close()
	env, err := startNATS(ctx)
	if err != nil {
		return nil, err
	}
	defer env.stop()
	procs := map[string]*proc{}
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	for _, svc := range pipelineServices {
		p, err := startEbb(bin, "ebb serve "+svc, "serve", svc, "--nats", env.url(), "--log-level", "warn")
		if err != nil {
			return nil, err
		}
		procs[svc] = p
	}
	if err := env.apply(ctx, pipelineConfig(ds.modelSQL(), hook.url, config.ModeUpsert, nil)); err != nil {
		return nil, err
	}
	if _, _, _, err := env.runSync(ctx, "bench", 30*time.Minute); err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for svc, p := range procs {
		if out[svc], err = p.peakRSS(); err != nil {
			return nil, err
		}
	}
	return out, nil
}
