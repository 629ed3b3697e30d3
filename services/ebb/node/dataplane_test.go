package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/capture"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/natstest"
	"github.com/ebb-etl/ebb/libs/plane"
	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/run"
	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
)

// This file tests the data plane's promises (issue "One slow destination,
// one huge row or one stray retry never stalls, reorders or loses
// anything"): isolation of slow destinations, size limits, fencing of
// stopped runs, one owner per phase, and the defects that broke them.

// itemsTable creates $S.<name>(id, note) with rows rows whose note has
// width characters.
func itemsTable(p *pg, name string, rows, width int) {
	p.exec(`CREATE TABLE $S.` + name + ` (id bigint PRIMARY KEY, note text)`)
	p.exec(`INSERT INTO $S.`+name+` SELECT i, rpad('n' || i, $2::int, 'x') FROM generate_series(1, $1::int) AS i`, rows, width)
}

// itemsSync is a sync of $S.<table> into dest.
func itemsSync(p *pg, name, table, dest string) config.Sync {
	return config.Sync{Name: name, Source: "wh", Destination: dest, Mode: config.ModeMirror, Engine: config.EngineLocal,
		Model: config.Model{SQL: "SELECT id, note FROM " + p.schema + "." + table, PrimaryKey: []string{"id"}}}
}

func whSource(p *pg) config.Source {
	return config.Source{Name: "wh", Type: "postgres", Config: map[string]any{"dsn": postgresDSN(), "snapshot_schema": p.schema}}
}

func hookDest(name, url string, cfg map[string]any) config.Destination {
	c := map[string]any{"url": url}
	for k, v := range cfg {
		c[k] = v
	}
	return config.Destination{Name: name, Type: "webhook", Config: c}
}

// startWhenFree starts a run of sync as soon as the sync has no active run.
func (e *env) startWhenFree(sync string, timeout time.Duration) *run.Run {
	e.t.Helper()
	var r *run.Run
	require.Eventually(e.t, func() bool {
		var err error
		r, err = run.Start(context.Background(), e.plane.Bus, e.plane.Runs, sync, "manual")
		if errors.Is(err, run.ErrActive) {
			return false
		}
		require.NoError(e.t, err)
		return true
	}, timeout, 20*time.Millisecond, "sync %s never became free to run", sync)
	return r
}

// A destination so slow that its backlog fills every buffer in front of it
// slows only its own syncs: another sync, started after it, finishes about
// as fast as it does alone. With one shared buffer (before), the slow
// sync's batches filled it and every transformer worker waited on them.
func TestSlowDestinationDoesNotStallOtherSyncs(t *testing.T) {
	p := newPG(t)
	itemsTable(p, "slow", 30000, 200) // ~7 MB of batches: more than the streams hold
	itemsTable(p, "fast", 3000, 50)
	slowHook, slowURL := sink(t)
	fastHook, fastURL := sink(t)
	limits := bus.DefaultLimits()
	limits.WorkMaxBytes, limits.SyncBuffer, limits.LaneBuffer = 4<<20, 4, 4
	e := startEnvOpts(t, envOptions{limits: limits})
	e.apply(config.File{
		Sources: []config.Source{whSource(p)},
		Destinations: []config.Destination{
			hookDest("slowhook", slowURL, map[string]any{"batch_size": 50, "partitions": 2, "ack_window": 1, "requests_per_second": 2}),
			hookDest("fasthook", fastURL, map[string]any{"batch_size": 100}),
		},
		Syncs: []config.Sync{
			itemsSync(p, "slow", "slow", "slowhook"),
			itemsSync(p, "fast_alone", "fast", "fasthook"),
			itemsSync(p, "fast_beside", "fast", "fasthook"),
		},
	})

	start := time.Now()
	alone := e.runSync("fast_alone")
	require.Equal(t, run.Succeeded, alone.State, alone.Error)
	aloneTook := time.Since(start)

	slow, err := run.Start(t.Context(), e.plane.Bus, e.plane.Runs, "slow", "manual")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return slowHook.Batches() >= 4 }, time.Minute, 50*time.Millisecond)
	// Let the slow sync's backlog fill its buffers.
	require.Eventually(t, func() bool {
		st, err := e.plane.JS.Stream(t.Context(), bus.StreamRecords)
		require.NoError(t, err)
		info, err := st.Info(t.Context(), jetstream.WithSubjectFilter(bus.Records("slow")))
		require.NoError(t, err)
		return info.State.Subjects[bus.Records("slow")] >= uint64(limits.SyncBuffer)
	}, time.Minute, 50*time.Millisecond, "the slow sync's buffer fills")

	start = time.Now()
	beside := e.runSync("fast_beside")
	require.Equal(t, run.Succeeded, beside.State, beside.Error)
	besideTook := time.Since(start)
	t.Logf("fast sync alone %s (%v), beside a stalled destination %s (%v): %.2fx", aloneTook.Round(time.Millisecond), alone.Durations(),
		besideTook.Round(time.Millisecond), beside.Durations(), besideTook.Seconds()/aloneTook.Seconds())
	// make bench's isolation scenario holds the 1.5x target on a quiet
	// machine; under -race and other tests, a looser bound still tells a
	// stall from a slowdown.
	require.Less(t, besideTook, 3*aloneTook+5*time.Second, "the slow destination held the other sync back")
	require.Equal(t, 3000, len(fastHook.State()))

	cur, err := e.plane.Runs.Get(t.Context(), "slow", slow.ID)
	require.NoError(t, err)
	require.Contains(t, []run.State{run.Extracting, run.Delivering}, cur.State, "the slow sync still goes on, at its pace")
}

