package scheduler_test

import (
	"context"
	"encoding/json"
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

func TestOneLeaderStartsScheduledRuns(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := natstest.Start(t)
	p, err := plane.Open(ctx, ns.JS)
	require.NoError(t, err)
	leases, err := ns.JS.KeyValue(ctx, bus.BucketLeases)
	require.NoError(t, err)
	require.NoError(t, p.Configs.Put(ctx, config.KindSync, "every", config.Sync{Name: "every", Schedule: "@every 1s"}))
	require.NoError(t, p.Configs.Put(ctx, config.KindSync, "manual", config.Sync{Name: "manual", Schedule: "manual"}))

	log := zerolog.New(zerolog.NewTestWriter(t))
	done := make(chan struct{}, 2)
	for _, id := range []string{"a", "b"} {
		go func() {
			_ = scheduler.Run(ctx, scheduler.Deps{Plane: p, Log: log, Leases: leases, ID: id, Tick: 100 * time.Millisecond})
			done <- struct{}{}
		}()
	}

	// The first run starts about a second after the schedule is first seen.
	var first *run.Run
	require.Eventually(t, func() bool {
		runs, err := p.Runs.List(ctx, "every", 0)
		require.NoError(t, err)
		if len(runs) > 0 {
			first = runs[0]
		}
		return first != nil
	}, 10*time.Second, 50*time.Millisecond)
	require.Equal(t, "schedule", first.Trigger)

	// While it is active (no differ runs here), no second run starts.
	e, err := leases.Get(ctx, "scheduler")
	require.NoError(t, err)
	var l struct{ Holder string }
	require.NoError(t, json.Unmarshal(e.Value(), &l))
	require.Contains(t, []string{"a", "b"}, l.Holder)

	_, err = p.Runs.Update(ctx, "every", first.ID, func(r *run.Run) error { r.State = run.Succeeded; return nil })
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		runs, err := p.Runs.List(ctx, "every", 0)
		require.NoError(t, err)
		return len(runs) == 2
	}, 10*time.Second, 50*time.Millisecond, "the next run starts once the first ended")
	runs, err := p.Runs.List(ctx, "every", 0)
	require.NoError(t, err)
	active := 0
	for _, r := range runs {
		if !r.State.Terminal() {
			active++
		}
	}
	require.Equal(t, 1, active)
	manual, err := p.Runs.List(ctx, "manual", 0)
	require.NoError(t, err)
	require.Empty(t, manual)
	cancel()
	<-done
	<-done
}
