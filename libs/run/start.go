package run

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ebb-etl/ebb/libs/bus"
)

// Event is the payload of every ebb.run.<event>.<sync> message.
type Event struct {
	RunID string `json:"run_id"`
	Sync  string `json:"sync"`
}

// Start creates a pending run of a sync and asks the differ to begin it.
// It fails with ErrActive when the sync already has an active run.
func Start(ctx context.Context, js jetstream.JetStream, store *Store, sync, trigger string) (*Run, error) {
	r, err := store.Create(ctx, sync, trigger)
	if err != nil {
		return nil, err
	}
	if err := Announce(ctx, js, bus.RunRequested(sync), r.ID, sync, "requested"); err != nil {
		_, _ = store.Update(ctx, sync, r.ID, func(r *Run) error {
			r.State, r.Error = Failed, err.Error()
			return nil
		})
		return nil, err
	}
	return r, nil
}

// StartDryRun starts a dry run of a sync: the real pipeline up to
// delivery, which records the payloads it would send (bus.Plan) instead of
// sending them; nothing is committed. It holds the sync's active slot like
// any run.
func StartDryRun(ctx context.Context, js jetstream.JetStream, store *Store, sync string) (*Run, error) {
	r, err := store.Create(ctx, sync, "plan")
	if err != nil {
		return nil, err
	}
	// Flagged before it is announced: no stage sees it unflagged.
	if r, err = store.Update(ctx, sync, r.ID, func(r *Run) error { r.DryRun = true; return nil }); err != nil {
		return nil, err
	}
	if err := Announce(ctx, js, bus.RunRequested(sync), r.ID, sync, "requested"); err != nil {
		_, _ = store.Update(ctx, sync, r.ID, func(r *Run) error {
			r.State, r.Error = Failed, err.Error()
			return nil
		})
		return nil, err
	}
	return r, nil
}

// Announce publishes a run event with the deterministic id run/<id>/<event>.
func Announce(ctx context.Context, js jetstream.JetStream, subject, runID, sync, event string) error {
	data, _ := json.Marshal(Event{RunID: runID, Sync: sync})
	if err := bus.Publish(ctx, js, subject, data, "run/"+runID+"/"+event); err != nil {
		return fmt.Errorf("announcing run %s %s: %w", runID, event, err)
	}
	return nil
}