// Batches are bounded by bytes, not only by count: 8,000 rows of 200 bytes
// in batches of 2,000 × 4 partitions (one 1.6 MB extracted batch before)
// are delivered, and so is a row holding 1 MiB alone. Before, a batch
// over the server's max payload was retried forever and its run hung.
func TestBatchesBoundedByBytes(t *testing.T) {
	p := newPG(t)
	itemsTable(p, "items", 8000, 200)
	p.exec(`INSERT INTO $S.items VALUES (8001, repeat('m', 1 << 20))`)
	hook, url := sink(t)
	e := startEnv(t)
	e.apply(config.File{
		Sources:      []config.Source{whSource(p)},
		Destinations: []config.Destination{hookDest("hook", url, map[string]any{"batch_size": 2000, "partitions": 4})},
		Syncs:        []config.Sync{itemsSync(p, "items", "items", "hook")},
	})
	r := e.runSync("items")
	require.Equal(t, run.Succeeded, r.State, r.Error)
	require.EqualValues(t, 8001, r.Adds.Delivered)
	state := hook.State()
	require.Len(t, state, 8001)
	require.Len(t, state[capture.KeyString(map[string]any{"id": json.Number("8001")})]["note"], 1<<20)
}

// A record larger than a NATS message is delivered through the object
// store; one larger than the sync's max_record_bytes (64 MiB by default)
// fails alone, naming its key and size, and the rest of the run goes on.
func TestLargeRecords(t *testing.T) {
	p := newPG(t)
	itemsTable(p, "items", 1000, 100)
	p.exec(`UPDATE $S.items SET note = repeat('b', 2 << 20) WHERE id = 500`)
	p.exec(`UPDATE $S.items SET note = repeat('h', (64 << 20) + 1) WHERE id = 700`)
	hook, url := sink(t)
	e := startEnv(t)
	e.apply(config.File{
		Sources:      []config.Source{whSource(p)},
		Destinations: []config.Destination{hookDest("hook", url, map[string]any{"batch_size": 200})},
		Syncs:        []config.Sync{itemsSync(p, "items", "items", "hook")},
	})
	r := e.runSync("items")
	require.Equal(t, run.Failed, r.State, "one record failed")
	require.Equal(t, "1 of 1000 records failed; the next run sends them again", r.Error)
	require.EqualValues(t, 999, r.Adds.Delivered)
	require.EqualValues(t, 1, r.Adds.Failed)
	state := hook.State()
	require.Len(t, state, 999)
	require.Len(t, state[capture.KeyString(map[string]any{"id": json.Number("500")})]["note"], 2<<20)
	failures, err := run.Failures(t.Context(), e.plane.JS, "items", r.ID, 10)
	require.NoError(t, err)
	require.Len(t, failures, 1)
	require.Equal(t, `700`, failures[0].KeyEnc.String())
	require.Contains(t, failures[0].Error, "record 700 is 64.0 MiB as JSON, above the sync's max_record_bytes (64.0 MiB)")
	requireNoPayloadsLeft(t, e)
}

