package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/ebb-etl/ebb/libs/config"
)

// e2eBatch is the webhook batch size of the end-to-end scenarios.
const e2eBatch = 500

// benchE2E sends n changed rows (the first run of a sync over an n-row
// table: every row is an add) from Postgres through every service of an
// in-process node into the sink, and compares the rate with the sink's
// capacity (8 Go clients posting the same number of pre-serialised
// batches as fast as they can), the full-row read floor (pgx reading the
// model, no processing) and a sequential Go loop (pgx -> JSON -> POST, one
// batch in flight).
func benchE2E(ctx context.Context, n int64) ([]Row, []string, error) {
	ds, err := loadDataset(ctx, "e2e", n)
	if err != nil {
		return nil, nil, err
	}
	defer ds.drop()
	hook, err := startSink(sinkOptions{})
	if err != nil {
		return nil, nil, err
	}
	defer hook.close()

	capacity, err := sinkCapacity(ctx, hook, n)
	if err != nil {
		return nil, nil, err
	}
	floor, err := readFloor(ctx, ds, n)
	if err != nil {
		return nil, nil, err
	}
	loop, err := goLoop(ctx, ds, hook, n)
	if err != nil {
		return nil, nil, err
	}

	env, err := startPipeline(ctx, pipelineServices)
	if err != nil {
		return nil, nil, err
	}
	defer env.stop()
	if err := env.apply(ctx, pipelineConfig(ds.modelSQL(), hook.url, config.ModeUpsert, nil)); err != nil {
		return nil, nil, err
	}
	hook.reset()
	r, elapsed, ph, err := env.runSync(ctx, "bench", 30*time.Minute)
	if err != nil {
		return nil, nil, err
	}
	if got := hook.records.Load(); got != n || r.Adds.Delivered != n {
		return nil, nil, fmt.Errorf("run delivered %d records, the sink got %d, want %d", r.Adds.Delivered, got, n)
	}
	rate := float64(n) / elapsed.Seconds()
	row := Row{Scenario: "e2e", Measure: "rows/s, Postgres -> all services -> sink", Size: n,
		Ebb: Figure{rate, "rows/s"}, Baseline: Figure{capacity, "rows/s"}, Target: ">= 100k rows/s and >= 0.5x sink"}
	row.Ratio = ratio(rate, capacity)
	switch {
	case rate < 100_000 && row.Ratio < 0.5:
		row.check(false, "%s rows/s < 100k and %.2fx < 0.5x the sink", thousands(rate), row.Ratio)
	case rate < 100_000:
		row.check(false, "%s rows/s < 100k", thousands(rate))
	default:
		row.check(row.Ratio >= 0.5, "%.2fx < 0.5x the sink", row.Ratio)
	}
	vsFloor := Row{Scenario: "e2e", Measure: "first load vs the full-row read floor (pgx, no processing)", Size: n,
		Ebb: Figure{rate, "rows/s"}, Baseline: Figure{floor, "rows/s"}, Ratio: ratio(rate, floor), Target: ">= 0.5x"}
	vsFloor.check(vsFloor.Ratio >= 0.5, "%.2fx", vsFloor.Ratio)
	vsLoop := Row{Scenario: "e2e", Measure: "first load vs a sequential Go loop (pgx -> JSON -> POST, one batch in flight)", Size: n,
		Ebb: Figure{rate, "rows/s"}, Baseline: Figure{loop, "rows/s"}, Ratio: ratio(rate, loop), Target: ">= 1.5x"}
	vsLoop.check(vsLoop.Ratio >= 1.5, "%.2fx", vsLoop.Ratio)
	notes := []string{fmt.Sprintf("e2e: run took %s from trigger to committed (%s); %s between the first and last batch at the sink; %d requests for %d records; sink capacity measured with 8 concurrent posters",
		elapsed.Round(time.Millisecond), ph, hook.span().Round(time.Millisecond), hook.requests.Load(), n)}
	return []Row{row, vsFloor, vsLoop}, notes, nil
}

// sinkCapacity posts n records in pre-serialised batches of e2eBatch to the
// sink, with 8 requests in flight, and returns records per second. The
// bodies are built before the clock starts, from the same generated rows
// the table holds; 64 distinct bodies are cycled with distinct idempotency
// keys, so the client's memory stays small at any n.
func sinkCapacity(ctx context.Context, hook *sink, n int64) (float64, error) {
	batches := (n + e2eBatch - 1) / e2eBatch
	bodies := make([][]byte, min(batches, 64))
	g := newGenerator(1, n, 0)
	for i := range bodies {
		recs := make([]map[string]any, 0, e2eBatch)
		for j := 0; j < e2eBatch && g.Next(); j++ {
			row := g.row()
			recs = append(recs, map[string]any{"op": "upsert", "key": map[string]any{"id": row["id"]}, "data": row})
		}
		body, err := json.Marshal(map[string]any{"sync": "bench", "run_id": "baseline", "batch_id": fmt.Sprintf("baseline/%d", i), "records": recs})
		if err != nil {
			return 0, err
		}
		bodies[i] = body
	}
	hook.reset()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	next := make(chan int64)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	start := time.Now()
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := post(ctx, client, hook.url, bodies[i%int64(len(bodies))], fmt.Sprintf("baseline/%d", i)); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range batches {
		next <- i
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(hook.records.Load()) / elapsed.Seconds(), nil
}

func post(ctx context.Context, client *http.Client, url string, body []byte, key string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("sink answered %s", resp.Status)
	}
	return nil
}
