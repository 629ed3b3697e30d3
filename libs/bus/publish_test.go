package bus_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/embedded"
	"github.com/ebb-etl/ebb/libs/natstest"
)

// startWith starts a server whose streams have the given buffers.
func startWith(t *testing.T, syncBuffer, laneBuffer int64) *natstest.Server {
	t.Helper()
	ns := natstest.Start(t)
	l := bus.DefaultLimits()
	l.WorkMaxBytes, l.SyncBuffer, l.LaneBuffer = 64<<20, syncBuffer, laneBuffer
	require.NoError(t, bus.Provision(context.Background(), ns.JS, l))
	return ns
}

// A full lane refuses the next batch with ErrFull, at once and without
// losing one stored before it; the other lanes and syncs take theirs.
func TestAFullBufferRefusesAndLosesNothing(t *testing.T) {
	t.Parallel()
	ns := startWith(t, 2, 3)
	ctx := t.Context()
	for i := range 3 {
		require.NoError(t, ns.Bus.Publish(ctx, bus.Deliver("slow", 0), []byte{byte(i)}, fmt.Sprintf("slow-%d", i)))
	}
	start := time.Now()
	err := ns.Bus.Publish(ctx, bus.Deliver("slow", 0), []byte{3}, "slow-3")
	require.ErrorIs(t, err, bus.ErrFull)
	require.Less(t, time.Since(start), time.Second, "a full buffer is reported, not waited on")
	require.NoError(t, ns.Bus.Publish(ctx, bus.Deliver("slow", 1), []byte{0}, "slow-lane-1"), "another lane")
	require.NoError(t, ns.Bus.Publish(ctx, bus.Deliver("fast", 0), []byte{0}, "fast-0"), "another destination")
	require.NoError(t, ns.Bus.Publish(ctx, bus.Records("a"), []byte{0}, "a-0"))
	require.NoError(t, ns.Bus.Publish(ctx, bus.Records("a"), []byte{1}, "a-1"))
	require.ErrorIs(t, ns.Bus.Publish(ctx, bus.Records("a"), []byte{2}, "a-2"), bus.ErrFull, "a sync's buffer")
	require.NoError(t, ns.Bus.Publish(ctx, bus.Records("b"), []byte{0}, "b-0"), "another sync")

	// The three batches of the full lane are all there, in order: the
	// refusal did not make room by dropping the oldest.
	cons, err := bus.Durable(ctx, ns.JS, bus.StreamDeliver, jetstream.ConsumerConfig{Durable: "check", FilterSubject: bus.Deliver("slow", 0)})
	require.NoError(t, err)
	batch, err := cons.Fetch(10, jetstream.FetchMaxWait(time.Second))
	require.NoError(t, err)
	var got []byte
	for m := range batch.Messages() {
		got = append(got, m.Data()...)
		require.NoError(t, m.Ack())
	}
	require.Equal(t, []byte{0, 1, 2}, got)
	require.Eventually(t, func() bool {
		return ns.Bus.Publish(ctx, bus.Deliver("slow", 0), []byte{3}, "slow-3") == nil
	}, 5*time.Second, 20*time.Millisecond, "consumed batches make room")
}

// A body larger than the server's max payload travels by reference; the
// consumer reads it whole and the store forgets it once it is acked.
func TestLargeBodiesTravelByReference(t *testing.T) {
	t.Parallel()
	ns := natstest.Start(t)
	ctx := t.Context()
	require.EqualValues(t, ns.NC.MaxPayload()-4<<10, ns.Bus.MaxInline())
	big := bytes.Repeat([]byte("x"), 3<<20)
	require.NoError(t, ns.Bus.Publish(ctx, bus.Records("s"), big, "s/run/extract/0/0"))
	cons, err := bus.Durable(ctx, ns.JS, bus.StreamRecords, jetstream.ConsumerConfig{Durable: "big", FilterSubject: bus.Records("s")})
	require.NoError(t, err)
	got := make(chan []byte, 1)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		_ = ns.Bus.Work(wctx, cons, bus.WorkOptions{}, zerolog.Nop(), func(ctx context.Context, msg jetstream.Msg) error {
			body, err := ns.Bus.Body(ctx, msg)
			if err != nil {
				return err
			}
			got <- body
			return nil
		})
	}()
	select {
	case body := <-got:
		require.Equal(t, big, body)
	case <-time.After(30 * time.Second):
		t.Fatal("the large body was not delivered")
	}
	store, err := ns.JS.ObjectStore(ctx, bus.ObjectPayloads)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := store.GetInfo(ctx, "s/run/extract/0/0")
		return errors.Is(err, jetstream.ErrObjectNotFound)
	}, 10*time.Second, 20*time.Millisecond, "the payload is deleted once its message is acked")
}

