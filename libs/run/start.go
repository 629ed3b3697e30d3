package run

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/ebb-etl/ebb/libs/bus"
)

// Event is the payload of every ebb.run.<event>.<sync> message.
type Event struct {
	RunID string `json:"run_id"`
	Sync  string `json:"sync"`
}

// Start creates a pending run of a sync and asks the differ to begin it.
// It fails with ErrActive when the sync already has an active run.
func Start(ctx context.Context, b *bus.Bus, store *Store, sync, trigger string) (*Run, error) {
	r, err := store.Create(ctx, sync, trigger)
	if err != nil {
		return nil, err
	}
	return announceStart(ctx, b, store, r)
}

// announceStart asks the differ to begin a run just created; a run that
// cannot be announced fails at once, freeing its sync.
func announceStart(ctx context.Context, b *bus.Bus, store *Store, r *Run) (*Run, error) {
	if err := Announce(ctx, b, bus.RunRequested(r.Sync), r.ID, r.Sync, "requested"); err != nil {
		_, _ = store.Fail(ctx, r.Sync, r.ID, err.Error())
		return nil, err
	}
	return r, nil
}

// StartDryRun starts a dry run of a sync: the real pipeline up to
// delivery, which records the payloads it would send (bus.Plan) instead of
// sending them; nothing is committed. It holds the sync's active slot like
// any run.
func StartDryRun(ctx context.Context, b *bus.Bus, store *Store, sync string) (*Run, error) {
	r, err := store.CreateDryRun(ctx, sync)
	if err != nil {
		return nil, err
	}
	return announceStart(ctx, b, store, r)
}

// Announce publishes a run event with the deterministic id run/<id>/<event>.
func Announce(ctx context.Context, b *bus.Bus, subject, runID, sync, event string) error {
	data, _ := json.Marshal(Event{RunID: runID, Sync: sync})
	if err := b.PublishWaiting(ctx, subject, data, "run/"+runID+"/"+event); err != nil {
		return fmt.Errorf("announcing run %s %s: %w", runID, event, err)
	}
	return nil
}
