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
// two lanes and the given transformation code (none if empty).
func (b testBundle) startRun(t *testing.T, code string) *run.Run {
	t.Helper()
	ctx := t.Context()
	r, err := b.plane.Runs.Create(ctx, "s", "manual")
	require.NoError(t, err)
	r, err = b.plane.Runs.Update(ctx, "s", r.ID, func(r *run.Run) error {
		r.State, r.Partitions = run.Delivering, 2
		r.Spec = config.Sync{Name: "s", Destination: "d", Mode: config.ModeUpsert}
		if code != "" {
			r.Spec.Transformation = &config.Transformation{Code: code}
		}
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

// publishBatch publishes an extracted batch of run r with the given keys.
func (b testBundle) publishBatch(t *testing.T, r *run.Run, seq int, keys []int) {
	t.Helper()
	batch := record.Batch{Sync: "s", RunID: r.ID, Seq: seq}
	for _, i := range keys {
		batch.Records = append(batch.Records, record.Record{Op: record.OpUpsert, Change: record.Added,
			KeyEnc: record.AppendInt(nil, int64(i)), Key: map[string]any{"id": i}, Data: map[string]any{"id": i}})
	}
	data, err := json.Marshal(batch)
	require.NoError(t, err)
	require.NoError(t, b.plane.Bus.Publish(t.Context(), bus.Records("s"), data, fmt.Sprintf("s/%s/extract/%d/0", r.ID, seq)))
}

// Batches go round the lanes, each whole: the requests delivery makes of
// them are full, where a batch spread over the lanes by key made one
// part-filled request per lane.
func TestBatchesGoRoundTheLanesWhole(t *testing.T) {
	b := setup(t, 8)
	r := b.startRun(t, "")
	for seq := range 4 {
		b.publishBatch(t, r, seq, []int{seq*10 + 1, seq*10 + 2, seq*10 + 3})
	}
	var lanes [2][]record.Batch
	require.Eventually(t, func() bool {
		for part := range lanes {
			lanes[part] = append(lanes[part], b.lane(t, part)...)
		}
		return len(lanes[0])+len(lanes[1]) == 4
	}, 10*time.Second, 50*time.Millisecond)
	for part, got := range lanes {
		require.Len(t, got, 2)
		for _, lb := range got {
			require.Equal(t, part, lb.Seq%2, "batch %d goes to lane %d", lb.Seq, lb.Seq%2)
			require.Equal(t, part, lb.Partition)
			require.Len(t, lb.Records, 3, "batch %d is whole", lb.Seq)
		}
	}
}

// A batch whose lane is full is handed back, not waited on, and publishes
// when the lane has room. A transformation that answers differently the
// second time (a counter here, Date.now() or Math.random() in life) still
// gives every record exactly one entry: records it drops or fails travel
// in the lane message as final entries, and a handed-back batch published
// nothing. Before, the transformer waited on the full lane for ever, and
// its own results for dropped records could disagree with the lanes.
func TestAFullLaneHandsTheBatchBackAndEveryRecordHasOneEntry(t *testing.T) {
	b := setup(t, 1)
	ctx := t.Context()
	// Every third call drops its record, so the second handling of the
	// batch drops other records than the first.
	r := b.startRun(t, `var n = 0; function transformEvent(r) { n++; return n % 3 ? r : null; }`)
	// Lane 0, batch 0's, is full: its one slot holds a batch of another run.
	require.NoError(t, b.plane.Bus.Publish(ctx, bus.Deliver("d", 0), []byte(`{"sync":"other","run_id":"x","records":[]}`), "filler"))
	keys := make([]int, 20)
	for i := range keys {
		keys[i] = i
	}
	b.publishBatch(t, r, 0, keys)

	require.Eventually(t, func() bool {
		cons, err := b.ns.JS.Consumer(ctx, bus.StreamRecords, "transformer")
		if err != nil {
			return false // not provisioned yet
		}
		info, err := cons.Info(ctx)
		require.NoError(t, err)
		return info.NumRedelivered > 0
	}, 10*time.Second, 20*time.Millisecond, "the batch found its lane full and was handed back")
	// Reading lane 0 makes room: the batch comes back and publishes there.
	var got []record.Batch
	fillers := 0
	require.Eventually(t, func() bool {
		for _, lb := range b.lane(t, 0) {
			if lb.Sync == "other" {
				fillers++
				continue
			}
			got = append(got, lb)
		}
		return len(got) > 0
	}, 10*time.Second, 50*time.Millisecond, "the returning batch publishes its lane")
	require.Equal(t, 1, fillers)
	require.Len(t, got, 1)
	require.Empty(t, b.lane(t, 1), "nothing went to another lane")

	entries := map[string]int{}
	finals := 0
	for _, rec := range got[0].Records {
		entries[string(rec.KeyEnc)]++
		if !rec.Sendable() {
			require.Equal(t, record.Filtered, rec.Final)
			finals++
		}
	}
	require.Len(t, entries, len(keys), "every record has an entry")
	for k, n := range entries {
		require.Equal(t, 1, n, "record %s has %d entries", record.Key(k), n)
	}
	require.Positive(t, finals, "dropped records travel as final entries")
}

// A sync with no mapping and no transformation passes each record's data
// through as the extractor wrote it, byte for byte (exact decimals,
// escapes and all); with a mapping the data is read and mapped.
func TestDataPassesThroughUnlessMapped(t *testing.T) {
	const data = `{"amount":12345678901234567890.123456789,"id":1,"name":"<A & B> \u00e9\u2028"}`
	// pass sends one record through a transformer with the given mapping
	// and returns the data on its lane.
	pass := func(t *testing.T, mapping []config.Mapping) string {
		b := setup(t, 8)
		r := b.startRun(t, "")
		r, err := b.plane.Runs.Update(t.Context(), "s", r.ID, func(r *run.Run) error {
			r.Spec.Mapping = mapping
			return nil
		})
		require.NoError(t, err)
		cons, err := bus.Durable(t.Context(), b.ns.JS, bus.StreamDeliver, jetstream.ConsumerConfig{
			Durable: "raw_0", FilterSubject: bus.Deliver("d", 0)})
		require.NoError(t, err)
		body := `{"sync":"s","run_id":"` + r.ID + `","seq":0,"partition":0,"records":[` +
			`{"op":"upsert","c":97,"k":"AoAAAAAAAAAB","key":{"id":1},"data":` + data + `}]}`
		require.NoError(t, b.plane.Bus.Publish(t.Context(), bus.Records("s"), []byte(body), "s/"+r.ID+"/extract/0/0"))
		msg, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		require.NoError(t, err)
		require.NoError(t, msg.Ack())
		out, err := record.DecodeBatch(msg.Data(), true)
		require.NoError(t, err)
		require.Len(t, out.Records, 1)
		return string(out.Records[0].RawData)
	}
	require.Equal(t, data, pass(t, nil))
	require.Equal(t, `{"full_name":"<A & B> é\u2028"}`, pass(t, []config.Mapping{{From: "name", To: "full_name"}}))
}
