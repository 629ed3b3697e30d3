package snapshot_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/natstest"
	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/snapshot"
)

func TestWriteThenReadBothWays(t *testing.T) {
	ctx := context.Background()
	ns := natstest.Start(t)
	require.NoError(t, bus.Provision(ctx, ns.JS, bus.DefaultLimits()))
	obs, err := ns.JS.ObjectStore(ctx, bus.ObjectSnapshots)
	require.NoError(t, err)

	w := snapshot.Create(ctx, obs, "s/r/snapshot", 2)
	for i := range 50_000 {
		require.NoError(t, w.Write(record.Key(fmt.Sprintf("key-%06d", i)), []byte{byte(i), byte(i >> 8)}))
	}
	require.NoError(t, w.Close())
	require.EqualValues(t, 50_000, w.Count())

	for name, open := range map[string]func(context.Context, jetstream.ObjectStore, string, int) (*snapshot.Reader, error){
		"streamed": snapshot.Open, "local copy": snapshot.OpenLocal,
	} {
		r, err := open(ctx, obs, "s/r/snapshot", 2)
		require.NoError(t, err, name)
		n := 0
		for {
			ok, err := r.Next()
			require.NoError(t, err, name)
			if !ok {
				break
			}
			require.Equal(t, fmt.Sprintf("key-%06d", n), string(r.Key()), name)
			require.Equal(t, []byte{byte(n), byte(n >> 8)}, r.Value(), name)
			n++
		}
		require.Equal(t, 50_000, n, name)
		require.NoError(t, r.Close())
	}

	empty, err := snapshot.OpenLocal(ctx, obs, "", 2)
	require.NoError(t, err)
	ok, err := empty.Next()
	require.NoError(t, err)
	require.False(t, ok, "no snapshot reads as empty")
}

// A read that lasts longer than the JetStream context's default timeout
// (the diff reads the previous snapshot at the pace of the model scan)
// still reads the whole object: the object store otherwise bounds a Get
// without a deadline by that timeout, and 10M-row diffs failed with
// "nats: timeout".
func TestSlowReadOutlastsDefaultTimeout(t *testing.T) {
	ctx := context.Background()
	ns := natstest.Start(t)
	require.NoError(t, bus.Provision(ctx, ns.JS, bus.DefaultLimits()))
	js, err := jetstream.New(ns.NC, jetstream.WithDefaultTimeout(100*time.Millisecond))
	require.NoError(t, err)
	obs, err := js.ObjectStore(ctx, bus.ObjectSnapshots)
	require.NoError(t, err)
	// Written with the usual timeout: only the read is under test, and a
	// loaded machine can take more than 100 ms to acknowledge a chunk.
	writeStore, err := ns.JS.ObjectStore(ctx, bus.ObjectSnapshots)
	require.NoError(t, err)

	const entries = 100_000 // several chunks, more than the pipe holds
	w := snapshot.Create(ctx, writeStore, "s/r/slow", 2)
	for i := range entries {
		require.NoError(t, w.Write(record.Key(fmt.Sprintf("key-%06d", i)), []byte{1, 2}))
	}
	require.NoError(t, w.Close())

	r, err := snapshot.Open(ctx, obs, "s/r/slow", 2)
	require.NoError(t, err)
	defer r.Close()
	n := 0
	for {
		ok, err := r.Next()
		require.NoError(t, err, "entry %d", n)
		if !ok {
			break
		}
		if n%20_000 == 0 {
			// The reader stalls, as a merge waiting on the model does: the
			// read outlasts the 100 ms default timeout several times over.
			time.Sleep(150 * time.Millisecond)
		}
		n++
	}
	require.Equal(t, entries, n)
}
