package node_test

import (
	"context"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/run"
	"github.com/ebb-etl/ebb/services/ebb/node"
)

// TestCopiesShareWork runs a second copy of every pipeline service on the
// same NATS: the copies share each stage's durable consumer, and the run
// still sends every record exactly once.
func TestCopiesShareWork(t *testing.T) {
	p := newPG(t)
	seedCustomers(p, e2eRows)
	hook, url := sink(t)
	e := startEnv(t)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- node.Run(ctx, node.Options{JS: e.ns.JS, Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
			Services: []string{"scheduler", "differ", "extractor", "transformer", "delivery", "reporting"}})
	}()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })

	e.apply(pipelineConfig(p, config.ModeMirror, url))
	r1 := e.runSync("customers")
	require.Equal(t, run.Succeeded, r1.State, r1.Error)
	require.Len(t, hook.Records(), e2eRows)
	require.Zero(t, hook.DuplicateBatches())

	editCustomers(p, e2eRows)
	r2 := e.runSync("customers")
	require.Equal(t, run.Succeeded, r2.State, r2.Error)
	require.Len(t, hook.Records(), e2eRows+180)
	require.Equal(t, modelRows(p), withoutTimestamps(hook.State()))
}
