package run_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/natstest"
	"github.com/ebb-etl/ebb/libs/run"
)

func TestOneActiveRunPerSync(t *testing.T) {
	ctx := context.Background()
	ns := natstest.Start(t)
	store, err := run.OpenStore(ctx, ns.JS, bus.BucketRuns)
	require.NoError(t, err)

	r1, err := store.Create(ctx, "s1", "manual")
	require.NoError(t, err)
	_, err = store.Create(ctx, "s1", "manual")
	require.ErrorIs(t, err, run.ErrActive)

	_, err = store.Update(ctx, "s1", r1.ID, func(r *run.Run) error { r.State = run.Succeeded; return nil })
	require.NoError(t, err)
	r2, err := store.Create(ctx, "s1", "manual")
	require.NoError(t, err)

	found, err := store.Find(ctx, r1.ID)
	require.NoError(t, err)
	require.Equal(t, run.Succeeded, found.State)
	require.False(t, found.FinishedAt.IsZero())

	runs, err := store.List(ctx, "s1", 0)
	require.NoError(t, err)
	require.Len(t, runs, 2)
	require.Equal(t, r2.ID, runs[0].ID, "newest first")
}

func TestMarkBatch(t *testing.T) {
	var r run.Run
	require.True(t, r.MarkBatch(17))
	require.False(t, r.MarkBatch(17))
	require.True(t, r.MarkBatch(0))
}

// A run being updated all the time is still found by id and listed: with
// one revision kept per key, listing keys can miss a key updated
// meanwhile, so lookups go through indexes written once.
func TestFindWhileUpdating(t *testing.T) {
	ctx := context.Background()
	ns := natstest.Start(t)
	require.NoError(t, bus.Provision(ctx, ns.JS, bus.DefaultLimits()))
	store, err := run.OpenStore(ctx, ns.JS, bus.BucketRuns)
	require.NoError(t, err)
	r, err := store.Create(ctx, "s", "manual")
	require.NoError(t, err)

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = store.Update(ctx, "s", r.ID, func(r *run.Run) error { r.Extracted++; return nil })
		}
	}()
	defer func() { close(stop); <-done }()
	for range 200 {
		got, err := store.Find(ctx, r.ID)
		require.NoError(t, err)
		require.Equal(t, r.ID, got.ID)
		runs, err := store.List(ctx, "s", 0)
		require.NoError(t, err)
		require.Len(t, runs, 1)
	}
}
