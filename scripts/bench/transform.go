package main

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/dop251/goja"
	"reflect"
	"runtime"
	"time"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/mapper"
	"github.com/ebb-etl/ebb/libs/transform"
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
	jsRows, err := benchJS(ctx, rows, m, n/4)
	if err != nil {
		return nil, nil, err
	}
	return append([]Row{row}, jsRows...), []string{
		"transform: 6-entry mapping (nested paths and a constant), best of 3, GOMAXPROCS=1 while measuring",
		"transform: JS is a 3-line transformEvent on the mapped record, batches of 100, one runtime",
	}, nil
}

// benchJS measures the mapping followed by a small user transformEvent,
// against goja's raw rate of calling an empty function (the issue's
// baseline) and goja's plain convert-call-export of the same function.
func benchJS(ctx context.Context, rows []map[string]any, m *mapper.Mapper, n int64) ([]Row, error) {
	tr, err := transform.New("bench.js", `function transformEvent(r, metadata) {
  r.traits.email = String(r.traits.email).toLowerCase();
  r.context.op = metadata.op;
  return r;
}`, transform.Options{Runtimes: 1})
	if err != nil {
		return nil, err
	}
	const batch = 100
	inputs := make([]transform.Input, batch)
	best := 0.0
	for range 3 {
		start := time.Now()
		for done := int64(0); done < n; done += batch {
			for i := range inputs {
				mapped, err := m.Map(rows[(done+int64(i))%int64(len(rows))])
				if err != nil {
					return nil, err
				}
				inputs[i] = transform.Input{Data: mapped, Meta: transform.Metadata{Sync: "s", Run: "r", Op: "upsert"}}
			}
			for _, o := range tr.Run(ctx, inputs) {
				if o.Err != nil {
					return nil, o.Err
				}
			}
		}
		best = max(best, float64(n)/time.Since(start).Seconds())
	}
	empty, err := gojaEmptyCalls(n)
	if err != nil {
		return nil, err
	}
	row := Row{Scenario: "transform", Measure: "mapping + small JS function vs goja empty call", Size: n,
		Ebb: Figure{best, "rec/s"}, Baseline: Figure{empty, "calls/s"}, Ratio: ratio(best, empty), Target: ">= 0.5x empty call"}
	row.check(best/empty >= 0.5, "%.2fx: each record is converted into JS and exported back, which an empty call skips", best/empty)
	return []Row{row}, nil
}

// gojaEmptyCalls is goja's rate of calling an empty function from Go.
func gojaEmptyCalls(n int64) (float64, error) {
	rt := goja.New()
	if _, err := rt.RunString(`function f() {}`); err != nil {
		return 0, err
	}
	f, _ := goja.AssertFunction(rt.Get("f"))
	best := 0.0
	for range 3 {
		start := time.Now()
		for range n {
			if _, err := f(goja.Undefined()); err != nil {
				return 0, err
			}
		}
		best = max(best, float64(n)/time.Since(start).Seconds())
	}
	return best, nil
}
