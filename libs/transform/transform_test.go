package transform

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func newT(t *testing.T, code string, opts Options) *Transformation {
	t.Helper()
	tr, err := New("t.js", code, opts)
	require.NoError(t, err)
	return tr
}

func in(data map[string]any, key any) Input {
	return Input{Data: data, Meta: Metadata{Sync: "s", Run: "r1", Op: "upsert", Key: map[string]any{"id": key}}}
}

func TestDropFanOutAndNestedEdits(t *testing.T) {
	tr := newT(t, `
function transformEvent(record, metadata) {
  if (record.plan === "free") return null;            // drop
  if (record.plan === "team") {                        // fan out, one per seat
    return record.seats.map(s => ({user: s, account: metadata.key.id}));
  }
  record.traits.name = record.traits.name.toUpperCase();
  record.traits.address = {city: "Paris"};
  delete record.plan;
  return record;
}`, Options{})
	out := tr.Run(context.Background(), []Input{
		in(map[string]any{"plan": "free"}, 1),
		in(map[string]any{"plan": "team", "seats": []any{"a", "b", "c"}}, 2),
		in(map[string]any{"plan": "pro", "traits": map[string]any{"name": "ada"}}, 3),
	})
	require.Len(t, out, 3)
	require.NoError(t, out[0].Err)
	require.Empty(t, out[0].Records, "dropped")
	require.NoError(t, out[1].Err)
	require.Equal(t, []map[string]any{
		{"user": "a", "account": int64(2)}, {"user": "b", "account": int64(2)}, {"user": "c", "account": int64(2)},
	}, out[1].Records, "fanned out in order")
	require.NoError(t, out[2].Err)
	require.Equal(t, []map[string]any{{"traits": map[string]any{"name": "ADA", "address": map[string]any{"city": "Paris"}}}}, out[2].Records)
}

func TestThrowFailsOnlyItsRecordWithMessageAndLine(t *testing.T) {
	tr := newT(t, `function transformEvent(r) {
  if (r.bad) {
    throw new Error("bad record " + r.id);
  }
  if (r.npe) return r.missing.field;
  return r;
}`, Options{})
	out := tr.Run(context.Background(), []Input{
		in(map[string]any{"id": json.Number("1")}, 1),
		in(map[string]any{"id": json.Number("2"), "bad": true}, 2),
		in(map[string]any{"id": json.Number("3"), "npe": true}, 3),
		in(map[string]any{"id": json.Number("4")}, 4),
	})
	require.NoError(t, out[0].Err)
	require.EqualError(t, out[1].Err, "Error: bad record 2 at line 3, column 11")
	require.ErrorContains(t, out[2].Err, "TypeError")
	require.ErrorContains(t, out[2].Err, "at line 5")
	require.NoError(t, out[3].Err)
	require.Equal(t, []map[string]any{{"id": int64(4)}}, out[3].Records)
}

func TestInfiniteLoopIsInterruptedAndRuntimeReused(t *testing.T) {
	tr := newT(t, `
let calls = 0;
function transformEvent(r) {
  calls++;
  if (r.spin) { while (true) {} }
  r.calls = calls;
  return r;
}`, Options{Timeout: 100 * time.Millisecond, Runtimes: 1})
	start := time.Now()
	out := tr.Run(context.Background(), []Input{
		in(map[string]any{"n": 1}, 1),
		in(map[string]any{"spin": true}, 2),
		in(map[string]any{"n": 3}, 3),
	})
	require.Less(t, time.Since(start), 5*time.Second)
	require.NoError(t, out[0].Err)
	require.ErrorContains(t, out[1].Err, "time limit exceeded")
	require.ErrorContains(t, out[1].Err, "at line 5")
	require.ErrorContains(t, out[2].Err, "time limit")

	// The same runtime (the pool has one) runs the next batch from a clean
	// interrupt state, with its globals intact.
	for range 3 {
		out = tr.Run(context.Background(), []Input{in(map[string]any{"n": 4}, 4)})
		require.NoError(t, out[0].Err)
	}
	// 1, the spin, then three: the record after the spin never ran.
	require.Equal(t, int64(5), out[0].Records[0]["calls"])
}

func TestRunawayAllocationIsStopped(t *testing.T) {
	tr := newT(t, `function transformEvent(r) {
  if (r.mode === "loop") { const a = []; while (true) a.push({pad: "x".repeat(1000)}); }
  if (r.mode === "repeat") return {s: "x".repeat(1e10)};
  if (r.mode === "big") return {s: "x".repeat(2000)};
  return r;
}`, Options{Timeout: 200 * time.Millisecond, MaxOutputBytes: 1000, Runtimes: 1})
	for mode, want := range map[string]string{
		"loop":   "time limit exceeded",
		"repeat": "RangeError: String.prototype.repeat would make 10000000000 characters",
		"big":    "RangeError", // repeat over the cap
	} {
		out := tr.Run(context.Background(), []Input{in(map[string]any{"mode": mode}, 1)})
		require.ErrorContains(t, out[0].Err, want, mode)
	}
	// Output built piece by piece is capped when exported.
	tr = newT(t, `function transformEvent(r) { let s = ""; for (let i = 0; i < 100; i++) s += "0123456789"; return {s}; }`,
		Options{MaxOutputBytes: 500})
	out := tr.Run(context.Background(), []Input{in(map[string]any{}, 1)})
	require.ErrorContains(t, out[0].Err, "over the limit of 500 bytes")
}

