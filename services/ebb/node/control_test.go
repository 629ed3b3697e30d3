package node_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/capture"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/run"
)

// slowConfig delivers 50 records a request on two lanes, one request at a
// time each, so a run of a few thousand rows takes seconds.
func slowConfig(p *pg, url string) config.File {
	f := pipelineConfig(p, config.ModeMirror, url)
	f.Destinations[0].Config = map[string]any{"url": url, "batch_size": 50, "partitions": 2, "ack_window": 1}
	return f
}

// requireEachOnce checks every model row reached the sink exactly once.
func requireEachOnce(t *testing.T, p *pg, s *capture.Server) {
	t.Helper()
	seen := map[string]int{}
	for _, rec := range s.Records() {
		seen[capture.KeyString(rec.Key)]++
	}
	for k, n := range seen {
		require.Equal(t, 1, n, "key %s arrived %d times", k, n)
	}
	require.Equal(t, modelRows(p), withoutTimestamps(s.State()))
}

func TestPauseMidDeliveryThenResume(t *testing.T) {
	p := newPG(t)
	seedCustomers(p, 3000)
	s, url := sink(t)
	s.SetLatency(150 * time.Millisecond)
	e := startEnv(t)
	e.apply(slowConfig(p, url))
	ctx := t.Context()

	r, err := run.Start(ctx, e.plane.Bus, e.plane.Runs, "customers", "manual")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(s.Records()) >= 300 }, time.Minute, 20*time.Millisecond)
	paused, err := run.PauseSync(ctx, e.plane.State, e.plane.Runs, "customers")
	require.NoError(t, err)
	require.Equal(t, run.Paused, paused.State)
	require.Equal(t, run.Delivering, paused.PausedFrom)

	// Requests in flight when the pause lands finish; then nothing more.
	settled := waitSettled(t, s)
	require.Never(t, func() bool { return len(s.Records()) > settled }, 3*time.Second, 100*time.Millisecond,
		"records kept arriving during the pause")
	require.Less(t, settled, 3000, "the run was paused before it finished")
	_, err = run.Start(ctx, e.plane.Bus, e.plane.Runs, "customers", "manual")
	require.ErrorIs(t, err, run.ErrActive, "a paused run still holds its sync")

	s.SetLatency(0)
	resumed, err := run.ResumeSync(ctx, e.plane.Bus, e.plane.State, e.plane.Runs, "customers")
	require.NoError(t, err)
	require.Equal(t, run.Delivering, resumed.State)
	done := e.waitRun(r, time.Minute)
	require.Equal(t, run.Succeeded, done.State, done.Error)
	require.EqualValues(t, 3000, done.Adds.Delivered)
	requireEachOnce(t, p, s)
}

// waitSettled waits until the sink's record count stops moving and returns it.
func waitSettled(t *testing.T, s *capture.Server) int {
	t.Helper()
	last := -1
	require.Eventually(t, func() bool {
		n := len(s.Records())
		stable := n == last
		last = n
		return stable
	}, 30*time.Second, 1500*time.Millisecond)
	return last
}

func TestPauseBeforeDiffThenResume(t *testing.T) {
	p := newPG(t)
	seedCustomers(p, 3000)
	s, url := sink(t)
	s.SetLatency(100 * time.Millisecond)
	e := startEnv(t)
	f := slowConfig(p, url)
	e.apply(f)
	ctx := t.Context()

	// Paused before the differ picks it up: the run waits in pending.
	_, err := run.PauseSync(ctx, e.plane.State, e.plane.Runs, "customers")
	require.NoError(t, err)
	r, err := e.plane.Runs.Create(ctx, "customers", "manual")
	require.NoError(t, err)
	paused, err := run.PauseSync(ctx, e.plane.State, e.plane.Runs, "customers")
	require.NoError(t, err)
	require.Equal(t, run.Pending, paused.PausedFrom)
	require.NoError(t, run.Announce(ctx, e.plane.Bus, "ebb.run.requested.customers", r.ID, "customers", "requested"))
	require.Never(t, func() bool {
		got, err := e.plane.Runs.Get(ctx, "customers", r.ID)
		require.NoError(t, err)
		return got.State != run.Paused || len(s.Records()) > 0
	}, 2*time.Second, 100*time.Millisecond, "a paused run moved")

	_, err = run.ResumeSync(ctx, e.plane.Bus, e.plane.State, e.plane.Runs, "customers")
	require.NoError(t, err)
	done := e.waitRun(r, time.Minute)
	require.Equal(t, run.Succeeded, done.State, done.Error)
	requireEachOnce(t, p, s)
}