// requireNoPayloadsLeft checks that the bodies that went through the
// object store were deleted.
func requireNoPayloadsLeft(t *testing.T, e *env) {
	t.Helper()
	store, err := e.plane.JS.ObjectStore(t.Context(), bus.ObjectPayloads)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		list, err := store.List(t.Context())
		return errors.Is(err, jetstream.ErrNoObjectsFound) || (err == nil && len(list) == 0)
	}, 10*time.Second, 50*time.Millisecond, "payloads left in %s", bus.ObjectPayloads)
}

// A publish that can never succeed (here: the stream is gone) fails its run
// with the reason; before, it was retried forever.
func TestPublishThatCanNeverSucceedFailsTheRun(t *testing.T) {
	p := newPG(t)
	itemsTable(p, "items", 100, 10)
	_, url := sink(t)
	e := startEnv(t)
	e.apply(config.File{
		Sources:      []config.Source{whSource(p)},
		Destinations: []config.Destination{hookDest("hook", url, nil)},
		Syncs:        []config.Sync{itemsSync(p, "items", "items", "hook")},
	})
	require.Eventually(t, func() bool {
		_, err := e.plane.JS.Consumer(t.Context(), bus.StreamDeliver, "deliver_hook_0")
		return err == nil
	}, 30*time.Second, 20*time.Millisecond, "delivery is up")
	require.NoError(t, e.plane.JS.DeleteStream(t.Context(), bus.StreamDeliver))
	r := e.runSync("items")
	require.Equal(t, run.Failed, r.State)
	require.Contains(t, r.Error, "publishing to ebb.deliver.hook.")
	require.Contains(t, r.Error, "no stream holds the subject")
}

// A cancelled run never writes after the next run of its sync has started:
// its requests in flight drain (the run is cancelling meanwhile), and a
// request retried after the cancel is not sent. Before, a retried request
// of the cancelled run landed after the next run's records.
func TestCancelledRunNeverWritesAfterTheNextRun(t *testing.T) {
	p := newPG(t)
	itemsTable(p, "items", 400, 10)
	hook, url := sink(t)
	e := startEnv(t)
	e.apply(config.File{
		Sources: []config.Source{whSource(p)},
		Destinations: []config.Destination{hookDest("hook", url, map[string]any{"batch_size": 10, "partitions": 2, "ack_window": 2,
			"retry_backoff": "200ms", "max_attempts": 1000})},
		Syncs: []config.Sync{itemsSync(p, "items", "items", "hook")},
	})
	var first atomic.Value
	first.Store("")
	var failFirst atomic.Bool
	hook.Reject(func(rec capture.Record) (int, string) {
		if rec.RunID == first.Load() && failFirst.Load() {
			return 503, "busy"
		}
		return 0, ""
	})
	ctx := t.Context()
	r1, err := run.Start(ctx, e.plane.Bus, e.plane.Runs, "items", "manual")
	require.NoError(t, err)
	first.Store(r1.ID)
	require.Eventually(t, func() bool { return len(hook.Records()) >= 40 }, time.Minute, 10*time.Millisecond)
	failFirst.Store(true) // the first run's requests now fail and are retried
	require.Eventually(t, func() bool { return hook.Rejected() >= 4 }, 30*time.Second, 10*time.Millisecond,
		"retries of the first run are under way")
	cancelled, err := e.plane.Runs.Cancel(ctx, r1.ID)
	require.NoError(t, err)
	require.Equal(t, run.Cancelling, cancelled.State)

	r2 := e.startWhenFree("items", 30*time.Second)
	require.Equal(t, run.Cancelled, e.waitRun(r1, time.Second).State)
	failFirst.Store(false) // a retry of the first run would now land
	done := e.waitRun(r2, time.Minute)
	require.Equal(t, run.Succeeded, done.State, done.Error)

	firstOfSecond := -1
	for i, rec := range hook.Records() {
		switch {
		case rec.RunID == r2.ID && firstOfSecond < 0:
			firstOfSecond = i
		case rec.RunID == r1.ID && firstOfSecond >= 0:
			t.Fatalf("record %v of cancelled run %s arrived after run %s had started delivering", rec.Key, r1.ID, r2.ID)
		}
	}
	require.GreaterOrEqual(t, firstOfSecond, 0)
	require.Len(t, hook.State(), 400)
}

