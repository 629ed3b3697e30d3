package run_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/natstest"
	"github.com/ebb-etl/ebb/libs/run"
)

// A held slot keeps runs from starting, is refused while a run is active,
// and a holder that dies leaves a slot the orphan repair frees.
func TestHoldSlot(t *testing.T) {
	ctx := context.Background()
	ns := natstest.Start(t)
	store, err := run.OpenStore(ctx, ns.JS, bus.BucketRuns)
	require.NoError(t, err)

	release, err := store.Hold(ctx, "s1")
	require.NoError(t, err)
	_, err = store.Create(ctx, "s1", "manual")
	require.ErrorIs(t, err, run.ErrActive, "no run starts while the slot is held")
	_, err = store.Hold(ctx, "s1")
	require.ErrorIs(t, err, run.ErrActive)
	require.NoError(t, release(ctx))

	r, err := store.Create(ctx, "s1", "manual")
	require.NoError(t, err)
	_, err = store.Hold(ctx, "s1")
	require.ErrorIs(t, err, run.ErrActive)
	require.ErrorContains(t, err, r.ID, "the error names the active run")
	_, err = store.Update(ctx, "s1", r.ID, func(r *run.Run) error { r.State = run.Succeeded; return nil })
	require.NoError(t, err)

	// A holder that died: its slot names no run, and is freed as an orphan.
	_, err = store.Hold(ctx, "s1")
	require.NoError(t, err)
	held, err := store.ActiveID(ctx, "s1")
	require.NoError(t, err)
	require.NotEmpty(t, held)
	require.NoError(t, store.ReleaseOrphan(ctx, "s1", held, time.Nanosecond))
	_, err = store.Create(ctx, "s1", "manual")
	require.NoError(t, err)
}
