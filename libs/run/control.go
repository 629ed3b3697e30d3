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
	return store.Update(ctx, sync, id, func(r *Run) error {
		if r.State.Terminal() || r.State == Paused || r.State == Committing {
			return ErrSkip // a commit in progress finishes: it sends nothing
		}
		r.PausedFrom, r.State = r.State, Paused
		return nil
	})
}

// ResumeSync lets a paused sync be scheduled again and resumes its paused
// run from where it stopped. It returns the resumed run, if any.
func ResumeSync(ctx context.Context, js jetstream.JetStream, state jetstream.KeyValue, store *Store, sync string) (*Run, error) {
	if err := state.Delete(ctx, pauseKey(sync)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("resuming sync %q: %w", sync, err)
	}
	id, err := store.ActiveID(ctx, sync)
	if err != nil || id == "" {
		return nil, err
	}
	var resumed bool
	r, err := store.Update(ctx, sync, id, func(r *Run) error {
		resumed = false
		if r.State != Paused {
			return ErrSkip
		}
		r.State, r.PausedFrom = r.PausedFrom, ""
		if r.State == Diffing {
			// The diff stopped halfway (its differ died during the pause):
			// start it again; a diff writes nothing it cannot rewrite.
			r.State = Pending
		}
		r.Resumes++
		resumed = true
		return nil
	})
	if err != nil || !resumed {
		return r, err
	}
	return r, reannounce(ctx, js, r)
}

// reannounce hands a resumed run back to the stage that stopped: the
// differ or the extractor, which acked their message when they paused.
// Batches waiting in the streams need nothing: the transformer and delivery
// left them there and pick them up again.
func reannounce(ctx context.Context, js jetstream.JetStream, r *Run) error {
	event := fmt.Sprintf("resume-%d", r.Resumes)
	switch r.State {
	case Pending, Diffing:
		return Announce(ctx, js, bus.RunRequested(r.Sync), r.ID, r.Sync, "requested/"+event)
	case Extracting:
		return Announce(ctx, js, bus.RunDiffed(r.Sync), r.ID, r.Sync, "diffed/"+event)
	}
	return nil
}

// Cancel ends an active run without committing its snapshot: records it
// delivered are sent again by the next run. Stages drop its remaining
// batches.
func Cancel(ctx context.Context, store *Store, id string) (*Run, error) {
	r, err := store.Find(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.State.Terminal() {
		return r, fmt.Errorf("run %s is already %s: %w", id, r.State, ErrNotActive)
	}
	return store.Update(ctx, r.Sync, id, func(r *Run) error {
		if r.State.Terminal() {
			return fmt.Errorf("run %s is already %s: %w", id, r.State, ErrNotActive)
		}
		if r.State == Committing {
			// Everything has a final result and the snapshot is moving:
			// stopping now would leave the destination ahead of it.
			return fmt.Errorf("run %s is committing and can no longer be cancelled: %w", id, ErrNotActive)
		}
		r.State, r.Error, r.PausedFrom = Cancelled, "cancelled by request; the next run sends again what this one did not commit", ""
		return nil
	})
}

// Approve lets a run stopped by a safety check go on to extraction.
func Approve(ctx context.Context, js jetstream.JetStream, store *Store, id string) (*Run, error) {
	r, err := store.Find(ctx, id)
	if err != nil {
		return nil, err
	}
	r, err = store.Update(ctx, r.Sync, id, func(r *Run) error {
		if r.State != AwaitingApproval {
			return fmt.Errorf("run %s is %s, not awaiting approval: %w", id, r.State, ErrNotActive)
		}
		r.State, r.ApprovedAt = Extracting, time.Now().UTC()
		return nil
	})
	if err != nil {
		return r, err
	}
	return r, Announce(ctx, js, bus.RunDiffed(r.Sync), r.ID, r.Sync, "diffed/approved")
}