// A run paused and resumed while it diffs is diffed by one differ: the
// resume's announcement finds the first differ's claim and waits. Before,
// a second differ diffed it too, and the loser deleted the winner's
// change set.
func TestResumeDuringDiffDiffsOnce(t *testing.T) {
	p := newPG(t)
	itemsTable(p, "items", 1500, 10)
	hook, url := sink(t)
	e := startEnv(t)
	sync := itemsSync(p, "items", "items", "hook")
	// Each row costs a millisecond to read: the diff takes seconds.
	sync.Model.SQL = "SELECT id, note FROM " + p.schema + ".items WHERE pg_sleep(0.001) IS NOT NULL"
	e.apply(config.File{
		Sources:      []config.Source{whSource(p)},
		Destinations: []config.Destination{hookDest("hook", url, nil)},
		Syncs:        []config.Sync{sync},
	})
	ctx := t.Context()
	r, err := run.Start(ctx, e.plane.Bus, e.plane.Runs, "items", "manual")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		got, err := e.plane.Runs.Get(ctx, "items", r.ID)
		require.NoError(t, err)
		return got.State == run.Diffing
	}, time.Minute, 5*time.Millisecond)
	_, err = run.PauseSync(ctx, e.plane.State, e.plane.Runs, "items")
	require.NoError(t, err)
	_, err = run.ResumeSync(ctx, e.plane.Bus, e.plane.State, e.plane.Runs, "items")
	require.NoError(t, err)
	done := e.waitRun(r, 2*time.Minute)
	require.Equal(t, run.Succeeded, done.State, done.Error)
	require.Equal(t, 1, done.DiffAttempt, "one differ diffed the run: its first claim")
	seen := map[string]int{}
	for _, rec := range hook.Records() {
		seen[capture.KeyString(rec.Key)]++
	}
	require.Len(t, seen, 1500)
	for k, n := range seen {
		require.Equal(t, 1, n, "key %s sent %d times", k, n)
	}
}

// `ebb sync retry` while a run is active: that run commits the released
// key's old state (it left the key out), and a run that sends it starts
// when it ends. Before, the active run committed the key's new hash
// unsent, and nothing ever sent it.
func TestRetryDuringAnActiveRunSendsTheKey(t *testing.T) {
	p := newPG(t)
	itemsTable(p, "items", 300, 10)
	hook, url := sink(t)
	e := startEnvWith(t, t.TempDir(), "127.0.0.1:0")
	sync := itemsSync(p, "items", "items", "hook")
	sync.QuarantineAfter = 1
	e.apply(config.File{
		Sources:      []config.Source{whSource(p)},
		Destinations: []config.Destination{hookDest("hook", url, map[string]any{"batch_size": 10, "partitions": 1, "ack_window": 1})},
		Syncs:        []config.Sync{sync},
	})
	key5 := capture.KeyString(map[string]any{"id": json.Number("5")})
	hook.Fail(func(rec capture.Record) string {
		if capture.KeyString(rec.Key) == key5 {
			return "refused"
		}
		return ""
	})
	r1 := e.runSync("items")
	require.Equal(t, run.Failed, r1.State, "key 5 failed and is quarantined")
	hook.Fail(nil)

	p.exec(`UPDATE $S.items SET note = 'new ' || id`)
	hook.SetLatency(100 * time.Millisecond)
	ctx := t.Context()
	r2, err := run.Start(ctx, e.plane.Bus, e.plane.Runs, "items", "manual")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(hook.Records()) > 350 }, time.Minute, 10*time.Millisecond)
	resp, err := adminClient(t, e).RetryQuarantined(ctx, &adminv1.RetryQuarantinedRequest{Sync: "items"})
	require.NoError(t, err)
	require.EqualValues(t, 1, resp.GetReleased())
	require.Nil(t, resp.GetRun(), "run 2 is active")
	hook.SetLatency(0)
	done := e.waitRun(r2, time.Minute)
	require.Equal(t, run.Succeeded, done.State, done.Error)
	require.EqualValues(t, 1, done.Quarantined, "run 2 left key 5 out")

	require.Eventually(t, func() bool {
		return hook.State()[key5]["note"] == "new 5"
	}, time.Minute, 50*time.Millisecond, "a run after run 2 sent the released key")
	runs, err := e.plane.Runs.List(ctx, "items", 0)
	require.NoError(t, err)
	require.Equal(t, "retry", runs[0].Trigger)
}

