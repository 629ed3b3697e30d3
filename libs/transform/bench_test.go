package transform

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/dop251/goja"
)

const benchBatch = 100

func benchRecord() map[string]any {
	return map[string]any{
		"id": json.Number("42"), "email": "user42@example.com", "name": "Customer 42 alpha bravo",
		"amount": json.Number("1234.50"), "updated_at": "2024-03-01T12:34:56Z",
	}
}

// BenchmarkTransformEvent is records/s of a small transformEvent on one
// runtime (one core), input conversion and export included.
func BenchmarkTransformEvent(b *testing.B) {
	tr, err := New("bench.js", `function transformEvent(r, metadata) {
  r.email = r.email.toLowerCase();
  r.source = "warehouse";
  return r;
}`, Options{Runtimes: 1})
	if err != nil {
		b.Fatal(err)
	}
	inputs := make([]Input, benchBatch)
	for i := range inputs {
		inputs[i] = Input{Data: benchRecord(), Meta: Metadata{Sync: "s", Run: "r", Op: "upsert", Key: map[string]any{"id": i}}}
	}
	ctx := context.Background()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		for _, o := range tr.Run(ctx, inputs) {
			if o.Err != nil {
				b.Fatal(o.Err)
			}
		}
		n += benchBatch
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkGojaEmptyCall is goja's raw rate of calling an empty function
// from Go: the ceiling BenchmarkTransformEvent is compared with.
func BenchmarkGojaEmptyCall(b *testing.B) {
	rt := goja.New()
	if _, err := rt.RunString(`function f() {}`); err != nil {
		b.Fatal(err)
	}
	f, _ := goja.AssertFunction(rt.Get("f"))
	n := 0
	for b.Loop() {
		if _, err := f(goja.Undefined()); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "calls/s")
}

// BenchmarkGojaRawRecord is the plain goja way to run the same small
// function on the same record (rt.ToValue of the Go map, Export of the
// result), without limits, metadata or exact numbers.
func BenchmarkGojaRawRecord(b *testing.B) {
	rt := goja.New()
	if _, err := rt.RunString(`function f(r) { r.email = r.email.toLowerCase(); r.source = "warehouse"; return r; }`); err != nil {
		b.Fatal(err)
	}
	f, _ := goja.AssertFunction(rt.Get("f"))
	n := 0
	for b.Loop() {
		res, err := f(goja.Undefined(), rt.ToValue(benchRecord()))
		if err != nil {
			b.Fatal(err)
		}
		_ = res.Export()
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}
