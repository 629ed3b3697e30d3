package admin_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/run"
	"github.com/ebb-etl/ebb/libs/snapshot"
	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
	"github.com/ebb-etl/ebb/services/admin/internal/admintest"
)

// ResetSync drops the committed snapshot (pointer and object), refuses
// while the sync has an active run, and leaves a sync without a snapshot
// as it is.
func TestResetSync(t *testing.T) {
	env := admintest.Start(t, "")
	c := env.Client(t, "")
	ctx := t.Context()
	seed(t, c, "s1")
	state, err := env.NATS.JS.KeyValue(ctx, bus.BucketState)
	require.NoError(t, err)
	objects, err := env.NATS.JS.ObjectStore(ctx, bus.ObjectSnapshots)
	require.NoError(t, err)

	_, err = c.ResetSync(ctx, &adminv1.ResetSyncRequest{Sync: "nope"})
	requireCode(t, err, codes.NotFound, "nope")
	_, err = c.ResetSync(ctx, &adminv1.ResetSyncRequest{Sync: "a.b"})
	requireCode(t, err, codes.InvalidArgument, "sync")
	none, err := c.ResetSync(ctx, &adminv1.ResetSyncRequest{Sync: "s1"})
	require.NoError(t, err)
	require.False(t, none.GetDropped(), "no snapshot yet")

	// A committed snapshot of the local engine: a pointer and its object.
	committed := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	object := snapshot.ObjectName("s1", "01KAXRUN", "snapshot")
	_, err = objects.PutBytes(ctx, object, []byte("entries"))
	require.NoError(t, err)
	require.NoError(t, snapshot.StorePointer(ctx, state, "s1",
		snapshot.Pointer{RunID: "01KAXRUN", Engine: "local", Object: object, Rows: 1000, CommittedAt: committed}, 0))

	// Refused while a run is active: it would diff against what is dropped.
	active, err := env.Runs.Create(ctx, "s1", "manual")
	require.NoError(t, err)
	_, err = c.ResetSync(ctx, &adminv1.ResetSyncRequest{Sync: "s1"})
	requireCode(t, err, codes.FailedPrecondition, "active run "+active.ID, "ebb runs cancel "+active.ID)
	_, err = env.Runs.Update(ctx, "s1", active.ID, func(r *run.Run) error { r.State = run.Succeeded; return nil })
	require.NoError(t, err)

	resp, err := c.ResetSync(ctx, &adminv1.ResetSyncRequest{Sync: "s1"})
	require.NoError(t, err)
	require.True(t, resp.GetDropped())
	require.Equal(t, "01KAXRUN", resp.GetRunId())
	require.Equal(t, "local", resp.GetEngine())
	require.EqualValues(t, 1000, resp.GetRows())
	require.Equal(t, committed, resp.GetCommittedAt().AsTime())
	_, rev, err := snapshot.LoadPointer(ctx, state, "s1")
	require.NoError(t, err)
	require.Zero(t, rev, "the pointer is gone")
	_, err = objects.GetInfo(ctx, object)
	require.Error(t, err, "the object is gone")
	_, err = env.Runs.Create(ctx, "s1", "manual")
	require.NoError(t, err, "the reset released the sync's active slot")

	// A warehouse table this API cannot drop (it opens no warehouses) is
	// left to the differ's janitor; the pointer goes all the same.
	require.NoError(t, snapshot.StorePointer(ctx, state, "s2",
		snapshot.Pointer{RunID: "01KAXRUN2", Engine: "warehouse", Table: "snap_x", Rows: 5}, 0))
	_, err = c.CreateSync(ctx, &adminv1.CreateSyncRequest{Sync: sync("s2", "wh", "hook")})
	require.NoError(t, err)
	resp, err = c.ResetSync(ctx, &adminv1.ResetSyncRequest{Sync: "s2"})
	require.NoError(t, err)
	require.Equal(t, "warehouse", resp.GetEngine())
	_, rev, err = snapshot.LoadPointer(ctx, state, "s2")
	require.NoError(t, err)
	require.Zero(t, rev)
	require.Contains(t, env.Logs.String(), "the janitor drops it after a later commit")
}
