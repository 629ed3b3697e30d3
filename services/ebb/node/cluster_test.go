package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/natstest"
	"github.com/ebb-etl/ebb/libs/plane"
	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/run"
	"github.com/ebb-etl/ebb/libs/snapshot"
	"github.com/ebb-etl/ebb/libs/source"
	srcbuiltin "github.com/ebb-etl/ebb/libs/source/builtin"
	"github.com/ebb-etl/ebb/services/ebb/node"
)

// TestSyncSurvivesAClusterNodeDying runs a sync on a three-node JetStream
// cluster with every stream, bucket and the object store at three replicas.
// The services connect with all three URLs. Once some batches have reached
// the destination, the node leading the delivery stream is killed: the run
// keeps delivering on the two others, the node comes back on its own store
// directory and catches up, and the run succeeds with every row at the
// destination and its snapshot committed.
func TestSyncSurvivesAClusterNodeDying(t *testing.T) {
	const rows = 10_000
	p := newPG(t)
	seedCustomers(p, rows)
	hook, url := sink(t)
	// Slow enough that the run is still delivering when the node dies.
	hook.SetLatency(30 * time.Millisecond)
	c := natstest.StartCluster(t, 3)
	ctx := context.Background()

	for _, name := range []string{bus.StreamRuns, bus.StreamRecords, bus.StreamDeliver, bus.StreamResults, "KV_" + bus.BucketRuns, "OBJ_" + bus.ObjectSnapshots} {
		s, err := c.JS.Stream(ctx, name)
		require.NoError(t, err)
		info, err := s.Info(ctx)
		require.NoError(t, err)
		require.Equal(t, 3, info.Config.Replicas, name)
	}

	pl, err := plane.Open(ctx, c.JS)
	require.NoError(t, err)
	nctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	go func() {
		done <- node.Run(nctx, node.Options{JS: c.JS, Log: log, Replicas: 3,
			Services: []string{"scheduler", "differ", "extractor", "transformer", "delivery", "reporting"}})
	}()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })

	e := &env{t: t, plane: pl}
	f := pipelineConfig(p, config.ModeMirror, url)
	f.Syncs[0].Engine = config.EngineLocal // the snapshot checked below is the object store's
	f.Destinations[0].Config["batch_size"] = 100
	f.Destinations[0].Config["partitions"] = 2
	f.Destinations[0].Config["ack_window"] = 2
	e.apply(f)

	started, err := run.Start(ctx, pl.Bus, pl.Runs, "customers", "manual")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return hook.Batches() >= 10 }, time.Minute, 10*time.Millisecond,
		"batches reach the destination before the node dies")

	victim := leaderOf(t, c, bus.StreamDeliver)
	t.Logf("killing node %d (leader of %s) after %d batches", victim, bus.StreamDeliver, hook.Batches())
	c.Kill(victim)
	before := hook.Batches()
	require.Eventually(t, func() bool { return hook.Batches() >= before+10 }, time.Minute, 10*time.Millisecond,
		"delivery goes on with one node down")
	require.NoError(t, c.Restart(victim))
	require.NoError(t, c.WaitReady(30*time.Second))
	t.Logf("node %d back after %d batches", victim, hook.Batches())

	back := time.Now()
	r := e.waitRun(started, 3*time.Minute)
	t.Logf("run %s %s %s after the node came back", r.ID, r.State, time.Since(back).Round(100*time.Millisecond))
	require.Equal(t, run.Succeeded, r.State, r.Error)
	require.EqualValues(t, rows, r.Adds.Delivered)
	require.Equal(t, modelRows(p), withoutTimestamps(hook.State()), "every row at the destination")
	requireCommitted(t, pl, r, f.Sources[0], f.Syncs[0].Model)

	// The restarted node has every stream again: it caught up.
	require.Eventually(t, func() bool {
		srv := c.Server(victim)
		return srv != nil && srv.JetStreamIsStreamCurrent("$G", bus.StreamRuns) && srv.JetStreamIsStreamCurrent("$G", "KV_"+bus.BucketRuns)
	}, time.Minute, 50*time.Millisecond, "the restarted node catches up")
}

// leaderOf returns the index of the node leading a stream.
func leaderOf(t *testing.T, c *natstest.Cluster, stream string) int {
	t.Helper()
	var leader int
	require.Eventually(t, func() bool {
		for i := 0; i < c.Size(); i++ {
			if srv := c.Server(i); srv != nil && srv.JetStreamIsStreamLeader("$G", stream) {
				leader = i
				return true
			}
		}
		return false
	}, 10*time.Second, 20*time.Millisecond, "stream %s has a leader", stream)
	return leader
}

// requireCommitted checks the sync's committed snapshot: it is the run's,
// and it holds exactly the model's keys with the model's row hashes.
func requireCommitted(t *testing.T, pl *plane.Plane, r *run.Run, src config.Source, m config.Model) {
	t.Helper()
	ctx := context.Background()
	ptr, _, err := snapshot.LoadPointer(ctx, pl.State, r.Sync)
	require.NoError(t, err)
	require.Equal(t, r.ID, ptr.RunID, "the run's snapshot is the committed one")
	s, err := srcbuiltin.Open(ctx, src)
	require.NoError(t, err)
	defer s.Close()
	type entry struct {
		key  record.Key
		hash string
	}
	var want []entry
	require.NoError(t, s.ScanHashes(ctx, source.Model{SQL: m.SQL, PrimaryKey: m.PrimaryKey}, func(key record.Key, hash []byte) error {
		want = append(want, entry{append(record.Key(nil), key...), string(hash)})
		return nil
	}))
	rd, err := snapshot.Open(ctx, pl.Snapshots, ptr.Object, snapshot.SnapshotPayload)
	require.NoError(t, err)
	defer rd.Close()
	i := 0
	for {
		ok, err := rd.Next()
		require.NoError(t, err)
		if !ok {
			break
		}
		require.Less(t, i, len(want), "the snapshot has more keys than the model")
		require.Equal(t, want[i].key, rd.Key(), "snapshot entry %d", i)
		require.Equal(t, want[i].hash, string(rd.Value()), "hash of %s", rd.Key())
		i++
	}
	require.Equal(t, len(want), i, "the snapshot has every key of the model")
	require.EqualValues(t, len(want), ptr.Rows)
}
