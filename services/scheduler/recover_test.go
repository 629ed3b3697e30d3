package scheduler_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/natstest"
	"github.com/ebb-etl/ebb/libs/plane"
	"github.com/ebb-etl/ebb/libs/run"
	"github.com/ebb-etl/ebb/services/scheduler"
)

// startScheduler runs one scheduler copy until the test ends.
func startScheduler(t *testing.T, ns *natstest.Server, p *plane.Plane, d scheduler.Deps) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	leases, err := ns.JS.KeyValue(ctx, bus.BucketLeases)
	require.NoError(t, err)
	d.Plane, d.Leases, d.Log, d.Tick = p, leases, zerolog.New(zerolog.NewTestWriter(t)), 100*time.Millisecond
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = scheduler.Run(ctx, d)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

func TestPausedSyncIsNotScheduled(t *testing.T) {
	ctx := t.Context()
	ns := natstest.Start(t)
	p, err := plane.Open(ctx, ns.JS)
	require.NoError(t, err)
	require.NoError(t, p.Configs.Put(ctx, config.KindSync, "every", config.Sync{Name: "every", Schedule: "@every 1s"}))
	_, err = run.PauseSync(ctx, p.State, p.Runs, "every")
	require.NoError(t, err)
	startScheduler(t, ns, p, scheduler.Deps{ID: "a"})

	require.Never(t, func() bool {
		runs, err := p.Runs.List(ctx, "every", 0)
		require.NoError(t, err)
		return len(runs) > 0
	}, 3*time.Second, 100*time.Millisecond, "a paused sync was scheduled")
	_, err = run.ResumeSync(ctx, p.Bus, p.State, p.Runs, "every")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		runs, err := p.Runs.List(ctx, "every", 0)
		require.NoError(t, err)
		return len(runs) == 1
	}, 10*time.Second, 50*time.Millisecond, "the resumed sync is scheduled again")
}

// A crash between creating a run and announcing it leaves a pending run
// nobody works on; the leader announces it again.
func TestStalePendingRunIsAnnouncedAgain(t *testing.T) {
	ctx := t.Context()
	ns := natstest.Start(t)
	p, err := plane.Open(ctx, ns.JS)
	require.NoError(t, err)
	require.NoError(t, p.Configs.Put(ctx, config.KindSync, "s", config.Sync{Name: "s", Schedule: "manual"}))
	r, err := p.Runs.Create(ctx, "s", "manual") // never announced
	require.NoError(t, err)
	startScheduler(t, ns, p, scheduler.Deps{ID: "a", StaleAfter: 500 * time.Millisecond})

	stream, err := ns.JS.Stream(ctx, bus.StreamRuns)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		msg, err := stream.GetLastMsgForSubject(ctx, bus.RunRequested("s"))
		return err == nil && string(msg.Header.Get("Nats-Msg-Id")) == "run/"+r.ID+"/requested/recovered"
	}, 10*time.Second, 50*time.Millisecond)
}

// A crash between claiming a sync's active slot and writing its run leaves
// a slot naming no run; the leader frees it so the sync can run again.
func TestOrphanedActiveSlotIsReleased(t *testing.T) {
	ctx := t.Context()
	ns := natstest.Start(t)
	p, err := plane.Open(ctx, ns.JS)
	require.NoError(t, err)
	require.NoError(t, p.Configs.Put(ctx, config.KindSync, "s", config.Sync{Name: "s", Schedule: "manual"}))
	runs, err := ns.JS.KeyValue(ctx, bus.BucketRuns)
	require.NoError(t, err)
	_, err = runs.Create(ctx, "active.s", []byte("01NOSUCHRUN"))
	require.NoError(t, err)
	_, err = run.Start(ctx, p.Bus, p.Runs, "s", "manual")
	require.ErrorIs(t, err, run.ErrActive)
	startScheduler(t, ns, p, scheduler.Deps{ID: "a", StaleAfter: 500 * time.Millisecond})

	require.Eventually(t, func() bool {
		id, err := p.Runs.ActiveID(ctx, "s")
		require.NoError(t, err)
		return id == ""
	}, 10*time.Second, 50*time.Millisecond)
	_, err = run.Start(ctx, p.Bus, p.Runs, "s", "manual")
	require.NoError(t, err)
}

func TestOldRunsArePruned(t *testing.T) {
	ctx := t.Context()
	ns := natstest.Start(t)
	p, err := plane.Open(ctx, ns.JS)
	require.NoError(t, err)
	old, err := p.Runs.Create(ctx, "s", "manual")
	require.NoError(t, err)
	_, err = p.Runs.Update(ctx, "s", old.ID, func(r *run.Run) error { r.State = run.Succeeded; return nil })
	require.NoError(t, err)
	active, err := p.Runs.Create(ctx, "s", "manual")
	require.NoError(t, err)
	startScheduler(t, ns, p, scheduler.Deps{ID: "a", RunRetention: time.Nanosecond})

	require.Eventually(t, func() bool {
		_, err := p.Runs.Get(ctx, "s", old.ID)
		return errors.Is(err, run.ErrNotFound)
	}, 10*time.Second, 50*time.Millisecond, "a finished run past its retention is pruned")
	_, err = p.Runs.Get(ctx, "s", active.ID)
	require.NoError(t, err, "an active run is kept")
}
