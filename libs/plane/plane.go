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
	"github.com/ebb-etl/ebb/libs/snapshot"
)

// Plane is the control plane.
type Plane struct {
	JS jetstream.JetStream
	// Bus publishes and reads the messages between stages.
	Bus       *bus.Bus
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
	b, err := bus.Open(ctx, js)
	if err != nil {
		return nil, err
	}
	return &Plane{JS: js, Bus: b, Configs: configs, Runs: runs, State: state, Snapshots: snaps}, nil
}

// ForgetRun deletes what an ended run left in the data plane: its
// extraction checkpoint, its bodies in the payload store and the objects
// of its diff, except keep (the snapshot it committed). Each is also safe
// to repeat.
func (p *Plane) ForgetRun(ctx context.Context, sync, runID string, keep ...string) error {
	_ = p.State.Delete(ctx, "checkpoint."+runID+".extract")
	if err := p.Bus.DeletePayloads(ctx, sync+"/"+runID+"/"); err != nil {
		return err
	}
	return snapshot.DeleteRun(ctx, p.Snapshots, sync, runID, keep...)
}
