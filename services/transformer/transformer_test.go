package transformer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/natstest"
	"github.com/ebb-etl/ebb/libs/plane"
	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/run"
	"github.com/ebb-etl/ebb/services/transformer"
)

// testBundle is what a transformer test works with.
type testBundle struct {
	ns    *natstest.Server
	plane *plane.Plane
}

// setup starts a NATS server whose lanes hold laneBuffer batches and a
// transformer on it.
func setup(t *testing.T, laneBuffer int64) testBundle {
	t.Helper()
	ns := natstest.Start(t)
	l := bus.DefaultLimits()
	l.WorkMaxBytes, l.LaneBuffer = 64<<20, laneBuffer
	require.NoError(t, bus.Provision(t.Context(), ns.JS, l))
	pl, err := plane.Open(t.Context(), ns.JS)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- transformer.Run(ctx, transformer.Deps{Plane: pl, Log: zerolog.New(zerolog.NewTestWriter(t))})
	}()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	return testBundle{ns: ns, plane: pl}
}

// startRun stores a delivering run of sync "s" into destination "d" with
// two lanes and the given transformation code.
func (b testBundle) startRun(t *testing.T, code string) *run.Run {
	t.Helper()
	ctx := t.Context()
	r, err := b.plane.Runs.Create(ctx, "s", "manual")
	require.NoError(t, err)
	r, err = b.plane.Runs.Update(ctx, "s", r.ID, func(r *run.Run) error {
		r.State, r.Partitions = run.Delivering, 2
		r.Spec = config.Sync{Name: "s", Destination: "d", Mode: config.ModeUpsert,
			Transformation: &config.Transformation{Code: code}}
		return nil
	})
	require.NoError(t, err)
	return r
}

// lane reads every batch waiting in a lane of destination "d", acking them.
func (b testBundle) lane(t *testing.T, part int) []record.Batch {
	t.Helper()
	cons, err := bus.Durable(t.Context(), b.ns.JS, bus.StreamDeliver, jetstream.ConsumerConfig{
		Durable: fmt.Sprintf("read_%d", part), FilterSubject: bus.Deliver("d", part)})
	require.NoError(t, err)
	var out []record.Batch
	for {
		msgs, err := cons.Fetch(10, jetstream.FetchMaxWait(300*time.Millisecond))
		require.NoError(t, err)
		n := 0
		for m := range msgs.Messages() {
			n++
			var batch record.Batch
			require.NoError(t, record.Decode(m.Data(), &batch))
			out = append(out, batch)
			require.NoError(t, m.Ack())
		}
		if n == 0 {
			return out
		}
	}
}

// A batch whose lane is full is handed back, not waited on; when it comes
// back it publishes only the lanes it had not published. A transformation
// that answers differently the second time (a counter here, Date.now() or
// Math.random() in life) still gives every record exactly one entry across
// the lanes: records it drops or fails travel in their lane as final
// entries, and the first version of each lane message is the one that
// counts. Before, the transformer waited on the full lane for ever, and its
// own results for dropped records could disagree with the lanes.
func TestAFullLaneHandsTheBatchBackAndEveryRecordHasOneEntry(t *testing.T) {
	b := setup(t, 1)
	ctx := t.Context()
	// Every third call drops its record: 20 records a handling, so the
	// second handling of the batch drops other records than the first.
	r := b.startRun(t, `var n = 0; function transformEvent(r) { n++; return n % 3 ? r : null; }`)
	var keys []record.Key
	lanesHit := map[int]bool{}
	for i := 0; len(lanesHit) < 2 || len(keys) < 20; i++ {
		k := record.AppendInt(nil, int64(i))
		keys = append(keys, k)
		lanesHit[transformer.Partition(k, 2)] = true
	}
	// Lane 1 is full: its one slot holds a batch of another run.
	require.NoError(t, b.plane.Bus.Publish(ctx, bus.Deliver("d", 1), []byte(`{"sync":"other","run_id":"x","records":[]}`), "filler"))

	batch := record.Batch{Sync: "s", RunID: r.ID, Seq: 0}
	for i, k := range keys {
		batch.Records = append(batch.Records, record.Record{Op: record.OpUpsert, Change: record.Added, KeyEnc: k,
			Key: map[string]any{"id": i}, Data: map[string]any{"id": i}})
	}
	data, err := json.Marshal(batch)
	require.NoError(t, err)
	require.NoError(t, b.plane.Bus.Publish(ctx, bus.Records("s"), data, "s/"+r.ID+"/extract/0/0"))

	require.Eventually(t, func() bool {
		_, err := b.plane.State.Get(ctx, fmt.Sprintf("transform.%s.0", r.ID))
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "the batch published lane 0, found lane 1 full and was handed back")
	lane0 := b.lane(t, 0)
	require.Len(t, lane0, 1)
	// Reading lane 1 makes room: the batch comes back and publishes it.
	var lane1 []record.Batch
	fillers := 0
	require.Eventually(t, func() bool {
		for _, lb := range b.lane(t, 1) {
			if lb.Sync == "other" {
				fillers++
				continue
			}
			lane1 = append(lane1, lb)
		}
		return len(lane1) > 0
	}, 10*time.Second, 50*time.Millisecond, "the returning batch publishes lane 1")
	require.Equal(t, 1, fillers)
	require.Len(t, lane1, 1)
	require.Empty(t, b.lane(t, 0), "lane 0 was not published again")

	entries := map[string]int{}
	finals := 0
	for _, lb := range append(lane0, lane1...) {
		for _, rec := range lb.Records {
			entries[string(rec.KeyEnc)]++
			if !rec.Sendable() {
				require.Equal(t, record.Filtered, rec.Final)
				finals++
			}
		}
	}
	require.Len(t, entries, len(keys), "every record has an entry")
	for k, n := range entries {
		require.Equal(t, 1, n, "record %s has %d entries", record.Key(k), n)
	}
	require.Positive(t, finals, "dropped records travel as final entries")
}