func TestCancelStopsDeliveryAndKeepsSnapshot(t *testing.T) {
	p := newPG(t)
	seedCustomers(p, 3000)
	s, url := sink(t)
	s.SetLatency(150 * time.Millisecond)
	e := startEnv(t)
	e.apply(slowConfig(p, url))
	ctx := t.Context()

	r, err := run.Start(ctx, e.plane.Bus, e.plane.Runs, "customers", "manual")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(s.Records()) >= 200 }, time.Minute, 20*time.Millisecond)
	cancelled, err := e.plane.Runs.Cancel(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, run.Cancelling, cancelled.State, "delivering: it drains its requests in flight first")
	_, err = e.plane.Runs.Cancel(ctx, r.ID)
	require.ErrorIs(t, err, run.ErrNotActive)
	require.Equal(t, run.Cancelled, e.waitRun(r, 30*time.Second).State)

	settled := waitSettled(t, s)
	require.Less(t, settled, 3000, "delivery stopped after the cancel")
	got, err := e.plane.Runs.Get(ctx, "customers", r.ID)
	require.NoError(t, err)
	require.Equal(t, run.Cancelled, got.State, "nothing moved the cancelled run on")

	// Nothing the cancelled run may have written is trusted: the next run
	// sends every row again (the keys it reached as changes, the rest as
	// adds), and the destination ends equal to the model.
	s.SetLatency(0)
	next := e.runSync("customers")
	require.Equal(t, run.Succeeded, next.State, next.Error)
	require.EqualValues(t, 3000, next.Planned.Adds+next.Planned.Changes)
	require.Equal(t, modelRows(p), withoutTimestamps(s.State()))
}

func TestEmptyModelStopsBeforeAnyDelete(t *testing.T) {
	p := newPG(t)
	seedCustomers(p, 1000)
	s, url := sink(t)
	e := startEnv(t)
	e.apply(pipelineConfig(p, config.ModeMirror, url))
	ctx := t.Context()
	require.Equal(t, run.Succeeded, e.runSync("customers").State)

	// A model bug: the model suddenly returns nothing.
	p.exec(`DELETE FROM $S.customers`)
	r, err := run.Start(ctx, e.plane.Bus, e.plane.Runs, "customers", "manual")
	require.NoError(t, err)
	var stopped *run.Run
	require.Eventually(t, func() bool {
		stopped, err = e.plane.Runs.Get(ctx, "customers", r.ID)
		require.NoError(t, err)
		return stopped.State == run.AwaitingApproval
	}, time.Minute, 20*time.Millisecond)
	require.Contains(t, stopped.SafetyStop, "planned deletes are 1000 of 1000 rows")
	require.EqualValues(t, 1000, stopped.Planned.Deletes)
	require.Never(t, func() bool { return opsOf(s.Records(), r.ID)["delete"] > 0 }, 2*time.Second, 100*time.Millisecond,
		"a delete was sent before approval")

	// Cancelling drops it and keeps the snapshot: the next run stops again.
	_, err = e.plane.Runs.Cancel(ctx, r.ID)
	require.NoError(t, err)
	again, err := run.Start(ctx, e.plane.Bus, e.plane.Runs, "customers", "manual")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		got, err := e.plane.Runs.Get(ctx, "customers", again.ID)
		require.NoError(t, err)
		return got.State == run.AwaitingApproval
	}, time.Minute, 20*time.Millisecond)

	// Approved, it sends every delete.
	_, err = run.Approve(ctx, e.plane.Bus, e.plane.Runs, again.ID)
	require.NoError(t, err)
	done := e.waitRun(again, time.Minute)
	require.Equal(t, run.Succeeded, done.State, done.Error)
	require.EqualValues(t, 1000, done.Deletes.Delivered)
	require.False(t, done.ApprovedAt.IsZero())
	require.Empty(t, s.State())
}
