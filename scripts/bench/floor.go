package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// readFloor reads every row of the model with pgx, decoding each value
// and doing nothing else, and returns rows per second: the fastest any
// first load can go before it sends anything.
func readFloor(ctx context.Context, ds *dataset, n int64) (float64, error) {
	start := time.Now()
	rows, err := ds.pool.Query(ctx, ds.modelSQL())
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var got int64
	for rows.Next() {
		if _, err := rows.Values(); err != nil {
			return 0, err
		}
		got++
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if got != n {
		return 0, fmt.Errorf("read floor: %d rows, want %d", got, n)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// goLoop is the first script a user would write: read the model with pgx,
// build webhook batches of e2eBatch records as JSON, and POST them one at
// a time. It returns rows per second.
func goLoop(ctx context.Context, ds *dataset, hook *sink, n int64) (float64, error) {
	hook.reset()
	client := &http.Client{}
	start := time.Now()
	rows, err := ds.pool.Query(ctx, ds.modelSQL())
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	fields := rows.FieldDescriptions()
	recs := make([]map[string]any, 0, e2eBatch)
	batch := 0
	flush := func() error {
		if len(recs) == 0 {
			return nil
		}
		body, err := json.Marshal(map[string]any{"sync": "bench", "run_id": "loop", "batch_id": fmt.Sprintf("loop/%d", batch), "records": recs})
		if err != nil {
			return err
		}
		batch++
		recs = recs[:0]
		return post(ctx, client, hook.url, body, fmt.Sprintf("loop/%d", batch))
	}
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return 0, err
		}
		data := make(map[string]any, len(vals))
		for i, v := range vals {
			data[fields[i].Name] = v
		}
		recs = append(recs, map[string]any{"op": "upsert", "key": map[string]any{"id": data["id"]}, "data": data})
		if len(recs) == e2eBatch {
			if err := flush(); err != nil {
				return 0, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if err := flush(); err != nil {
		return 0, err
	}
	if got := hook.records.Load(); got != n {
		return 0, fmt.Errorf("go loop: the sink got %d records, want %d", got, n)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
