package run_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/natstest"
	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/run"
)

// bundle is what the transition tests work with.
type bundle struct {
	ns    *natstest.Server
	store *run.Store
}

func setup(t *testing.T) bundle {
	t.Helper()
	ns := natstest.Start(t)
	store, err := run.OpenStore(context.Background(), ns.JS, bus.BucketRuns)
	require.NoError(t, err)
	return bundle{ns: ns, store: store}
}

// atState creates a run of sync "s" and forces it into state, as the
// earlier transitions would have.
func (b bundle) atState(t *testing.T, state run.State) *run.Run {
	t.Helper()
	r, err := b.store.Create(t.Context(), "s", "manual")
	require.NoError(t, err)
	r, err = b.store.Update(t.Context(), "s", r.ID, func(r *run.Run) error {
		r.State = state
		r.Planned = run.Planned{Adds: 2, Deletes: 1}
		return nil
	})
	require.NoError(t, err)
	return r
}

func TestClaimGivesAPhaseToOneOwner(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	r := b.atState(t, run.Pending)

	got, err := b.store.Claim(ctx, "s", r.ID, "a", run.Diffing, time.Minute)
	require.NoError(t, err)
	require.Equal(t, run.Diffing, got.State, "a claim moves a pending run to diffing")
	require.Equal(t, 1, got.Claims)

	_, err = b.store.Claim(ctx, "s", r.ID, "b", run.Diffing, time.Minute)
	require.ErrorIs(t, err, run.ErrClaimed, "another owner's live claim")
	_, err = b.store.Claim(ctx, "s", r.ID, "b", run.Extracting, time.Minute)
	require.ErrorIs(t, err, run.ErrPhaseOver, "not in that phase")

	_, err = b.store.Advance(ctx, "s", r.ID, "b", run.Diffing, run.Extracting, nil)
	require.ErrorIs(t, err, run.ErrLostClaim, "only the owner advances")
	got, err = b.store.Advance(ctx, "s", r.ID, "a", run.Diffing, run.Extracting, func(r *run.Run) { r.Batches = 7 })
	require.NoError(t, err)
	require.Equal(t, run.Extracting, got.State)
	require.Nil(t, got.Claim, "advancing releases the claim")
	require.Equal(t, 7, got.Batches)
}

func TestAnExpiredClaimIsTakenOver(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	r := b.atState(t, run.Extracting)
	_, err := b.store.Claim(ctx, "s", r.ID, "dead", run.Extracting, time.Millisecond)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := b.store.Claim(ctx, "s", r.ID, "alive", run.Extracting, time.Minute)
		return err == nil
	}, 5*time.Second, 5*time.Millisecond)
	_, err = b.store.Renew(ctx, "s", r.ID, "dead", time.Minute)
	require.ErrorIs(t, err, run.ErrLostClaim, "the first owner learns it lost the phase")
	_, err = b.store.Advance(ctx, "s", r.ID, "dead", run.Extracting, run.Delivering, nil)
	require.ErrorIs(t, err, run.ErrLostClaim)
}

func TestKeepClaimEndsWhenTheRunStops(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	r := b.atState(t, run.Extracting)
	_, err := b.store.Claim(ctx, "s", r.ID, "a", run.Extracting, 300*time.Millisecond)
	require.NoError(t, err)
	lctx, stop := b.store.KeepClaim(ctx, "s", r.ID, "a", 300*time.Millisecond)
	defer stop()
	_, err = b.store.Cancel(ctx, r.ID)
	require.NoError(t, err)
	select {
	case <-lctx.Done():
		require.ErrorIs(t, context.Cause(lctx), run.ErrPhaseOver)
	case <-time.After(5 * time.Second):
		t.Fatal("the claim outlived the run's cancel")
	}
}

func TestStoppingDrainsWhenRecordsMayBeOnTheirWay(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	for _, tc := range []struct {
		from       run.State
		cancelled  run.State
		failedWith run.State
	}{
		{run.Pending, run.Cancelled, run.Failed},
		{run.Diffing, run.Cancelled, run.Failed},
		{run.AwaitingApproval, run.Cancelled, run.Failed},
		{run.Extracting, run.Cancelling, run.Failing},
		{run.Delivering, run.Cancelling, run.Failing},
	} {
		r := b.atState(t, tc.from)
		got, err := b.store.Cancel(ctx, r.ID)
		require.NoError(t, err)
		require.Equal(t, tc.cancelled, got.State, "cancel from %s", tc.from)
		_, err = b.store.Cancel(ctx, r.ID)
		require.ErrorIs(t, err, run.ErrNotActive, "cancel twice from %s", tc.from)
		if got.State == run.Cancelling {
			active, err := b.store.ActiveID(ctx, "s")
			require.NoError(t, err)
			require.Equal(t, r.ID, active, "a draining run keeps its sync's slot")
			got, err = b.store.Finish(ctx, "s", r.ID)
			require.NoError(t, err)
			require.Equal(t, run.Cancelled, got.State)
		}
		active, err := b.store.ActiveID(ctx, "s")
		require.NoError(t, err)
		require.Empty(t, active, "an ended run frees its sync")

		r = b.atState(t, tc.from)
		got, err = b.store.Fail(ctx, "s", r.ID, "broken")
		require.NoError(t, err)
		require.Equal(t, tc.failedWith, got.State, "fail from %s", tc.from)
		require.Equal(t, "broken", got.Error)
		got, err = b.store.Finish(ctx, "s", r.ID)
		require.NoError(t, err)
		require.Equal(t, run.Failed, got.State)
	}
}