// A dry run (ebb sync plan) is one from its first write: no stage, and no
// crash between two writes, can take it for a real run.
func TestDryRunIsOneFromItsFirstWrite(t *testing.T) {
	ns := natstest.Start(t)
	ctx := t.Context()
	pl, err := plane.Open(ctx, ns.JS)
	require.NoError(t, err)
	// Every write of the runs bucket, as it happens: a KV watch could
	// miss the first when the second follows within microseconds.
	writes := make(chan *nats.Msg, 16)
	sub, err := ns.NC.ChanSubscribe("$KV."+bus.BucketRuns+".run.plan_me.*", writes)
	require.NoError(t, err)
	defer func() { _ = sub.Unsubscribe() }()
	require.NoError(t, ns.NC.Flush())
	r, err := run.StartDryRun(ctx, pl.Bus, pl.Runs, "plan_me")
	require.NoError(t, err)
	select {
	case m := <-writes:
		var first run.Run
		require.NoError(t, json.Unmarshal(m.Data, &first))
		require.Equal(t, r.ID, first.ID)
		require.True(t, first.DryRun, "the run's first write marks it a dry run")
	case <-time.After(10 * time.Second):
		t.Fatal("no write of the run seen")
	}
}

// retry_for counts from a batch's first attempt, not from when it entered
// the stream: a batch that waited behind others longer than retry_for still
// gets its retries. Before, it got one try and its records failed.
func TestRetryForCountsFromTheFirstAttempt(t *testing.T) {
	p := newPG(t)
	itemsTable(p, "items", 100, 10)
	hook, url := sink(t)
	hook.SetLatency(300 * time.Millisecond)
	e := startEnv(t)
	e.apply(config.File{
		Sources: []config.Source{whSource(p)},
		Destinations: []config.Destination{hookDest("hook", url, map[string]any{"batch_size": 10, "partitions": 1, "ack_window": 1,
			"retry_for": "2s", "retry_backoff": "100ms"})},
		Syncs: []config.Sync{itemsSync(p, "items", "items", "hook")},
	})
	// The last batch (ids 91-100) waits about 3 s behind the others; its
	// first request is refused as busy.
	var refused atomic.Bool
	hook.Reject(func(rec capture.Record) (int, string) {
		if capture.KeyString(rec.Key) == capture.KeyString(map[string]any{"id": json.Number("100")}) && refused.CompareAndSwap(false, true) {
			return 503, "busy"
		}
		return 0, ""
	})
	r := e.runSync("items")
	require.True(t, refused.Load())
	require.Equal(t, run.Succeeded, r.State, r.Error)
	require.EqualValues(t, 100, r.Adds.Delivered)
}

// Lowering a destination's partitions mid-run strands nothing: the run
// keeps its lane count, and delivery serves the lanes beyond the new one
// until their batches are delivered.
func TestLoweringPartitionsMidRunStrandsNothing(t *testing.T) {
	p := newPG(t)
	itemsTable(p, "items", 2000, 10)
	hook, url := sink(t)
	hook.SetLatency(50 * time.Millisecond)
	e := startEnv(t)
	f := config.File{
		Sources:      []config.Source{whSource(p)},
		Destinations: []config.Destination{hookDest("hook", url, map[string]any{"batch_size": 20, "partitions": 4, "ack_window": 1})},
		Syncs:        []config.Sync{itemsSync(p, "items", "items", "hook")},
	}
	e.apply(f)
	r, err := run.Start(t.Context(), e.plane.Bus, e.plane.Runs, "items", "manual")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(hook.Records()) >= 100 }, time.Minute, 10*time.Millisecond)
	f.Destinations[0].Config["partitions"] = 2
	e.apply(f)
	hook.SetLatency(0)
	done := e.waitRun(r, time.Minute)
	require.Equal(t, run.Succeeded, done.State, done.Error)
	require.Len(t, hook.State(), 2000)
}