// A publish that can never succeed fails at once, as a PermanentError, not
// retried forever.
func TestAPublishThatCanNeverSucceedIsPermanent(t *testing.T) {
	t.Parallel()
	ns := natstest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, ns.JS.DeleteStream(ctx, bus.StreamDeliver))
	err := ns.Bus.Publish(ctx, bus.Deliver("d", 0), []byte("x"), "id-1")
	require.True(t, bus.IsPermanent(err), "%v", err)
	require.ErrorContains(t, err, "no stream holds the subject")
	require.NoError(t, ctx.Err(), "it did not wait for the deadline")
}

// The server's real max payload is read at connect, not assumed.
func TestMaxInlineFollowsTheServer(t *testing.T) {
	t.Parallel()
	srv, err := embedded.StartNATS(embedded.Options{Port: -1, StoreDir: t.TempDir(), MaxPayload: 4 << 20})
	require.NoError(t, err)
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	nc, js, err := bus.Connect(srv.ClientURL(), t.Name())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	require.NoError(t, bus.Provision(t.Context(), js, bus.DefaultLimits()))
	b, err := bus.Open(t.Context(), js)
	require.NoError(t, err)
	require.Equal(t, 4<<20-4<<10, b.MaxInline())
}

// A publish the server refuses for permissions is permanent too: the
// refusal never answers the request, so the bus looks at the connection's
// last error when it times out.
func TestAPublishRefusedForPermissionsIsPermanent(t *testing.T) {
	t.Parallel()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true,
		Users: []*server.User{{Username: "ebb", Password: "pw", Permissions: &server.Permissions{
			Publish: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{"ebb.deliver.secret.>"}},
		}}}})
	require.NoError(t, err)
	go srv.Start()
	require.True(t, srv.ReadyForConnections(10*time.Second))
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	nc, js, err := bus.Connect(fmt.Sprintf("nats://ebb:pw@%s", srv.Addr()), t.Name())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	require.NoError(t, bus.Provision(t.Context(), js, bus.DefaultLimits()))
	b, err := bus.Open(t.Context(), js)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	require.NoError(t, b.Publish(ctx, bus.Deliver("open", 0), []byte("x"), "ok-1"))
	err = b.Publish(ctx, bus.Deliver("secret", 0), []byte("x"), "denied-1")
	require.True(t, bus.IsPermanent(err), "%v", err)
	require.ErrorContains(t, err, "ermissions")
}

// The control plane's buckets are read from their stream's leader: a
// replica that lags would answer with an older run, and a guard deciding
// on it without writing would decide wrong.
func TestControlPlaneReadsComeFromTheLeader(t *testing.T) {
	t.Parallel()
	ns := natstest.Start(t)
	for _, b := range []string{bus.BucketConfig, bus.BucketRuns, bus.BucketState, bus.BucketLeases} {
		st, err := ns.JS.Stream(t.Context(), "KV_"+b)
		require.NoError(t, err)
		require.False(t, st.CachedInfo().Config.AllowDirect, b)
	}
	// Provisioning again (every process does at start) keeps it so.
	require.NoError(t, bus.Provision(t.Context(), ns.JS, bus.DefaultLimits()))
	st, err := ns.JS.Stream(t.Context(), "KV_"+bus.BucketRuns)
	require.NoError(t, err)
	require.False(t, st.CachedInfo().Config.AllowDirect)
}
