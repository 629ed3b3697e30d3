package main

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
	"time"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/mapper"
)

// transformMapping is a typical CRM mapping: nested paths and a constant.
var transformMapping = []config.Mapping{
	{From: "id", To: "user_id"},
	{From: "email", To: "traits.email"},
	{From: "name", To: "traits.name"},
	{From: "amount", To: "traits.mrr"},
	{From: "updated_at", To: "traits.updated_at"},
	{Const: "warehouse", To: "context.source"},
}

// plainCopy is the baseline: the same output built by hand in Go.
func plainCopy(row map[string]any) map[string]any {
	return map[string]any{
		"user_id": row["id"],
		"traits": map[string]any{
			"email": row["email"], "name": row["name"], "mrr": row["amount"], "updated_at": row["updated_at"],
		},
		"context": map[string]any{"source": "warehouse"},
	}
}

// benchTransform maps n records on one core (GOMAXPROCS 1, so the garbage
// collector's work counts too) with libs/mapper and with plainCopy.
func benchTransform(ctx context.Context, n int64) ([]Row, []string, error) {
	m, err := mapper.New(transformMapping)
	if err != nil {
		return nil, nil, err
	}
	// Rows as a source yields them (see source.Source): int64, string,
	// json.Number, timestamp strings.
	rows := make([]map[string]any, 10_000)
	g := newGenerator(1, int64(len(rows)), 0)
	for i := range rows {
		g.Next()
		r := g.row()
		r["amount"] = json.Number(r["amount"].(string))
		rows[i] = r
	}
	got, err := m.Map(rows[0])
	if err != nil {
		return nil, nil, err
	}
	if !reflect.DeepEqual(got, plainCopy(rows[0])) {
		return nil, nil, fmt.Errorf("mapper and baseline disagree: %v vs %v", got, plainCopy(rows[0]))
	}

	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	var sinkHole map[string]any
	measure := func(fn func(map[string]any) (map[string]any, error)) (float64, error) {
		best := 0.0
		for range 3 {
			runtime.GC()
			start := time.Now()
			for i := range n {
				out, err := fn(rows[i%int64(len(rows))])
				if err != nil {
					return 0, err
				}
				sinkHole = out
			}
			best = max(best, float64(n)/time.Since(start).Seconds())
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
		}
		return best, nil
	}
	ebb, err := measure(m.Map)
	if err != nil {
		return nil, nil, err
	}
	base, err := measure(func(r map[string]any) (map[string]any, error) { return plainCopy(r), nil })
	if err != nil {
		return nil, nil, err
	}
	_ = sinkHole
	row := Row{Scenario: "transform", Measure: "mapping, records/s on 1 core", Size: n,
		Ebb: Figure{ebb, "rec/s"}, Baseline: Figure{base, "rec/s"}, Ratio: ratio(ebb, base), Target: ">= 500k rec/s/core"}
	row.check(ebb >= 500_000, "%s rec/s", thousands(ebb))
	js := Row{Scenario: "transform", Measure: "mapping + small JS function", Size: n, Target: "none yet",
		Status: "not built yet", Reason: "JS transformations do not exist yet"}
	return []Row{row, js}, []string{"transform: 6-entry mapping (nested paths and a constant), best of 3, GOMAXPROCS=1 while measuring"}, nil
}
