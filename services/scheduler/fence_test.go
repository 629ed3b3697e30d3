package scheduler

import (
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/natstest"
	"github.com/ebb-etl/ebb/libs/plane"
)

// A leader that was stopped while another copy took the lease over must
// not start runs when it wakes: its fencing revision is stale.
func TestStaleLeaderIsFenced(t *testing.T) {
	ctx := t.Context()
	ns := natstest.Start(t)
	p, err := plane.Open(ctx, ns.JS)
	require.NoError(t, err)
	leases, err := ns.JS.KeyValue(ctx, bus.BucketLeases)
	require.NoError(t, err)
	log := zerolog.New(zerolog.NewTestWriter(t))
	a := &service{Deps: Deps{Plane: p, Leases: leases, Log: log, ID: "a", LeaseTTL: 200 * time.Millisecond}}
	b := &service{Deps: Deps{Plane: p, Leases: leases, Log: log, ID: "b", LeaseTTL: 10 * time.Second}}

	leader, err := a.claim(ctx)
	require.NoError(t, err)
	require.True(t, leader)
	require.NoError(t, a.fence(ctx), "a leader renews its own lease")

	// a stalls past its lease; b takes over.
	require.Eventually(t, func() bool {
		leader, err := b.claim(ctx)
		require.NoError(t, err)
		return leader
	}, 5*time.Second, 50*time.Millisecond)
	require.ErrorIs(t, a.fence(ctx), errNotLeader, "the stale leader is fenced off")
	require.NoError(t, b.fence(ctx))
}