// No run runs forever: past the sync's max_run_duration it fails with that
// reason, and its sync is free again.
func TestMaxRunDuration(t *testing.T) {
	p := newPG(t)
	itemsTable(p, "items", 100, 10)
	hook, url := sink(t)
	hook.SetDown(true)
	e := startEnv(t)
	sync := itemsSync(p, "items", "items", "hook")
	sync.MaxRunDuration = "3s"
	e.apply(config.File{
		Sources:      []config.Source{whSource(p)},
		Destinations: []config.Destination{hookDest("hook", url, nil)},
		Syncs:        []config.Sync{sync},
	})
	r, err := run.Start(t.Context(), e.plane.Bus, e.plane.Runs, "items", "manual")
	require.NoError(t, err)
	done := e.waitRun(r, 30*time.Second)
	require.Equal(t, run.Failed, done.State)
	require.Contains(t, done.Error, "max_run_duration (3s)")
	e.startWhenFree("items", 10*time.Second)
}

// A destination that cannot be opened fails its runs with the reason, at
// once when opening again cannot help (a ${VAR} that is not set), within
// max_attempts when it might (a Postgres on a closed port). Before, the
// run stayed in delivering forever with no error.
func TestUnopenableDestinationFailsTheRun(t *testing.T) {
	p := newPG(t)
	itemsTable(p, "items", 50, 10)
	_, url := sink(t)
	e := startEnv(t)
	e.apply(config.File{
		Sources: []config.Source{whSource(p)},
		Destinations: []config.Destination{
			hookDest("unset", url, map[string]any{"headers": map[string]any{"X-Token": "${EBB_TEST_NEVER_SET}"}}),
			{Name: "closed", Type: "postgres", Config: map[string]any{"dsn": "postgres://127.0.0.1:1/none?connect_timeout=2", "table": "public.t", "max_attempts": 2}},
		},
		Syncs: []config.Sync{itemsSync(p, "to_unset", "items", "unset"), itemsSync(p, "to_closed", "items", "closed")},
	})
	start := time.Now()
	r := e.runSync("to_unset")
	require.Equal(t, run.Failed, r.State)
	require.Contains(t, r.Error, "EBB_TEST_NEVER_SET")
	require.Less(t, time.Since(start), 30*time.Second)

	r = e.runSync("to_closed")
	require.Equal(t, run.Failed, r.State)
	require.Contains(t, r.Error, `opening destination "closed"`)
}

// Within a run, deletes reach the destination before adds and changes, so
// a delete and an add that land on the same destination record (a key
// that changed type, a mapping that sends another column as the
// destination's id) arrive in that order.
func TestDeletesArriveBeforeOtherRecordsOfTheRun(t *testing.T) {
	p := newPG(t)
	itemsTable(p, "items", 2000, 10)
	hook, url := sink(t)
	e := startEnv(t)
	e.apply(config.File{
		Sources:      []config.Source{whSource(p)},
		Destinations: []config.Destination{hookDest("hook", url, map[string]any{"batch_size": 20, "partitions": 4, "ack_window": 4})},
		Syncs:        []config.Sync{itemsSync(p, "items", "items", "hook")},
	})
	require.Equal(t, run.Succeeded, e.runSync("items").State)
	p.exec(`DELETE FROM $S.items WHERE id % 3 = 0`)
	p.exec(`UPDATE $S.items SET note = 'changed' WHERE id % 3 = 1`)
	p.exec(`INSERT INTO $S.items SELECT i, 'added' FROM generate_series(2001, 2500) AS i`)
	r := e.runSync("items")
	require.Equal(t, run.Succeeded, r.State, r.Error)
	require.EqualValues(t, 666, r.Deletes.Delivered)
	lastDelete, firstOther := -1, -1
	for i, rec := range hook.Records() {
		if rec.RunID != r.ID {
			continue
		}
		if rec.Op == record.OpDelete {
			lastDelete = i
		} else if firstOther < 0 {
			firstOther = i
		}
	}
	require.Less(t, lastDelete, firstOther, "every delete of the run arrived before its first other record")
}

