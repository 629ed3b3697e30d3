package run_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/natstest"
	"github.com/ebb-etl/ebb/libs/run"
)

// TestSlotOfAnEndedRunIsReclaimed simulates a kill -9 between the two
// writes that end a run: Update stored the run as succeeded, but the process
// died before releasing the sync's active slot. The next run must still
// start (invariant 2: a crash at any instant never blocks a sync for good),
// while a slot naming a run that is still active keeps refusing.
func TestSlotOfAnEndedRunIsReclaimed(t *testing.T) {
	ctx := context.Background()
	ns := natstest.Start(t)
	store, err := run.OpenStore(ctx, ns.JS, bus.BucketRuns)
	require.NoError(t, err)
	kv, err := ns.JS.KeyValue(ctx, bus.BucketRuns)
	require.NoError(t, err)

	r1, err := store.Create(ctx, "s1", "manual")
	require.NoError(t, err)
	_, err = store.Create(ctx, "s1", "manual")
	require.ErrorIs(t, err, run.ErrActive, "an active run keeps its slot")

	// The crash: the run's final write landed, the release did not.
	r1.State = run.Succeeded
	data, err := json.Marshal(r1)
	require.NoError(t, err)
	_, err = kv.Put(ctx, "run.s1."+r1.ID, data)
	require.NoError(t, err)
	id, err := store.ActiveID(ctx, "s1")
	require.NoError(t, err)
	require.Equal(t, r1.ID, id, "the slot still names the ended run")

	r2, err := store.Create(ctx, "s1", "manual")
	require.NoError(t, err, "the slot of an ended run is reclaimed")
	id, err = store.ActiveID(ctx, "s1")
	require.NoError(t, err)
	require.Equal(t, r2.ID, id)
	_, err = store.Create(ctx, "s1", "manual")
	require.ErrorIs(t, err, run.ErrActive, "and the new run holds it")
}

// A run started while the sync's active run ends either waits its turn
// (ErrActive naming that run) or starts: it is never refused by a slot
// that was freed meanwhile. Before, a start that found the slot taken and
// then saw it freed failed as "already has an active run ()".
func TestStartWhileTheActiveRunEnds(t *testing.T) {
	ctx := context.Background()
	ns := natstest.Start(t)
	store, err := run.OpenStore(ctx, ns.JS, bus.BucketRuns)
	require.NoError(t, err)
	for i := range 300 {
		active, err := store.Create(ctx, "s1", "manual")
		require.NoError(t, err, "round %d", i)
		ended := make(chan error, 1)
		go func() {
			_, err := store.Fail(ctx, "s1", active.ID, "ended")
			ended <- err
		}()
		for {
			_, err = store.Create(ctx, "s1", "manual")
			if !errors.Is(err, run.ErrActive) {
				break
			}
			require.Contains(t, err.Error(), active.ID, "round %d: refused for a slot that was freed", i)
		}
		require.NoError(t, err, "round %d", i)
		require.NoError(t, <-ended)
		id, err := store.ActiveID(ctx, "s1")
		require.NoError(t, err)
		next, err := store.Get(ctx, "s1", id)
		require.NoError(t, err)
		_, err = store.Fail(ctx, "s1", next.ID, "done")
		require.NoError(t, err)
	}
}