func TestSandboxRefusesModulesNetworkAndProcess(t *testing.T) {
	tr := newT(t, `function transformEvent(r) {
  switch (r.try) {
  case "require": return require("fs");
  case "fetch": return fetch("http://example.com");
  case "xhr": return new XMLHttpRequest();
  case "process": return process.env;
  case "eval": return {g: eval("typeof require + typeof fetch + typeof globalThis.process"),
                       f: new Function("return typeof XMLHttpRequest")()};
  }
}`, Options{})
	for _, what := range []string{"require", "fetch", "xhr", "process"} {
		out := tr.Run(context.Background(), []Input{in(map[string]any{"try": what}, 1)})
		require.ErrorContains(t, out[0].Err, "ReferenceError", what)
	}
	// eval and the Function constructor compile code in the same sandbox:
	// they reach nothing more.
	out := tr.Run(context.Background(), []Input{in(map[string]any{"try": "eval"}, 1)})
	require.NoError(t, out[0].Err)
	require.Equal(t, []map[string]any{{"g": "undefinedundefinedundefined", "f": "undefined"}}, out[0].Records)
}

func TestMetadataAndLog(t *testing.T) {
	tr := newT(t, `function transformEvent(r, metadata) {
  const m = metadata(r);
  log("op", m.op, "key", m.key);
  log({sync: metadata.sync, run: metadata.run});
  return {op: metadata.op, id: m.key.id};
}`, Options{})
	out := tr.Run(context.Background(), []Input{in(map[string]any{}, "k1"), in(map[string]any{}, "k2")})
	require.NoError(t, out[1].Err)
	require.Equal(t, []string{`op upsert key {"id":"k2"}`, `{"sync":"s","run":"r1"}`}, out[1].Logs)
	require.Equal(t, []map[string]any{{"op": "upsert", "id": "k2"}}, out[1].Records)
}

func TestTransformBatch(t *testing.T) {
	tr := newT(t, `function transformBatch(records, metadata) {
  return records
    .filter(r => !r.skip)
    .flatMap(r => r.twice ? [{...r, copy: 1}, {...r, copy: 2}] : [{...r, key: metadata(r).key.id}]);
}`, Options{})
	out := tr.Run(context.Background(), []Input{
		in(map[string]any{"skip": true}, 1),
		in(map[string]any{"twice": true}, 2),
		in(map[string]any{"a": "x"}, 3),
	})
	require.NoError(t, out[0].Err)
	require.Empty(t, out[0].Records)
	require.Equal(t, []map[string]any{{"twice": true, "copy": int64(1)}, {"twice": true, "copy": int64(2)}}, out[1].Records)
	require.Equal(t, []map[string]any{{"a": "x", "key": int64(3)}}, out[2].Records)

	tr = newT(t, `function transformBatch(records) { return records.map(r => JSON.parse(JSON.stringify(r))); }`, Options{})
	out = tr.Run(context.Background(), []Input{in(map[string]any{}, 1), in(map[string]any{}, 2)})
	require.ErrorContains(t, out[0].Err, "made from none of its inputs")

	tr = newT(t, `function transformBatch(records) { throw new TypeError("nope"); }`, Options{})
	out = tr.Run(context.Background(), []Input{in(map[string]any{}, 1), in(map[string]any{}, 2)})
	require.EqualError(t, out[1].Err, "TypeError: nope at line 1, column 42")
}

func TestNumbersStayExact(t *testing.T) {
	tr := newT(t, `function transformEvent(r) { r.doubled = r.small * 2; r.type = typeof r.huge; return r; }`, Options{})
	out := tr.Run(context.Background(), []Input{in(map[string]any{
		"small": json.Number("1234.50"), "huge": json.Number("123456789012345678901234.5"),
		"int": json.Number("9007199254740993"), "dec": json.Number("0.1"),
	}, 1)})
	require.NoError(t, out[0].Err)
	data, err := json.Marshal(out[0].Records[0])
	require.NoError(t, err)
	require.JSONEq(t, `{"small":1234.5,"doubled":2469,"huge":123456789012345678901234.5,"type":"string",
		"int":9007199254740993,"dec":0.1}`, string(data))
}

func TestSyntaxErrorNamesLineAndColumn(t *testing.T) {
	_, err := New("t.js", "function transformEvent(r) {\n  return r +;\n}", Options{})
	var se *SyntaxError
	require.ErrorAs(t, err, &se)
	require.Equal(t, 2, se.Line)
	require.Equal(t, 13, se.Column)
	require.Contains(t, err.Error(), "t.js:2:13: SyntaxError")

	_, err = New("t.js", "function other() {}", Options{})
	require.ErrorContains(t, err, "defines neither transformEvent")

	_, err = New("t.js", "while (true) {}\nfunction transformEvent(r) { return r }", Options{Timeout: 50 * time.Millisecond})
	require.ErrorContains(t, err, "time limit exceeded")
}

func TestConcurrentBatchesAndCancel(t *testing.T) {
	tr := newT(t, `function transformEvent(r) { r.n = r.n + 1; return r; }`, Options{Runtimes: 2})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				out := tr.Run(context.Background(), []Input{in(map[string]any{"n": json.Number(fmt.Sprint(i))}, g)})
				if out[0].Err != nil || out[0].Records[0]["n"] != int64(i+1) {
					t.Errorf("batch %d/%d: %+v", g, i, out[0])
				}
			}
		})
	}
	wg.Wait()

	spin := newT(t, `function transformEvent(r) { while (true) {} }`, Options{Timeout: time.Minute, Runtimes: 1})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	out := spin.Run(ctx, []Input{in(map[string]any{}, 1)})
	require.ErrorContains(t, out[0].Err, "context canceled")
}