func TestCommitWaitsForEveryResult(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	r := b.atState(t, run.Delivering) // 2 adds and 1 delete planned
	res := func(c record.Change, st record.Status, extra bool) record.Result {
		return record.Result{Change: c, Status: st, Extra: extra}
	}
	_, counted, err := b.store.CountResults(ctx, "s", r.ID, 0, []record.Result{
		res(record.Added, record.Delivered, false), res(record.Added, record.Delivered, true), // a record fanned out in two
		res(record.Deleted, record.Delivered, false),
	}, 1)
	require.NoError(t, err)
	require.True(t, counted)
	_, counted, err = b.store.CountResults(ctx, "s", r.ID, 0, []record.Result{res(record.Added, record.Failed, false)}, 0)
	require.NoError(t, err)
	require.False(t, counted, "a result batch counts once")
	_, committing, err := b.store.BeginCommit(ctx, "s", r.ID)
	require.ErrorIs(t, err, run.ErrNotReady, "one add has no result yet")
	require.False(t, committing)

	_, _, err = b.store.CountResults(ctx, "s", r.ID, 1, []record.Result{res(record.Added, record.Failed, false)}, 0)
	require.NoError(t, err)
	got, committing, err := b.store.BeginCommit(ctx, "s", r.ID)
	require.NoError(t, err)
	require.True(t, committing)
	require.EqualValues(t, 1, got.Fanout)
	got, err = b.store.Succeed(ctx, "s", r.ID)
	require.NoError(t, err)
	require.Equal(t, run.Failed, got.State, "a failed record fails the run it committed")
	require.Equal(t, "1 of 3 records failed; the next run sends them again", got.Error)
}

func TestPauseAndResumeReturnToThePhase(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	r := b.atState(t, run.Diffing)
	_, err := b.store.Claim(ctx, "s", r.ID, "a", run.Diffing, time.Minute)
	require.NoError(t, err)
	got, err := b.store.Pause(ctx, "s", r.ID)
	require.NoError(t, err)
	require.Equal(t, run.Paused, got.State)
	// The differ finishes during the pause: the run resumes past its diff.
	got, err = b.store.Advance(ctx, "s", r.ID, "a", run.Diffing, run.Extracting, nil)
	require.NoError(t, err)
	require.Equal(t, run.Extracting, got.PausedFrom)
	got, resumed, err := b.store.Resume(ctx, "s", r.ID)
	require.NoError(t, err)
	require.True(t, resumed)
	require.Equal(t, run.Extracting, got.State)
}

func TestDrainedWaitsForRequestsInFlight(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	state, err := b.ns.JS.KeyValue(ctx, bus.BucketState)
	require.NoError(t, err)
	r := b.atState(t, run.Delivering)
	r, err = b.store.Cancel(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, run.Cancelling, r.State)

	report := func(inflight ...string) {
		now := time.Now().UTC()
		_, err := run.PutMember(ctx, state, "copy1", run.Member{Until: now.Add(time.Minute), At: now, Inflight: inflight})
		require.NoError(t, err)
	}
	report(r.ID)
	drained, err := run.Drained(ctx, state, r, time.Hour)
	require.NoError(t, err)
	require.False(t, drained, "a request of the run is in flight")
	require.Eventually(t, func() bool {
		report() // a later report, without the run
		drained, err := run.Drained(ctx, state, r, time.Hour)
		require.NoError(t, err)
		return drained
	}, 10*time.Second, 50*time.Millisecond, "drained once every copy reported without it")
	_, err = b.store.Finish(ctx, "s", r.ID)
	require.NoError(t, err)

	r2 := b.atState(t, run.Delivering)
	r2, err = b.store.Fail(ctx, "s", r2.ID, "x")
	require.NoError(t, err)
	report(r2.ID) // a copy stuck on a request
	require.Eventually(t, func() bool {
		drained, err := run.Drained(ctx, state, r2, 100*time.Millisecond)
		require.NoError(t, err)
		return drained
	}, 10*time.Second, 50*time.Millisecond, "drained once a request's timeout has passed, whatever the reports")
}
