package bus_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/natstest"
)

// A graceful stop lets a handler in flight finish (its context is not
// cancelled during the drain, and it can tell the loop is stopping); its
// message is acked, not handed back.
func TestWorkDrainsHandlersInFlight(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	cons, err := bus.Durable(ctx, ns.JS, bus.StreamRecords, jetstream.ConsumerConfig{Durable: "drain", FilterSubject: bus.Records("s")})
	require.NoError(t, err)
	require.NoError(t, ns.Bus.Publish(ctx, bus.Records("s"), []byte(`{}`), "drain-1"))

	started, release := make(chan struct{}), make(chan struct{})
	type seen struct{ stopping, cancelled bool }
	result := make(chan seen, 1)
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- ns.Bus.Work(wctx, cons, bus.WorkOptions{Drain: 10 * time.Second}, zerolog.Nop(), func(hctx context.Context, _ jetstream.Msg) error {
			close(started)
			<-release
			result <- seen{stopping: bus.Stopping(hctx), cancelled: hctx.Err() != nil}
			return nil
		})
	}()
	<-started
	stop() // SIGTERM
	close(release)
	require.Equal(t, seen{stopping: true, cancelled: false}, <-result)
	require.NoError(t, <-done)
	require.Eventually(t, func() bool {
		info, err := cons.Info(ctx)
		require.NoError(t, err)
		return info.NumAckPending == 0 && info.NumPending == 0
	}, 5*time.Second, 20*time.Millisecond, "the message was acked")
}