// A mirror run cancelled while it delivers leaves no row at the destination
// for good: what it delivered is sent again by the next run, as an upsert
// while the row is in the model and as a delete once it is not. Before, a
// row it added and the model then dropped stayed at the destination: the
// next run diffed against a snapshot that never had it. (Found by the
// history checker.)
func TestRowsOfACancelledMirrorRunAreDeletedOnceTheModelDropsThem(t *testing.T) {
	for _, engine := range []config.Engine{config.EngineLocal, config.EngineWarehouse} {
		t.Run(string(engine), func(t *testing.T) {
			p := newPG(t)
			itemsTable(p, "items", 600, 10)
			hook, url := sink(t)
			hook.SetLatency(30 * time.Millisecond)
			e := startEnv(t)
			sync := itemsSync(p, "items", "items", "hook")
			sync.Engine = engine
			e.apply(config.File{
				Sources:      []config.Source{whSource(p)},
				Destinations: []config.Destination{hookDest("hook", url, map[string]any{"batch_size": 10, "partitions": 2, "ack_window": 1})},
				Syncs:        []config.Sync{sync},
			})
			ctx := t.Context()
			r1, err := run.Start(ctx, e.plane.Bus, e.plane.Runs, "items", "manual")
			require.NoError(t, err)
			require.Eventually(t, func() bool { return len(hook.State()) >= 100 }, time.Minute, 10*time.Millisecond)
			_, err = e.plane.Runs.Cancel(ctx, r1.ID)
			require.NoError(t, err)
			require.Equal(t, run.Cancelled, e.waitRun(r1, 30*time.Second).State)
			delivered := len(hook.State())
			require.Less(t, delivered, 600, "the cancel stopped the first run")

			hook.SetLatency(0)
			p.exec(`DELETE FROM $S.items WHERE id % 2 = 0`)
			r2 := e.runSync("items")
			require.Equal(t, run.Succeeded, r2.State, r2.Error)
			state := hook.State()
			require.Len(t, state, 300, "the destination holds exactly the model")
			for k := range state {
				require.NotContains(t, []string{`{"id":2}`, `{"id":4}`}, k)
			}
			require.Equal(t, 300, p.count(`SELECT count(*) FROM $S.items`))
			r3 := e.runSync("items")
			require.Equal(t, run.Succeeded, r3.State, r3.Error)
			require.Zero(t, r3.Planned.Total(), "then nothing more to send")
		})
	}
}

// A record that failed may have reached the destination all the same (a
// timeout after the destination took it). In mirror mode its key is
// committed uncertain: once the model drops the row, the next run sends a
// delete. Before, a failed add kept its old state (absent), and a row the
// destination took despite the error stayed there for good. (Found by the
// history checker.)
func TestAFailedMirrorRecordIsDeletedOnceTheModelDropsIt(t *testing.T) {
	for _, engine := range []config.Engine{config.EngineLocal, config.EngineWarehouse} {
		t.Run(string(engine), func(t *testing.T) {
			p := newPG(t)
			itemsTable(p, "items", 100, 10)
			hook, url := sink(t)
			e := startEnv(t)
			sync := itemsSync(p, "items", "items", "hook")
			sync.Engine = engine
			e.apply(config.File{
				Sources:      []config.Source{whSource(p)},
				Destinations: []config.Destination{hookDest("hook", url, nil)},
				Syncs:        []config.Sync{sync},
			})
			key7 := capture.KeyString(map[string]any{"id": json.Number("7")})
			hook.Fail(func(rec capture.Record) string {
				if capture.KeyString(rec.Key) == key7 {
					return "timed out"
				}
				return ""
			})
			r1 := e.runSync("items")
			require.Equal(t, run.Failed, r1.State)
			require.EqualValues(t, 1, r1.Adds.Failed)
			hook.Fail(nil)

			p.exec(`DELETE FROM $S.items WHERE id = 7`)
			r2 := e.runSync("items")
			require.Equal(t, run.Succeeded, r2.State, r2.Error)
			require.Equal(t, map[record.Op]int{record.OpDelete: 1}, opsOf(hook.Records(), r2.ID),
				"the failed add's key goes again, as a delete once the model dropped it")
			require.Zero(t, e.runSync("items").Planned.Total())
		})
	}
}
