package bus_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/natstest"
	"github.com/ebb-etl/ebb/libs/record"
)

// TestSameBatchTwiceIsStoredOnce publishes one batch twice with its
// deterministic Nats-Msg-Id, as a stage does when it crashed after publishing
// and its input message came back: the stream keeps one copy. That holds
// even after the first copy was consumed and acked (a work queue deletes it),
// because the duplicate window remembers ids, not messages.
func TestSameBatchTwiceIsStoredOnce(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	subject := bus.Records("customers")
	id := record.MsgID("customers", "01RUN", "extract", 7, 0)
	batch := []byte(`{"sync":"customers","run_id":"01RUN","seq":7,"records":[]}`)

	stream, err := ns.JS.Stream(ctx, bus.StreamRecords)
	require.NoError(t, err)
	msgs := func() uint64 {
		info, err := stream.Info(ctx)
		require.NoError(t, err)
		return info.State.Msgs
	}

	require.NoError(t, ns.Bus.Publish(ctx, subject, batch, id))
	ack, err := ns.JS.Publish(ctx, subject, batch, jetstream.WithMsgID(id))
	require.NoError(t, err)
	require.True(t, ack.Duplicate, "the second publish is recognised as a duplicate")
	require.EqualValues(t, 1, msgs(), "stored once")

	// The transformer consumes and acks it: the work queue drops it.
	cons, err := bus.Durable(ctx, ns.JS, bus.StreamRecords, jetstream.ConsumerConfig{
		Durable: "transformer", FilterSubject: bus.Records("*")})
	require.NoError(t, err)
	got, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	require.NoError(t, err)
	n := 0
	for m := range got.Messages() {
		require.Equal(t, id, m.Headers().Get(jetstream.MsgIDHeader))
		require.NoError(t, m.DoubleAck(ctx))
		n++
	}
	require.Equal(t, 1, n)
	require.Zero(t, msgs())

	// The extractor, restarted from a checkpoint taken before this batch,
	// publishes it again: still inside the window, so nothing is stored
	// and the transformer never sees it twice.
	require.NoError(t, ns.Bus.Publish(ctx, subject, batch, id))
	require.Zero(t, msgs(), "a republish inside the window is dropped even after the first copy was consumed")

	// Another batch (another id) is of course stored.
	require.NoError(t, ns.Bus.Publish(ctx, subject, batch, record.MsgID("customers", "01RUN", "extract", 8, 0)))
	require.EqualValues(t, 1, msgs())
}

// TestDuplicateWindowCoversRedelivery checks the window every stream is
// provisioned with against the longest gap between a publish and its
// repeat: a handler that published, then died before acking, has its
// message redelivered after the consumer's AckWait, and may die again.
func TestDuplicateWindowCoversRedelivery(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	l := bus.DefaultLimits()
	require.GreaterOrEqual(t, l.Duplicates, 5*bus.DefaultAckWait,
		"the window outlasts five crash-and-redeliver cycles of a stage")
	for _, name := range []string{bus.StreamRuns, bus.StreamRecords, bus.StreamDeliver, bus.StreamResults, bus.StreamFailures} {
		s, err := ns.JS.Stream(ctx, name)
		require.NoError(t, err)
		info, err := s.Info(ctx)
		require.NoError(t, err)
		require.Equal(t, l.Duplicates, info.Config.Duplicates, name)
	}
}

// TestRepublishAfterTheWindowIsStoredAgain shows what the window bounds: a
// repeat later than Duplicates is a new message. Ebb's stages are idempotent
// on redelivery for that case (the run's state and the result bitmap), so it
// costs a duplicate, never a wrong count.
func TestRepublishAfterTheWindowIsStoredAgain(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	l := bus.DefaultLimits()
	l.Duplicates = 300 * time.Millisecond
	require.NoError(t, bus.Provision(ctx, ns.JS, l))
	subject := bus.Results("customers")
	id := record.MsgID("customers", "01RUN", "results", 1, 0)

	ack, err := ns.JS.Publish(ctx, subject, []byte("{}"), jetstream.WithMsgID(id))
	require.NoError(t, err)
	require.False(t, ack.Duplicate)
	ack, err = ns.JS.Publish(ctx, subject, []byte("{}"), jetstream.WithMsgID(id))
	require.NoError(t, err)
	require.True(t, ack.Duplicate)
	require.Eventually(t, func() bool {
		ack, err := ns.JS.Publish(ctx, subject, []byte("{}"), jetstream.WithMsgID(id))
		require.NoError(t, err)
		return !ack.Duplicate
	}, 10*time.Second, 100*time.Millisecond, "after the window the id is forgotten")
}
