package run

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ebb-etl/ebb/libs/bus"
)

// ErrNotActive is returned when pausing, resuming or cancelling a run that
// is over or not in a state that allows it.
var ErrNotActive = errors.New("run is not active")

// pauseKey marks a paused sync in the state bucket: the scheduler does not
// start it and manual runs are refused until it is resumed.
func pauseKey(sync string) string { return "paused." + sync }

// SyncPaused reports whether a sync is paused.
func SyncPaused(ctx context.Context, state jetstream.KeyValue, sync string) (bool, error) {
	_, err := state.Get(ctx, pauseKey(sync))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading pause of sync %q: %w", sync, err)
	}
	return true, nil
}

// PauseSync stops scheduling a sync and pauses its active run, if any: its
// stages stop at their next batch boundary. It returns the paused run.
func PauseSync(ctx context.Context, state jetstream.KeyValue, store *Store, sync string) (*Run, error) {
	if _, err := state.Put(ctx, pauseKey(sync), []byte(time.Now().UTC().Format(time.RFC3339))); err != nil {
		return nil, fmt.Errorf("pausing sync %q: %w", sync, err)
	}
	id, err := store.ActiveID(ctx, sync)
	if err != nil || id == "" {
		return nil, err
	}
	return store.Pause(ctx, sync, id)
}

// ResumeSync lets a paused sync be scheduled again and resumes its paused
// run from where it stopped. It returns the resumed run, if any.
func ResumeSync(ctx context.Context, b *bus.Bus, state jetstream.KeyValue, store *Store, sync string) (*Run, error) {
	if err := state.Delete(ctx, pauseKey(sync)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("resuming sync %q: %w", sync, err)
	}
	id, err := store.ActiveID(ctx, sync)
	if err != nil || id == "" {
		return nil, err
	}
	r, resumed, err := store.Resume(ctx, sync, id)
	if err != nil || !resumed {
		return r, err
	}
	return r, reannounce(ctx, b, r)
}

// reannounce hands a resumed run back to the stage that stopped: the
// differ or the extractor, which acked their message when they paused.
// Batches waiting in the streams need nothing: the transformer and delivery
// left them there and pick them up again.
func reannounce(ctx context.Context, b *bus.Bus, r *Run) error {
	event := fmt.Sprintf("resume-%d", r.Resumes)
	switch r.State {
	case Pending, Diffing:
		return Announce(ctx, b, bus.RunRequested(r.Sync), r.ID, r.Sync, "requested/"+event)
	case Extracting:
		return Announce(ctx, b, bus.RunDiffed(r.Sync), r.ID, r.Sync, "diffed/"+event)
	}
	return nil
}

// Approve lets a run stopped by a safety check go on to extraction.
func Approve(ctx context.Context, b *bus.Bus, store *Store, id string) (*Run, error) {
	r, err := store.Approve(ctx, id)
	if err != nil {
		return r, err
	}
	return r, Announce(ctx, b, bus.RunDiffed(r.Sync), r.ID, r.Sync, "diffed/approved")
}

// rerunKey marks a sync that must run again as soon as its active run
// ends: keys released by `ebb sync retry` while a run was active go with
// that next run.
func rerunKey(sync string) string { return "rerun." + sync }

// RequestRerun asks the scheduler to start a run of sync once its active
// run has ended.
func RequestRerun(ctx context.Context, state jetstream.KeyValue, sync, trigger string) error {
	if _, err := state.Put(ctx, rerunKey(sync), []byte(trigger)); err != nil {
		return fmt.Errorf("requesting a run of sync %q: %w", sync, err)
	}
	return nil
}

// RerunRequested reports whether a run of sync was requested.
func RerunRequested(ctx context.Context, state jetstream.KeyValue, sync string) (bool, error) {
	_, err := state.Get(ctx, rerunKey(sync))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading the run request of sync %q: %w", sync, err)
	}
	return true, nil
}

// TakeRerun reports whether a run of sync was requested, and with which
// trigger, and clears the request.
func TakeRerun(ctx context.Context, state jetstream.KeyValue, sync string) (string, bool, error) {
	e, err := state.Get(ctx, rerunKey(sync))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("reading the run request of sync %q: %w", sync, err)
	}
	if err := state.Delete(ctx, rerunKey(sync), jetstream.LastRevision(e.Revision())); err != nil {
		return "", false, nil // taken by another leader meanwhile, or renewed: next tick
	}
	return string(e.Value()), true, nil
}
