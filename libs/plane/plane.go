// Package plane opens Ebb's control plane: the config and run stores, the
// state bucket and the snapshot object store, all in JetStream. Every
// service is handed one.
package plane

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/run"
)

// Plane is the control plane.
type Plane struct {
	JS        jetstream.JetStream
	Configs   *config.Store
	Runs      *run.Store
	State     jetstream.KeyValue
	Snapshots jetstream.ObjectStore
}

// Open opens the buckets and stores that bus.Provision created.
func Open(ctx context.Context, js jetstream.JetStream) (*Plane, error) {
	configs, err := config.OpenStore(ctx, js, bus.BucketConfig)
	if err != nil {
		return nil, err
	}
	runs, err := run.OpenStore(ctx, js, bus.BucketRuns)
	if err != nil {
		return nil, err
	}
	state, err := js.KeyValue(ctx, bus.BucketState)
	if err != nil {
		return nil, fmt.Errorf("opening state bucket: %w", err)
	}
	snaps, err := js.ObjectStore(ctx, bus.ObjectSnapshots)
	if err != nil {
		return nil, fmt.Errorf("opening snapshot store: %w", err)
	}
	return &Plane{JS: js, Configs: configs, Runs: runs, State: state, Snapshots: snaps}, nil
}
